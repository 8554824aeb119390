"""Traces and metrics: OpenTelemetry spans, span events and instruments for every task.

The one home of Relier's tracer, meter, span, event and instrument names
(docs/metrics.md lists them). Only ``opentelemetry-api`` is required: with no
SDK configured every span is skipped (no span object is even made), every
instrument is the API's no-op proxy, and a push pays a few microseconds
(tests/bench/telemetry.py measures it). Configure an SDK in each process, as
for any OpenTelemetry-instrumented library, and the same hooks produce:

* ``relier.push <task>`` (PRODUCER) around each push or batch; its W3C trace
  context travels in the envelope's ``tc`` field, so the trace of the request
  that pushed continues on the worker;
* ``relier.run <task>`` (CONSUMER) around each attempt, a child of the push's
  span, with the events ``relier.retry``, ``relier.soft_timeout``,
  ``relier.hard_timeout``, ``relier.stale_fence`` and ``relier.dead_lettered``;
* ``relier.resurrect <task>`` (INTERNAL), a short span of the process that
  took the task back (the worker's main process or the resurrector), linked
  to the push's span, with ``relier.resurrected`` or ``relier.handoff`` (and
  ``relier.dead_lettered`` for a poison pill).

Invariant: telemetry never changes what Relier does. A hook never raises into
the code it observes beyond what the OpenTelemetry API itself raises, and no
outcome depends on it. It owns no Redis key; the observable gauges only read
``rl:owned:<wid>``, ``rl:queues`` and the queue lists, ``rl:dlq``,
``rl:workers`` and ``rl:worker:<wid>``, and only when a metric reader collects.

The package has four modules below its facade (``relier.telemetry``, which
callers import): ``core`` (names, switches, instruments, the dispatch span),
``attempts`` (attempt and take-back spans), ``gauges`` (the gauges'
callbacks) and ``prometheus`` (the optional ``/metrics`` endpoint). Each
imports only ``core``; the facade imports them all.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from contextvars import Token
from types import TracebackType
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import metrics, propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from relier.errors import AdmissionRejectedError
from relier.journal.states import text

if TYPE_CHECKING:
    from relier.journal.scripts import NewTask

__all__ = [
    "EVENTS",
    "INSTRUMENTS",
    "OBSERVERS",
    "SCOPE",
    "Dispatch",
    "enabled",
    "meter_provider",
    "set_enabled",
    "trace_context",
    "tracing",
    "use_meter_provider",
]

log = logging.getLogger("relier.telemetry")

SCOPE = "relier"
"""Instrumentation scope of the tracer and the meter, and ``messaging.system``."""

# Span events, each recorded once per occurrence (docs/metrics.md).
RETRY = "relier.retry"
SOFT_TIMEOUT = "relier.soft_timeout"
HARD_TIMEOUT = "relier.hard_timeout"
STALE_FENCE = "relier.stale_fence"
DEAD_LETTERED = "relier.dead_lettered"
RESURRECTED = "relier.resurrected"
HANDOFF = "relier.handoff"
EVENTS = (RETRY, SOFT_TIMEOUT, HARD_TIMEOUT, STALE_FENCE, DEAD_LETTERED, RESURRECTED, HANDOFF)

# Metric attributes: bounded sets (task names come from the code, reasons and
# kinds from fixed lists). Task ids, fences and worker ids are span attributes only.
TASK, QUEUE, REASON = "relier.task", "relier.queue", "relier.reason"

# Instrument name -> (kind, unit, description).
INSTRUMENTS: dict[str, tuple[str, str, str]] = {
    "relier.tasks.dispatched": ("counter", "{task}", "Tasks journaled and published by a push"),
    "relier.tasks.started": ("counter", "{attempt}", "Attempts started by a worker (claimed)"),
    "relier.tasks.succeeded": ("counter", "{task}", "Attempts whose result was committed"),
    "relier.tasks.failed": ("counter", "{attempt}", "Attempts that raised or timed out"),
    "relier.tasks.retried": ("counter", "{attempt}", "Failed attempts with a retry scheduled"),
    "relier.tasks.resurrected": (
        "counter", "{task}", "Tasks put back in their queue after their holder died",
    ),
    "relier.tasks.handed_off": ("counter", "{task}", "Tasks handed back by a stopping worker"),
    "relier.tasks.dead_lettered": ("counter", "{task}", "Tasks moved to the DLQ, by reason"),
    "relier.admission.rejections": ("counter", "{call}", "Pushes refused by admission control"),
    "relier.dispatch.duration": ("histogram", "s", "Time a push (or push_many) took"),
    "relier.tasks.queue_wait": (
        "histogram", "s", "Time from dispatch to the first attempt's start",
    ),
    "relier.tasks.duration": ("histogram", "s", "Time an attempt took, claim to outcome"),
    "relier.resurrection.latency": (
        "histogram", "s", "Time from detecting a lost holder to its tasks being back in queue",
    ),
    "relier.tasks.in_flight": (
        "gauge", "{task}", "Tasks this worker holds (reserved or running)",
    ),
    "relier.queue.depth": ("gauge", "{message}", "Messages waiting in each queue"),
    "relier.dlq.size": ("gauge", "{task}", "Tasks in the dead letter queue"),
    "relier.workers.live": ("gauge", "{worker}", "Workers whose lease is alive"),
}  # fmt: skip

# Seconds: push latencies sit around 0.1-1 ms, executions and waits anywhere
# up to minutes; the SDK's default buckets are made for milliseconds.
_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    30.0, 60.0, 300.0, 900.0,
)  # fmt: skip

tracer = trace.get_tracer(SCOPE)
_NO_SDK = (trace.ProxyTracerProvider, trace.NoOpTracerProvider)
_enabled = True
_sdk_set = False
_lock = threading.Lock()


def enabled() -> bool:
    """Whether the hooks are on (:func:`set_enabled`)."""
    return _enabled


def set_enabled(on: bool) -> None:
    """Turn every telemetry hook on or off in this process (on by default).

    Off, pushes carry no trace context and no instrument is touched: what the
    overhead benchmark compares against.
    """
    global _enabled
    _enabled = on


def tracing() -> bool:
    """Whether spans are made: hooks are on and an SDK tracer provider is set."""
    global _sdk_set
    if not _enabled:
        return False
    if not _sdk_set:
        # The global provider is set at most once, so once seen it stays.
        _sdk_set = not isinstance(trace.get_tracer_provider(), _NO_SDK)
    return _sdk_set


def trace_context() -> dict[str, str]:
    """The current W3C trace context (``traceparent``, ``tracestate``) for an envelope's ``tc``.

    Empty when there is no valid span context, so an envelope without tracing
    keeps its old bytes.
    """
    if not _enabled or not trace.get_current_span().get_span_context().is_valid:
        return {}
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


# -- instruments --------------------------------------------------------------------------


# The observable gauges' readers, by instrument name: ``gauges`` fills it as
# it is imported. Each gauge is made with a trampoline that looks its reader up
# at collection time, so core never imports the module that reads Redis.
OBSERVERS: dict[str, Callable[[Any], Iterable[Any]]] = {}


def _observer(name: str) -> Callable[[Any], Iterable[Any]]:
    def observe(options: Any) -> Iterable[Any]:
        read = OBSERVERS.get(name)
        return read(options) if read is not None else []

    return observe


class _Instruments:
    """Every instrument, made once per meter (proxies until a provider is set)."""

    def __init__(self, meter: metrics.Meter) -> None:
        made: dict[str, Any] = {}
        for name, (kind, unit, description) in INSTRUMENTS.items():
            if kind == "counter":
                made[name] = meter.create_counter(name, unit, description)
            elif kind == "histogram":
                made[name] = meter.create_histogram(
                    name, unit, description, explicit_bucket_boundaries_advisory=_BUCKETS
                )
            else:
                made[name] = meter.create_observable_gauge(
                    name, [_observer(name)], unit, description
                )
        self.dispatched = made["relier.tasks.dispatched"]
        self.started = made["relier.tasks.started"]
        self.succeeded = made["relier.tasks.succeeded"]
        self.failed = made["relier.tasks.failed"]
        self.retried = made["relier.tasks.retried"]
        self.resurrected = made["relier.tasks.resurrected"]
        self.handed_off = made["relier.tasks.handed_off"]
        self.dead_lettered = made["relier.tasks.dead_lettered"]
        self.rejections = made["relier.admission.rejections"]
        self.dispatch_duration = made["relier.dispatch.duration"]
        self.queue_wait = made["relier.tasks.queue_wait"]
        self.duration = made["relier.tasks.duration"]
        self.resurrection_latency = made["relier.resurrection.latency"]


_instruments_cache: _Instruments | None = None
# A meter provider of Relier's own (start_prometheus when the application
# already set a global one); None: the global provider.
_own_meter_provider: Any = None


def instruments() -> _Instruments:
    global _instruments_cache
    made = _instruments_cache
    if made is None:
        with _lock:
            if _instruments_cache is None:
                provider = _own_meter_provider or metrics.get_meter_provider()
                _instruments_cache = _Instruments(provider.get_meter(SCOPE))
            made = _instruments_cache
    return made


def use_meter_provider(provider: Any) -> None:
    """Record Relier's instruments on ``provider`` from now on (None: the global one)."""
    global _instruments_cache, _own_meter_provider
    with _lock:
        _own_meter_provider = provider
        _instruments_cache = None


# -- dispatch -----------------------------------------------------------------------------


class Dispatch:
    """One push or batch: a PRODUCER span (if tracing) and the dispatch metrics.

    Used as ``with Dispatch(task.name, "push") as tel:``; the envelopes built
    inside carry the span's context (:func:`trace_context`); ``tel.done(...)``
    records what the dispatch script replied.
    """

    __slots__ = ("_name", "_op", "_span", "_t0", "_token")

    def __init__(self, task_name: str, operation: str) -> None:
        self._name = task_name
        self._op = operation
        self._span: Any = None
        self._token: Token[otel_context.Context] | None = None
        self._t0 = 0.0

    def __enter__(self) -> Dispatch:
        if _enabled:
            self._t0 = time.perf_counter()
            if tracing():
                self._span = tracer.start_span(
                    f"relier.{self._op} {self._name}", kind=SpanKind.PRODUCER
                )
                self._token = otel_context.attach(trace.set_span_in_context(self._span))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        span = self._span
        if span is None:
            return
        if self._token is not None:
            otel_context.detach(self._token)
        if exc is not None and span.is_recording():
            if isinstance(exc, AdmissionRejectedError):
                # Refused for load, not broken: the event says so, the status stays unset.
                span.add_event("relier.rejected", {REASON: exc.reason})
            else:
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        span.end()

    def done(self, prepared: Sequence[NewTask], replies: Sequence[Any]) -> None:
        """Count what ``dispatch.lua`` replied for each prepared call."""
        if not _enabled:
            return
        elapsed = time.perf_counter() - self._t0
        made = instruments()
        if len(prepared) == 1:  # a push: the common case, kept lean
            queue = prepared[0].queue
            attrs = {TASK: self._name, QUEUE: queue}
            made.dispatch_duration.record(elapsed, attrs)
            reply = replies[0]
            created_one = bool(int(reply[0]))
            if created_one:
                made.dispatched.add(1, attrs)
            elif text(reply[1]) == "REJECTED":
                made.rejections.add(1, {**attrs, REASON: text(reply[3])})
            if self._span is not None:
                self._describe(prepared, [queue], int(created_one))
            return
        created: Counter[str] = Counter()
        rejected: Counter[tuple[str, str]] = Counter()
        for item, reply in zip(prepared, replies, strict=True):
            if int(reply[0]):
                created[item.queue] += 1
            elif text(reply[1]) == "REJECTED":
                rejected[item.queue, text(reply[3])] += 1
        queues = {item.queue for item in prepared}
        for queue in queues:
            made.dispatch_duration.record(elapsed, {TASK: self._name, QUEUE: queue})
        for queue, n in created.items():
            made.dispatched.add(n, {TASK: self._name, QUEUE: queue})
        for (queue, reason), n in rejected.items():
            made.rejections.add(n, {TASK: self._name, QUEUE: queue, REASON: reason})
        if self._span is not None:
            self._describe(prepared, queues, sum(created.values()))

    def _describe(self, prepared: Sequence[NewTask], queues: Iterable[str], n: int) -> None:
        span = self._span
        if not span.is_recording() or not prepared:
            return
        attributes: dict[str, Any] = {
            "messaging.system": SCOPE,
            "messaging.operation.type": "send",
            "messaging.operation.name": self._op,
            "messaging.destination.name": ",".join(sorted(queues)),
            "relier.task.name": self._name,
        }
        if len(prepared) == 1:
            attributes["messaging.message.id"] = prepared[0].task_id
            attributes["relier.task.id"] = prepared[0].task_id
            attributes["relier.created"] = bool(n)
        else:
            attributes["messaging.batch.message_count"] = len(prepared)
            attributes["relier.created_count"] = n
        span.set_attributes(attributes)


def meter_provider() -> Any:
    """The meter provider Relier's instruments are on."""
    return _own_meter_provider or metrics.get_meter_provider()

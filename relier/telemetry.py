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
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextvars import Token
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import metrics, propagate, trace
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from .clock import now_ms
from .errors import AdmissionRejectedError, ConfigurationError, HardTimeoutError

if TYPE_CHECKING:
    from .app import Relier
    from .envelope import Envelope
    from .scripts import Claim

__all__ = [
    "EVENTS",
    "INSTRUMENTS",
    "SCOPE",
    "Dispatch",
    "flush_before_exit",
    "set_enabled",
    "start_prometheus",
    "trace_context",
    "tracing",
    "unwatch",
    "watch",
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

_tracer = trace.get_tracer(SCOPE)
_NO_SDK = (trace.ProxyTracerProvider, trace.NoOpTracerProvider)
_enabled = True
_sdk_set = False
_lock = threading.Lock()


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


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# -- instruments --------------------------------------------------------------------------


class _Instruments:
    """Every instrument, made once per meter (proxies until a provider is set)."""

    def __init__(self, meter: metrics.Meter) -> None:
        made: dict[str, Any] = {}
        gauges: dict[str, Callable[[CallbackOptions], Iterable[Observation]]] = {
            "relier.tasks.in_flight": _observe_in_flight,
            "relier.queue.depth": _observe_queue_depth,
            "relier.dlq.size": _observe_dlq_size,
            "relier.workers.live": _observe_live_workers,
        }
        for name, (kind, unit, description) in INSTRUMENTS.items():
            if kind == "counter":
                made[name] = meter.create_counter(name, unit, description)
            elif kind == "histogram":
                made[name] = meter.create_histogram(
                    name, unit, description, explicit_bucket_boundaries_advisory=_BUCKETS
                )
            else:
                made[name] = meter.create_observable_gauge(name, [gauges[name]], unit, description)
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


def _instruments() -> _Instruments:
    global _instruments_cache
    made = _instruments_cache
    if made is None:
        with _lock:
            if _instruments_cache is None:
                provider = _own_meter_provider or metrics.get_meter_provider()
                _instruments_cache = _Instruments(provider.get_meter(SCOPE))
            made = _instruments_cache
    return made


def _use_meter_provider(provider: Any) -> None:
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
                self._span = _tracer.start_span(
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

    def done(self, prepared: Sequence[Sequence[Any]], replies: Sequence[Any]) -> None:
        """Count what ``dispatch.lua`` replied for each prepared call."""
        if not _enabled:
            return
        elapsed = time.perf_counter() - self._t0
        made = _instruments()
        if len(prepared) == 1:  # a push: the common case, kept lean
            queue = prepared[0][2]
            attrs = {TASK: self._name, QUEUE: queue}
            made.dispatch_duration.record(elapsed, attrs)
            reply = replies[0]
            created_one = bool(int(reply[0]))
            if created_one:
                made.dispatched.add(1, attrs)
            elif _text(reply[1]) == "REJECTED":
                made.rejections.add(1, {**attrs, REASON: _text(reply[3])})
            if self._span is not None:
                self._describe(prepared, [queue], int(created_one))
            return
        created: Counter[str] = Counter()
        rejected: Counter[tuple[str, str]] = Counter()
        for item, reply in zip(prepared, replies, strict=True):
            if int(reply[0]):
                created[item[2]] += 1
            elif _text(reply[1]) == "REJECTED":
                rejected[item[2], _text(reply[3])] += 1
        queues = {item[2] for item in prepared}
        for queue in queues:
            made.dispatch_duration.record(elapsed, {TASK: self._name, QUEUE: queue})
        for queue, n in created.items():
            made.dispatched.add(n, {TASK: self._name, QUEUE: queue})
        for (queue, reason), n in rejected.items():
            made.rejections.add(n, {TASK: self._name, QUEUE: queue, REASON: reason})
        if self._span is not None:
            self._describe(prepared, queues, sum(created.values()))

    def _describe(self, prepared: Sequence[Sequence[Any]], queues: Iterable[str], n: int) -> None:
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
            attributes["messaging.message.id"] = prepared[0][0]
            attributes["relier.task.id"] = prepared[0][0]
            attributes["relier.created"] = bool(n)
        else:
            attributes["messaging.batch.message_count"] = len(prepared)
            attributes["relier.created_count"] = n
        span.set_attributes(attributes)


# -- execution ----------------------------------------------------------------------------


class _Attempt:
    """One attempt in a worker: its CONSUMER span (begun once the envelope is read)."""

    __slots__ = (
        "attrs", "fence", "number", "outcome", "owner", "span", "t0", "t0_ns", "task",
        "task_id", "thread", "token",
    )  # fmt: skip

    def __init__(self, task: str, task_id: str, queue: str, owner: str, claim: Claim) -> None:
        self.task = task
        self.task_id = task_id
        self.owner = owner
        self.fence = claim.fence
        self.number = claim.attempt
        self.attrs = {TASK: task, QUEUE: queue}
        self.t0 = time.perf_counter()
        self.t0_ns = time.time_ns()
        self.thread = threading.get_ident()
        self.span: Any = None
        self.token: Token[otel_context.Context] | None = None
        self.outcome = ""


# (task id, fence) -> the attempt: the watchdog's threads find theirs by key.
_attempts: dict[tuple[str, int], _Attempt] = {}


def attempt_started(
    task_name: str, task_id: str, owner: str, claim: Claim, request: Any
) -> _Attempt | None:
    """A worker claimed ``task_id`` and is about to run attempt ``claim.attempt``."""
    if not _enabled:
        return None
    info = getattr(request, "delivery_info", None) or {}
    attempt = _Attempt(task_name, task_id, str(info.get("routing_key") or ""), owner, claim)
    _attempts[task_id, claim.fence] = attempt
    _instruments().started.add(1, attempt.attrs)
    return attempt


def attempt_decoded(task_id: str, fence: int, envelope: Envelope) -> None:
    """The attempt's envelope is read: begin its span as a child of the push's."""
    attempt = _attempts.get((task_id, fence))
    if attempt is None:
        return
    if attempt.number == 1 and envelope.ts > 0:
        wait = max(0, now_ms() - envelope.ts) / 1000
        _instruments().queue_wait.record(wait, attempt.attrs)
    _begin(attempt, envelope.trace)


def _begin(attempt: _Attempt, carrier: Mapping[str, str]) -> Any:
    if attempt.span is not None or not tracing():
        return attempt.span
    parent = propagate.extract(dict(carrier), context=otel_context.Context()) if carrier else None
    span = _tracer.start_span(
        f"relier.run {attempt.task}", parent, SpanKind.CONSUMER, start_time=attempt.t0_ns
    )
    if span.is_recording():
        span.set_attributes({
            "messaging.system": SCOPE,
            "messaging.operation.type": "process",
            "messaging.operation.name": "run",
            "messaging.destination.name": attempt.attrs[QUEUE],
            "messaging.message.id": attempt.task_id,
            "relier.task.name": attempt.task,
            "relier.task.id": attempt.task_id,
            "relier.attempt": attempt.number,
            "relier.fence": attempt.fence,
            "relier.worker.id": attempt.owner,
        })  # fmt: skip
    attempt.span = span
    if threading.get_ident() == attempt.thread:
        # The task's own code (and the coroutine it starts) runs inside it.
        attempt.token = otel_context.attach(trace.set_span_in_context(span))
    return span


def _event(task_id: str, fence: int, name: str, attributes: dict[str, Any]) -> _Attempt | None:
    attempt = _attempts.get((task_id, fence))
    if attempt is None:
        return None
    span = _begin(attempt, {})
    if span is not None and span.is_recording():
        span.add_event(name, attributes)
    return attempt


def soft_timeout(task_id: str, fence: int, seconds: float) -> None:
    """The attempt passed its soft timeout (recorded in the journal)."""
    _event(task_id, fence, SOFT_TIMEOUT, {"relier.timeout": seconds})


def stale_fence(task_id: str, fence: int, what: str) -> None:
    """The journal refused the attempt's ``what`` (commit, failure, checkpoint): superseded."""
    attempt = _event(task_id, fence, STALE_FENCE, {"relier.refused": what, "relier.fence": fence})
    if attempt is not None:
        attempt.outcome = attempt.outcome or "stale"


def committed(task_id: str, fence: int, ok: bool) -> None:
    """``complete.lua`` committed the attempt's result (``ok``), or refused it (a stale fence)."""
    if not ok:
        stale_fence(task_id, fence, "commit")
        return
    attempt = _attempts.get((task_id, fence))
    if attempt is not None:
        attempt.outcome = "succeeded"
        _instruments().succeeded.add(1, attempt.attrs)


def dead_lettered(task_id: str, fence: int, reason: str, error: str) -> None:
    """The attempt moved its task to the DLQ without raising (bad payload, bad result...)."""
    attempt = _event(task_id, fence, DEAD_LETTERED, {REASON: str(reason), "relier.error": error})
    if attempt is not None:
        attempt.outcome = "dead"
        _instruments().dead_lettered.add(1, {**attempt.attrs, REASON: str(reason)})


def attempt_failed(
    task_id: str, fence: int, exc: BaseException, outcome: int, reason: str, due: int
) -> None:
    """``fail.lua`` replied ``outcome`` (1 retry due at ``due`` ms, 2 DLQ with ``reason``,
    0 stale fence) for the attempt's exception ``exc``."""
    attempt = _attempts.get((task_id, fence))
    if attempt is None:
        return
    if isinstance(exc, HardTimeoutError):
        _event(task_id, fence, HARD_TIMEOUT, {"relier.timeout": exc.seconds})
    if outcome == 0:
        stale_fence(task_id, fence, "failure")
        return
    span = _begin(attempt, {})
    if span is not None and span.is_recording():
        span.record_exception(exc)
    made = _instruments()
    made.failed.add(1, attempt.attrs)
    exc_type = type(exc).__name__
    if outcome == 1:
        attempt.outcome = "retried"
        made.retried.add(1, attempt.attrs)
        due_in = max(0, due - now_ms()) / 1000
        _event(task_id, fence, RETRY, {"relier.retry.due_in": due_in, "exception.type": exc_type})
    else:
        attempt.outcome = "dead"
        made.dead_lettered.add(1, {**attempt.attrs, REASON: reason})
        error = f"{exc_type}: {exc}"
        _event(task_id, fence, DEAD_LETTERED, {REASON: reason, "relier.error": error})


def attempt_ended(attempt: _Attempt | None) -> None:
    """The delivery is done with: record the attempt's duration and end its span."""
    if attempt is None:
        return
    _attempts.pop((attempt.task_id, attempt.fence), None)
    _instruments().duration.record(time.perf_counter() - attempt.t0, attempt.attrs)
    span = _begin(attempt, {})
    if attempt.token is not None:
        otel_context.detach(attempt.token)
        attempt.token = None
    if span is not None:
        _end(span, attempt.outcome)


def _end(span: Any, outcome: str) -> None:
    if span.is_recording():
        span.set_attribute("relier.outcome", outcome or "none")
        if outcome in ("retried", "dead", "abandoned"):
            span.set_status(Status(StatusCode.ERROR, outcome))
    span.end()


def flush_before_exit(timeout_ms: int = 2000) -> None:
    """This process is about to ``os._exit`` (a task stuck past its hard timeout):
    end the spans still open and flush what the SDK buffers."""
    for attempt in list(_attempts.values()):
        span = attempt.span
        if span is not None:
            _end(span, "abandoned")
    for provider in (
        trace.get_tracer_provider(),
        _own_meter_provider or metrics.get_meter_provider(),
    ):
        flush = getattr(provider, "force_flush", None)
        if flush is not None:
            try:
                flush(timeout_ms)
            except Exception as exc:  # telemetry never keeps a stuck process alive
                log.warning("relier: telemetry flush failed: %s", exc)


# -- resurrection and handoff (worker main process, resurrector) ----------------------------


def clock() -> float:
    """A start time for :func:`taken_back` (monotonic seconds)."""
    return time.perf_counter()


def taken_back(
    relier: Relier,
    worker_id: str,
    kind: str,
    ids: Sequence[str],
    rows: Sequence[Sequence[Any]],
    replies: Sequence[Any],
    began: float,
) -> None:
    """``resurrect.lua`` replied ``replies`` for ``ids`` (taken back from ``worker_id``,
    ``kind`` as resurrect.lua names it, or None for a dead worker): count each task
    requeued or dead-lettered, and give each a short span linked to its push."""
    if not _enabled:
        return
    try:
        _taken_back(relier, worker_id, kind, ids, rows, replies, began)
    except Exception as exc:  # the tasks are back in their queue; only telemetry is lost
        log.warning("relier: could not record the telemetry of a take-back: %s", exc)


def _taken_back(
    relier: Relier,
    worker_id: str,
    kind: str,
    ids: Sequence[str],
    rows: Sequence[Sequence[Any]],
    replies: Sequence[Any],
    began: float,
) -> None:
    elapsed = time.perf_counter() - began
    moved = [
        (task_id, row, _text(reply[0]), _text(reply[1]))
        for task_id, row, reply in zip(ids, rows, replies, strict=True)
        if _text(reply[0]) in ("requeued", "dead")
    ]
    if not moved:
        return
    traced = tracing()
    fields = ["task", "env"] if traced else ["task"]
    with relier.redis.pipeline(transaction=False) as pipe:
        for task_id, _, _, _ in moved:
            pipe.hmget(relier.keys.task(task_id).job, fields)
        found = pipe.execute()
    handoff = kind.startswith("handoff")
    made = _instruments()
    end_ns = time.time_ns()
    start_ns = end_ns - round(elapsed * 1e9)
    for (task_id, row, outcome, detail), values in zip(moved, found, strict=True):
        name = _text(values[0] or b"")
        attrs = {TASK: name, QUEUE: _text(row[2] or b"")}
        if outcome == "dead":
            made.resurrected.add(1, {**attrs, REASON: kind})
            made.dead_lettered.add(1, {**attrs, REASON: "poison_pill"})
        else:
            (made.handed_off if handoff else made.resurrected).add(1, {**attrs, REASON: kind})
            made.resurrection_latency.record(elapsed, {**attrs, REASON: kind})
        if traced:
            where = (name, task_id, attrs[QUEUE], worker_id, kind)
            _resurrect_span(*where, outcome, detail, values[1], start_ns, end_ns)


def _resurrect_span(
    name: str,
    task_id: str,
    queue: str,
    worker_id: str,
    kind: str,
    outcome: str,
    detail: str,
    envelope: bytes | None,
    start_ns: int,
    end_ns: int,
) -> None:
    links = []
    carrier = _envelope_trace(envelope)
    if carrier:
        pushed = trace.get_current_span(propagate.extract(carrier, context=otel_context.Context()))
        if pushed.get_span_context().is_valid:
            links.append(Link(pushed.get_span_context()))
    span = _tracer.start_span(
        f"relier.resurrect {name}",
        otel_context.Context(),
        SpanKind.INTERNAL,
        links=links,
        start_time=start_ns,
    )
    if span.is_recording():
        span.set_attributes({
            "messaging.system": SCOPE,
            "messaging.destination.name": queue,
            "messaging.message.id": task_id,
            "relier.task.name": name,
            "relier.task.id": task_id,
            "relier.worker.id": worker_id,
            "relier.resurrection.kind": kind,
            "relier.outcome": "requeued" if outcome == "requeued" else "dead",
        })  # fmt: skip
        event = HANDOFF if kind.startswith("handoff") else RESURRECTED
        was = detail if outcome == "requeued" else "RUNNING"
        attributes = {"relier.resurrection.kind": kind, "relier.previous_state": was}
        span.add_event(event, attributes, timestamp=end_ns)
        if outcome == "dead":
            dead: dict[str, Any] = {REASON: "poison_pill", "relier.resurrections": int(detail)}
            span.add_event(DEAD_LETTERED, dead, timestamp=end_ns)
    span.end(end_ns)


def _envelope_trace(envelope: bytes | None) -> dict[str, str]:
    """The ``tc`` field of a stored envelope, or {} (never raises)."""
    if not envelope:
        return {}
    try:
        body = json.loads(envelope)
        carrier = body.get("tc") if isinstance(body, dict) else None
    except (ValueError, RecursionError):
        return {}
    if not isinstance(carrier, dict):
        return {}
    return {str(k): str(v) for k, v in carrier.items()}


def unknown_task_dead_lettered(message: Any) -> None:
    """A worker dead-lettered ``message``, for a task name it does not know.

    The name comes from the message and may be anything, so it is not a label.
    """
    if _enabled:
        info = getattr(message, "delivery_info", None) or {}
        queue = str(info.get("routing_key") or "")
        _instruments().dead_lettered.add(
            1, {TASK: "_unknown", QUEUE: queue, REASON: "unknown_task"}
        )


def worker_started(relier: Relier, worker_id: str, leader: Callable[[], bool]) -> None:
    """A worker's main process is up: report its gauges, and serve Prometheus if
    ``RELIER_PROMETHEUS_PORT`` is set (:class:`ConfigurationError` when it cannot)."""
    watch(relier, worker_id, leader)
    port = relier.settings.prometheus_port
    if port is not None:
        start_prometheus(port)


# -- observable gauges ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Source:
    relier: Relier
    worker_id: str | None
    leader: Callable[[], bool]


_sources: list[_Source] = []


def _forget_after_fork() -> None:
    # A pool process forked from a worker must not report the worker's gauges
    # (nor think it leads: its copy of the leader flag is frozen), and the
    # attempts of its parent's threads are not its own.
    _sources.clear()
    _attempts.clear()


os.register_at_fork(after_in_child=_forget_after_fork)


def watch(
    relier: Relier, worker_id: str | None = None, leader: Callable[[], bool] = lambda: True
) -> None:
    """Report the observable gauges of ``relier`` from this process.

    ``relier.tasks.in_flight`` is this worker's (``worker_id``); the cluster-wide
    ones (queue depth, DLQ size, live workers) are reported only while
    ``leader()`` is true, so one process reports them (every worker passes
    "holds the resurrector lock"). Redis is read only when a metric reader
    collects. Workers call this themselves; call it in a process of your own
    (a web app, say) to have the cluster gauges without a worker.
    """
    _instruments()
    _sources.append(_Source(relier, worker_id, leader))


def unwatch(relier: Relier) -> None:
    """Stop reporting the gauges of ``relier``."""
    _sources[:] = [s for s in _sources if s.relier is not relier]


def _reporting(cluster: bool) -> list[_Source]:
    if not _enabled:
        return []
    out = []
    for source in list(_sources):
        try:
            if not cluster or source.leader():
                out.append(source)
        except Exception:  # a broken leader check reports nothing, never crashes a reader
            continue
    return out


def _observe(read: Callable[[_Source], Iterable[Observation]], cluster: bool) -> list[Observation]:
    out: list[Observation] = []
    for source in _reporting(cluster):
        try:
            out.extend(read(source))
        except Exception as exc:  # Redis down: this collection has no value
            log.debug("relier: gauge read failed: %s", exc)
    return out


def _observe_in_flight(options: CallbackOptions) -> Iterable[Observation]:
    def read(source: _Source) -> Iterable[Observation]:
        if source.worker_id is None:
            return []
        keys = source.relier.keys
        return [Observation(int(source.relier.redis.scard(keys.owned(source.worker_id))))]

    return _observe(read, cluster=False)


def _observe_queue_depth(options: CallbackOptions) -> Iterable[Observation]:
    def read(source: _Source) -> Iterable[Observation]:
        client, keys = source.relier.redis, source.relier.keys
        queues = sorted(_text(q) for q in client.smembers(keys.queues))
        with client.pipeline(transaction=False) as pipe:
            for queue in queues:
                pipe.llen(keys.queue(queue))
            depths = pipe.execute()
        return [Observation(int(n), {QUEUE: q}) for q, n in zip(queues, depths, strict=True)]

    return _observe(read, cluster=True)


def _observe_dlq_size(options: CallbackOptions) -> Iterable[Observation]:
    def read(source: _Source) -> Iterable[Observation]:
        return [Observation(int(source.relier.redis.zcard(source.relier.keys.dlq)))]

    return _observe(read, cluster=True)


def _observe_live_workers(options: CallbackOptions) -> Iterable[Observation]:
    def read(source: _Source) -> Iterable[Observation]:
        client, keys = source.relier.redis, source.relier.keys
        ids = [_text(i) for i in client.zrange(keys.workers, 0, -1)]
        with client.pipeline(transaction=False) as pipe:
            for worker_id in ids:
                pipe.exists(keys.worker(worker_id))
            alive = pipe.execute()
        return [Observation(sum(1 for a in alive if a))]

    return _observe(read, cluster=True)


# -- Prometheus -------------------------------------------------------------------------------


def _prometheus_modules(port: int) -> tuple[Any, Any, Any]:
    try:
        from opentelemetry.exporter.prometheus import PrometheusMetricReader
        from opentelemetry.sdk.metrics import MeterProvider
        from prometheus_client import start_http_server
    except ImportError as exc:
        raise ConfigurationError(
            f"RELIER_PROMETHEUS_PORT is {port}, but the OpenTelemetry SDK and Prometheus "
            f"exporter are not installed ({exc}); install them with "
            '`pip install "relier[otel]"`, or unset RELIER_PROMETHEUS_PORT'
        ) from None
    return PrometheusMetricReader, MeterProvider, start_http_server


def require_prometheus(port: int | None) -> None:
    """Raise :class:`ConfigurationError` now if ``port`` is set and the exporter is missing."""
    if port is not None:
        _prometheus_modules(port)


def start_prometheus(port: int, addr: str = "0.0.0.0", registry: Any = None) -> Any:
    """Serve Relier's metrics for Prometheus on ``addr:port`` (``/metrics``), from this process.

    With no meter provider set yet, a global one is made with the Prometheus
    reader (so the application's own metrics are served too); with one set by
    the application, Relier's instruments move to a provider of their own.
    Returns the HTTP server (``shutdown()`` stops it).

    Raises:
        ConfigurationError: the ``otel`` extra is not installed, or the port
            cannot be listened on.
    """
    reader_class, provider_class, serve = _prometheus_modules(port)
    kwargs = {} if registry is None else {"registry": registry}
    reader = reader_class(**kwargs)
    provider = provider_class(metric_readers=[reader])
    try:
        server, _ = serve(port, addr, **kwargs)
    except OSError as exc:
        provider.shutdown()
        raise ConfigurationError(
            f"RELIER_PROMETHEUS_PORT is {port}, but {addr}:{port} cannot be listened on "
            f"({exc}); choose a free port (one per worker on a host)"
        ) from None
    if registry is None and _no_meter_provider():
        metrics.set_meter_provider(provider)
        _use_meter_provider(None)
    else:
        _use_meter_provider(provider)
    log.info("relier: serving Prometheus metrics on %s:%d/metrics", addr, port)
    return server


def _no_meter_provider() -> bool:
    """Whether the application set no global meter provider (the API's proxy is in place)."""
    return type(metrics.get_meter_provider()).__name__ in (
        "_ProxyMeterProvider",
        "NoOpMeterProvider",
    )

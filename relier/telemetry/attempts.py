"""The worker side of :mod:`relier.telemetry`: attempt spans and take-back spans.

Invariant: an attempt's CONSUMER span is ended exactly once (by the delivery's end,
or before ``os._exit`` when its process is replaced), and every event is added to the
span of the attempt it happened to, found by (task id, fence) from any thread. The
names live in :mod:`relier.telemetry`, which re-exports these hooks; they are called
from ``executor.py``, ``resurrector.take_back`` and ``timeouts.replace_process``.
Owns no Redis key; a take-back reads the moved tasks' ``task`` and ``env`` fields.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Mapping, Sequence
from contextvars import Token
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from relier.clock import now_ms
from relier.errors import HardTimeoutError
from relier.journal.states import text
from relier.telemetry import core as telemetry
from relier.telemetry.core import (
    DEAD_LETTERED,
    HANDOFF,
    HARD_TIMEOUT,
    QUEUE,
    REASON,
    RESURRECTED,
    RETRY,
    SCOPE,
    SOFT_TIMEOUT,
    STALE_FENCE,
    TASK,
    enabled,
    instruments,
    tracer,
    tracing,
)

if TYPE_CHECKING:
    from relier.hub import Relier
    from relier.journal.envelope import Envelope
    from relier.journal.scripts import Claim

__all__ = [
    "attempt_decoded",
    "attempt_ended",
    "attempt_failed",
    "attempt_started",
    "clock",
    "committed",
    "dead_lettered",
    "flush_before_exit",
    "soft_timeout",
    "stale_fence",
    "taken_back",
    "unknown_task_dead_lettered",
]

log = logging.getLogger("relier.telemetry")


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
# A forked process runs none of its parent's attempts.
os.register_at_fork(after_in_child=_attempts.clear)


def attempt_started(
    task_name: str, task_id: str, owner: str, claim: Claim, request: Any
) -> _Attempt | None:
    """A worker claimed ``task_id`` and is about to run attempt ``claim.attempt``."""
    if not enabled():
        return None
    info = getattr(request, "delivery_info", None) or {}
    attempt = _Attempt(task_name, task_id, str(info.get("routing_key") or ""), owner, claim)
    _attempts[task_id, claim.fence] = attempt
    instruments().started.add(1, attempt.attrs)
    return attempt


def attempt_decoded(task_id: str, fence: int, envelope: Envelope) -> None:
    """The attempt's envelope is read: begin its span as a child of the push's."""
    attempt = _attempts.get((task_id, fence))
    if attempt is None:
        return
    if attempt.number == 1 and envelope.ts > 0:
        wait = max(0, now_ms() - envelope.ts) / 1000
        instruments().queue_wait.record(wait, attempt.attrs)
    _begin(attempt, envelope.trace)


def _begin(attempt: _Attempt, carrier: Mapping[str, str]) -> Any:
    if attempt.span is not None or not tracing():
        return attempt.span
    parent = propagate.extract(dict(carrier), context=otel_context.Context()) if carrier else None
    span = tracer.start_span(
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
        instruments().succeeded.add(1, attempt.attrs)


def dead_lettered(task_id: str, fence: int, reason: str, error: str) -> None:
    """The attempt moved its task to the DLQ without raising (bad payload, bad result...)."""
    attempt = _event(task_id, fence, DEAD_LETTERED, {REASON: str(reason), "relier.error": error})
    if attempt is not None:
        attempt.outcome = "dead"
        instruments().dead_lettered.add(1, {**attempt.attrs, REASON: str(reason)})


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
    made = instruments()
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
    instruments().duration.record(time.perf_counter() - attempt.t0, attempt.attrs)
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
        telemetry.meter_provider(),
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
    if not enabled():
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
        (task_id, row, text(reply[0]), text(reply[1]))
        for task_id, row, reply in zip(ids, rows, replies, strict=True)
        if text(reply[0]) in ("requeued", "dead")
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
    made = instruments()
    end_ns = time.time_ns()
    start_ns = end_ns - round(elapsed * 1e9)
    for (task_id, row, outcome, detail), values in zip(moved, found, strict=True):
        name = text(values[0] or b"")
        attrs = {TASK: name, QUEUE: text(row[2] or b"")}
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
    span = tracer.start_span(
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
    if enabled():
        info = getattr(message, "delivery_info", None) or {}
        queue = str(info.get("routing_key") or "")
        instruments().dead_lettered.add(1, {TASK: "_unknown", QUEUE: queue, REASON: "unknown_task"})

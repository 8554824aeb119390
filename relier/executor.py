"""Running one delivery of a task inside a worker's pool process.

The Celery message is only a hint: the journal decides. A delivery runs
``claim`` (which drops duplicates by state and starts a fenced attempt),
then the function, then ``complete`` or ``fail`` with the attempt's fence.
Nothing a message or a task does may crash the worker or loop forever: bad
messages and payloads go to the DLQ with a reason, task exceptions follow
the retry policy, and Redis outages are waited out for a bounded time.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import os
import random
import time
import traceback
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import redis.exceptions

from ._loop import run_coroutine
from .clock import now_ms
from .context import TaskContext
from .dlq import Reason
from .envelope import Envelope, decode, dumps
from .errors import (
    InvalidEnvelopeError,
    PayloadNotSerializableError,
    RedisUnavailableError,
    StaleFenceError,
)
from .message import new_delivery_tag

if TYPE_CHECKING:
    from .app import Relier
    from .scripts import Claim
    from .task import RlTask

__all__ = ["execute"]

log = logging.getLogger("relier.worker")
T = TypeVar("T")

_rng = random.Random()
# How long a claim waits out a Redis outage (a restart, a failover) before
# the delivery is handed back to the broker.
_REDIS_PATIENCE_S = 30.0
# When a task that found its max_concurrency slots full is looked at again
# if no holder wakes it first (doubling up to 8x for a task that keeps
# waiting): the backstop for a slot freed by a crash, which wakes nobody.
_WAIT_RECHECK_MS = 1000
_TRANSIENT = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError,
    RedisUnavailableError,
)


def _patiently(what: str, fn: Callable[[], T], patience: float | None = None) -> T:
    """``fn()``, retried with backoff while Redis is unreachable.

    With ``patience`` (seconds) it gives up after that long; without, it
    waits as long as the outage lasts: an attempt's outcome (commit, failure,
    DLQ) is never dropped, because a task whose outcome is lost would stay
    RUNNING under a live worker. Nothing else can progress without Redis, so
    a pool process waiting for it loses nothing.
    """
    deadline = None if patience is None else time.monotonic() + patience
    pause = 0.05
    warned = 0.0
    while True:
        try:
            return fn()
        except _TRANSIENT as exc:
            if deadline is not None and time.monotonic() >= deadline:
                raise
            if time.monotonic() - warned > 10:
                log.warning("relier: Redis unavailable during %s (%s); retrying", what, exc)
                warned = time.monotonic()
            time.sleep(pause)
            pause = min(pause * 2, 1.0)


def _owner(request: Any) -> str:
    from .worker import current_worker_id

    return current_worker_id(f"{getattr(request, 'hostname', None) or 'worker'}#{os.getpid()}")


def execute(
    task: RlTask[Any, Any], request: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    """Handle one Celery delivery of ``task``; never raises for task errors."""
    from .app import current

    relier = task.relier or current()
    task_id = str(request.id)
    written_by_relier = list(args) == [task_id] and not kwargs
    owner = _owner(request)
    token = uuid.uuid4().hex
    try:
        claim = _patiently(
            "claim",
            lambda: relier.scripts.claim(
                task_id,
                owner,
                now_ms(),
                os.getpid(),
                token,
                task.name,
                task.max_concurrency or 0,
                _WAIT_RECHECK_MS,
            ),
            _REDIS_PATIENCE_S,
        )
    except _TRANSIENT as exc:
        from celery.exceptions import Reject

        # Hand the message back rather than lose it; the journal still says
        # PENDING, so whichever worker gets it next claims it.
        raise Reject(f"Redis unavailable: {exc}", requeue=True) from exc
    if not claim.run:
        if claim.state == "WAITING":
            # Back in the journal as PENDING and scheduled: this message is
            # done with, and the pool process is free for other work.
            log.debug("relier: %s[%s] waits for a max_concurrency slot", task.name, task_id)
            return
        if claim.state == "MISSING" and not written_by_relier:
            # A plain Celery .delay()/send_task() of a Relier task name, or
            # a forged message: there is no journaled payload to run.
            log.error(
                "relier: refused a message for %s[%s] that Relier did not write (arguments %r, "
                "%r; no journal entry): push Relier tasks with task.push()/apush()",
                task.name,
                task_id,
                args,
                kwargs,
            )
        else:
            log.info(
                "relier: dropped delivery of %s[%s] (state %s)", task.name, task_id, claim.state
            )
        return
    if not written_by_relier:
        # The message is only a hint; the journal's payload is what runs.
        log.warning(
            "relier: ignored the arguments of a foreign message for %s[%s]; running the "
            "journaled payload",
            task.name,
            task_id,
        )
    try:
        _run_attempt(relier, task, task_id, owner, claim)
    finally:
        if task.max_concurrency:
            _release(relier, task, task_id, claim.fence)


def _release(relier: Relier, task: RlTask[Any, Any], task_id: str, fence: int) -> None:
    """Give back the attempt's concurrency slot and wake the oldest waiter.

    Best effort: a slot not released here (Redis down, process killed) is
    reclaimed by the next claim that finds the semaphore full, and a waiter
    not woken is re-published by the scheduler at its re-check time.
    """
    try:
        waiter = relier.scripts.release(task_id, task.name, fence)
        if waiter is not None:
            relier.scripts.requeue(waiter[0], waiter[1], now_ms(), new_delivery_tag())
    except _TRANSIENT as exc:
        log.warning("relier: could not release %s[%s]'s slot now (%s)", task.name, task_id, exc)


def _run_attempt(
    relier: Relier,
    task: RlTask[Any, Any],
    task_id: str,
    owner: str,
    claim: Claim,
) -> None:
    scripts = relier.scripts
    fence, attempt = claim.fence, claim.attempt
    raw_envelope, raw_progress = claim.envelope, claim.progress

    def dead(reason: Reason, error: str) -> None:
        _patiently(
            "dead_letter",
            lambda: scripts.dead_letter(task_id, now_ms(), reason, error, fence, owner),
        )
        log.error("relier: %s[%s] moved to the DLQ (%s): %s", task.name, task_id, reason, error)

    try:
        envelope = decode(raw_envelope)
        if envelope.task != task.name or envelope.id != task_id:
            raise InvalidEnvelopeError(
                f"envelope is for {envelope.task}[{envelope.id}], "
                f"delivered as {task.name}[{task_id}]"
            )
        progress = json.loads(raw_progress) if raw_progress else None
    except (InvalidEnvelopeError, ValueError) as exc:
        dead(Reason.INVALID_PAYLOAD, str(exc))
        return

    ctx = TaskContext(
        task_id=task_id,
        task_name=task.name,
        attempt=attempt,
        fence=fence,
        progress=progress,
        _save=lambda data: _patiently(
            "checkpoint", lambda: scripts.checkpoint(task_id, fence, data, now_ms())
        ),
    )
    call_args = [ctx, *envelope.args] if task.takes_context else list(envelope.args)
    try:
        task.signature.bind(*call_args, **envelope.kwargs)
    except TypeError as exc:
        # Arguments that do not fit the signature fail the same way on every
        # attempt: retrying would only loop.
        dead(Reason.INVALID_PAYLOAD, f"arguments do not fit {task.name}: {exc}")
        return
    try:
        if task.is_async:
            value = run_coroutine(task.fn(*call_args, **envelope.kwargs))
        else:
            value = task.fn(*call_args, **envelope.kwargs)
    except StaleFenceError as exc:
        log.warning("relier: %s[%s] stopped: %s", task.name, task_id, exc)
        return
    except (Exception, asyncio.CancelledError, concurrent.futures.CancelledError) as exc:
        # A coroutine cancelled from inside (or its loop's future cancelled)
        # is a failed attempt like any other, never a task left RUNNING.
        _fail(relier, task, task_id, owner, fence, claim.failures + 1, attempt, exc)
        return

    try:
        result = dumps(value, what=f"result of {task.name}")
    except PayloadNotSerializableError as exc:
        dead(Reason.RESULT_NOT_SERIALIZABLE, str(exc))
        return
    committed = _patiently(
        "complete",
        lambda: scripts.complete(
            task_id, fence, result, now_ms(), _result_ttl(relier, task, envelope), owner
        ),
    )
    if not committed:
        log.warning(
            "relier: commit of %s[%s] with fence %d refused: a newer attempt owns the task",
            task.name,
            task_id,
            fence,
        )


def _result_ttl(relier: Relier, task: RlTask[Any, Any], envelope: Envelope) -> int:
    """How long the journal keeps a success: an idempotent call's key TTL, if set."""
    if envelope.idempotency_key is not None and task.idempotency_ttl is not None:
        return max(1, round(task.idempotency_ttl))
    return relier.settings.result_ttl


def _fail(
    relier: Relier,
    task: RlTask[Any, Any],
    task_id: str,
    owner: str,
    fence: int,
    failures: int,
    attempt: int,
    exc: BaseException,
) -> None:
    """Record failed attempt ``attempt``, the task's ``failures``-th exception.

    Retries are counted in exceptions, not attempts: an attempt cut short by
    a crash (and resurrected) does not use up a retry.
    """
    settings = relier.settings
    error = f"{type(exc).__name__}: {exc}"
    tb = "".join(traceback.format_exception(exc))
    if task.retry.should_retry(exc, failures, settings):
        delay = task.retry.delay(failures, settings, _rng)
        due = now_ms() + max(1, round(delay * 1000))
        reason = ""
        log.warning(
            "relier: %s[%s] attempt %d failed (%s); retry in %.2f s",
            task.name,
            task_id,
            attempt,
            error,
            delay,
        )
    else:
        due = 0
        retryable = isinstance(exc, task.retry.retry_on)
        reason = Reason.MAX_RETRIES if retryable else Reason.NOT_RETRYABLE
        log.error(
            "relier: %s[%s] attempt %d failed (%s); moved to the DLQ (%s)",
            task.name,
            task_id,
            attempt,
            error,
            reason,
        )
    outcome = _patiently(
        "fail",
        lambda: relier.scripts.fail(task_id, fence, now_ms(), due, reason, error, tb, owner),
    )
    if outcome == 0:
        log.warning(
            "relier: failure of %s[%s] with fence %d refused: a newer attempt owns the task",
            task.name,
            task_id,
            fence,
        )

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
import inspect
import json
import logging
import os
import random
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import redis.exceptions

from relier import telemetry
from relier.clock import now_ms
from relier.context import TaskContext
from relier.errors import (
    BadSignatureError,
    ConfigurationError,
    HardTimeoutError,
    InvalidEnvelopeError,
    PayloadNotSerializableError,
    PayloadValidationError,
    RedisUnavailableError,
    StaleFenceError,
)
from relier.hub import current
from relier.journal.envelope import Envelope, decode, dumps
from relier.journal.message import new_delivery_tag
from relier.journal.states import Reason
from relier.worker import migrations
from relier.worker.identity import current_worker_id
from relier.worker.loop import RunningCoroutine, run_coroutine
from relier.worker.timeouts import Verdict, Watchdog, replace_process, thread_stack

if TYPE_CHECKING:
    from relier.hub import Relier
    from relier.journal.scripts import Claim
    from relier.registry import TaskSpec

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
# Waited out like an outage: a full Redis (maxmemory with noeviction)
# refuses every write, a claim's included, until memory is freed; treated as
# a corrupt journal instead, the claim would dead-letter healthy tasks.
_TRANSIENT = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError,
    redis.exceptions.OutOfMemoryError,
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
    return current_worker_id(f"{getattr(request, 'hostname', None) or 'worker'}#{os.getpid()}")


def execute(task: TaskSpec, request: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Handle one Celery delivery of ``task``; never raises for task errors."""
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
    except redis.exceptions.ResponseError as exc:
        # claim.lua could not read the journal hash (a field edited by hand
        # into a non-number, say): every delivery would fail the same way and
        # the task would sit PENDING with its message acked. Dead-letter it
        # with the script's error instead; dead_letter.lua reads only state.
        error = f"the journal entry cannot be claimed: {exc}"
        if not _dead_letter(relier, task, task_id, owner, None, Reason.CORRUPT_JOURNAL, error):
            log.error("relier: dropped delivery of %s[%s]: %s", task.name, task_id, error)
        return
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
                "relier: refused a message for %s[%s] that Relier did not write (arguments %.200r, "
                "%.200r; no journal entry): push Relier tasks with task.push()/apush()",
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
    attempt = telemetry.attempt_started(task.name, task_id, owner, claim, request)
    try:
        _run_attempt(relier, task, task_id, owner, claim)
    finally:
        if task.max_concurrency:
            _release(relier, task, task_id, claim.fence)
        telemetry.attempt_ended(attempt)


def _release(relier: Relier, task: TaskSpec, task_id: str, fence: int) -> None:
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


def _dead_letter(
    relier: Relier,
    task: TaskSpec,
    task_id: str,
    owner: str,
    fence: int | None,
    reason: Reason,
    error: str,
) -> bool:
    """Move ``task_id`` to the DLQ (``fence``: of the claimed attempt, or None
    before any claim); False when dead_letter.lua refused (its state forbids).

    A claimed attempt's outcome is logged and recorded either way, as it
    always was; only an unclaimed one's refusal is left to the caller.
    """
    moved = _patiently(
        "dead_letter",
        lambda: relier.scripts.dead_letter(task_id, now_ms(), reason, error, fence, owner),
    )
    if moved or fence is not None:
        log.error("relier: %s[%s] moved to the DLQ (%s): %s", task.name, task_id, reason, error)
    if fence is not None:
        telemetry.dead_lettered(task_id, fence, reason, error)
    return moved


def _run_attempt(
    relier: Relier,
    task: TaskSpec,
    task_id: str,
    owner: str,
    claim: Claim,
) -> None:
    scripts = relier.scripts
    fence, attempt = claim.fence, claim.attempt
    raw_envelope, raw_progress = claim.envelope, claim.progress

    def dead(reason: Reason, error: str) -> None:
        _dead_letter(relier, task, task_id, owner, fence, reason, error)

    try:
        envelope = decode(raw_envelope, keys=relier.settings.signing_keys)
        if envelope.task != task.name or envelope.id != task_id:
            raise InvalidEnvelopeError(
                f"envelope is for {envelope.task}[{envelope.id}], "
                f"delivered as {task.name}[{task_id}]"
            )
        progress = json.loads(raw_progress) if raw_progress else None
    except BadSignatureError as exc:
        dead(Reason.BAD_SIGNATURE, str(exc))
        return
    except (InvalidEnvelopeError, ValueError) as exc:
        dead(Reason.INVALID_PAYLOAD, str(exc))
        return
    telemetry.attempt_decoded(task_id, fence, envelope)
    if envelope.schema_version > task.schema_version:
        # Made for newer code than this worker's: hand it back for the newer
        # workers of a rolling deploy (no retry used up; see migrations.py).
        _patiently(
            "defer",
            lambda: migrations.defer(relier, task, task_id, owner, fence, envelope.schema_version),
        )
        return
    upgraded = migrations.upgrade(task, envelope)
    if isinstance(upgraded, migrations.Failure):
        # A migration fails the same way on every attempt: no retry.
        failed = upgraded
        _patiently(
            "fail",
            lambda: scripts.fail(
                task_id, fence, now_ms(), 0, Reason.MIGRATION_FAILED, failed.error,
                failed.traceback, owner,
            ),
        )  # fmt: skip
        log.error(
            "relier: %s[%s] moved to the DLQ (%s): %s",
            task.name,
            task_id,
            Reason.MIGRATION_FAILED,
            failed.error,
        )
        telemetry.dead_lettered(task_id, fence, Reason.MIGRATION_FAILED, failed.error)
        return
    envelope = upgraded

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
    try:
        args, kwargs = task.validator.from_json(envelope.args, envelope.kwargs)
    except (PayloadValidationError, ConfigurationError) as exc:
        # Arguments that do not fit the signature or its type hints fail the
        # same way on every attempt: retrying would only loop.
        dead(Reason.INVALID_PAYLOAD, str(exc))
        return
    call_args = [ctx, *args] if task.takes_context else args
    running = RunningCoroutine(task.fn(*call_args, **kwargs)) if task.is_async else None
    watchdog = _watchdog(relier, task, task_id, owner, claim, ctx, running)
    error: BaseException | None = None
    try:
        if running is not None:
            if watchdog is not None:
                watchdog.start(cancel=running.cancel)
            value = running.result()
        else:
            if watchdog is not None:
                watchdog.start()
            value = task.fn(*call_args, **kwargs)
    except (Exception, asyncio.CancelledError, concurrent.futures.CancelledError) as exc:
        # A coroutine cancelled from inside (or its loop's future cancelled)
        # is a failed attempt like any other, never a task left RUNNING.
        error = exc
    except BaseException:
        if watchdog is not None:
            watchdog.finish()
        raise
    verdict = watchdog.finish() if watchdog is not None else Verdict.IN_TIME
    if verdict is Verdict.ABANDONED:
        assert watchdog is not None
        # The watchdog recorded the hard timeout; in a pool process it is
        # replacing the process, which must not take another task meanwhile.
        watchdog.join()
        if running is not None and running.abandoned:
            return  # the coroutine runs on, a zombie: it has no outcome yet
        # A zombie that ended after all: its outcome goes through the fenced
        # scripts like any other, which refuse it (history: stale_commit).
    if verdict is Verdict.CANCELLED:
        assert task.hard_timeout is not None
        # However the cancelled coroutine ended (re-raising, or swallowing
        # the cancellation and returning), its deadline had passed.
        timeout = HardTimeoutError(task.name, task.hard_timeout)
        timeout.__cause__ = error
        error = timeout
    if isinstance(error, StaleFenceError):
        log.warning("relier: %s[%s] stopped: %s", task.name, task_id, error)
        telemetry.stale_fence(task_id, fence, "checkpoint")
        return
    if error is not None:
        _fail(relier, task, task_id, owner, fence, claim.failures + 1, attempt, error)
        return

    try:
        result = dumps(task.validator.result_to_json(value), what=f"result of {task.name}")
    except PayloadNotSerializableError as exc:
        dead(Reason.RESULT_NOT_SERIALIZABLE, str(exc))
        return
    committed = _patiently(
        "complete",
        lambda: scripts.complete(
            task_id, fence, result, now_ms(), _result_ttl(relier, task, envelope), owner
        ),
    )
    telemetry.committed(task_id, fence, bool(committed))
    if not committed:
        log.warning(
            "relier: commit of %s[%s] with fence %d refused: the attempt no longer holds the task "
            "(superseded by a newer attempt, or ended by its hard timeout)",
            task.name,
            task_id,
            fence,
        )


def _result_ttl(relier: Relier, task: TaskSpec, envelope: Envelope) -> int:
    """How long the journal keeps a success: an idempotent call's key TTL, if set."""
    if envelope.idempotency_key is not None and task.idempotency_ttl is not None:
        return max(1, round(task.idempotency_ttl))
    return relier.settings.result_ttl


def _watchdog(
    relier: Relier,
    task: TaskSpec,
    task_id: str,
    owner: str,
    claim: Claim,
    ctx: TaskContext,
    running: RunningCoroutine[Any] | None,
) -> Watchdog | None:
    """The deadlines of this attempt (``None`` if the task has no timeouts).

    Made in the thread that runs the attempt, whose stack the DLQ entry of a
    stuck sync task shows.
    """
    if task.soft_timeout is None and task.hard_timeout is None:
        return None
    name = f"{task.name}[{task_id}]"
    caller = threading.get_ident()

    def soft() -> None:
        seconds = task.soft_timeout or 0.0
        try:
            noted = relier.scripts.soft_timeout(task_id, claim.fence, now_ms(), seconds)
        except _TRANSIENT as exc:
            log.warning("relier: could not record the soft timeout of %s (%s)", name, exc)
            noted = True
        if not noted:
            return  # the attempt is over or superseded: no hook on its behalf
        telemetry.soft_timeout(task_id, claim.fence, seconds)
        hook = task.on_soft_timeout
        if hook is None:
            log.warning(
                "relier: %s passed its soft_timeout of %g s (no on_soft_timeout hook)",
                name,
                seconds,
            )
            return
        log.warning("relier: %s passed its soft_timeout of %g s; calling its hook", name, seconds)
        outcome = hook(ctx)
        if inspect.iscoroutine(outcome):
            # Next to the task's own coroutine, if it is async.
            run_coroutine(outcome)

    def hard() -> None:
        seconds = task.hard_timeout or 0.0
        if running is not None:
            stack = running.stack()
        else:
            stack = thread_stack(caller, below=_run_attempt.__code__)
        exc = HardTimeoutError(task.name, seconds)
        failures = claim.failures + 1
        _fail(relier, task, task_id, owner, claim.fence, failures, claim.attempt, exc, stack)
        if task.max_concurrency:
            # The process may be about to end: _release after the attempt
            # would never run.
            _release(relier, task, task_id, claim.fence)
        replace_process(name)
        if running is not None:
            # Not in a pool process (nothing was replaced): free the thread
            # waiting for a coroutine that ignores its cancellation.
            running.abandon(exc)

    return Watchdog(name, task.soft_timeout, task.hard_timeout, soft, hard)


def _fail(
    relier: Relier,
    task: TaskSpec,
    task_id: str,
    owner: str,
    fence: int,
    failures: int,
    attempt: int,
    exc: BaseException,
    stack: str = "",
) -> None:
    """Record failed attempt ``attempt``, the task's ``failures``-th exception.

    Retries are counted in exceptions, not attempts: an attempt cut short by
    a crash (and resurrected) does not use up a retry. ``stack`` is where a
    stuck attempt was when its hard timeout stopped it (it raised nothing,
    so its exception has no traceback of its own).
    """
    settings = relier.settings
    error = f"{type(exc).__name__}: {exc}"
    if stack:
        tb = "Stack of the attempt at its hard timeout (most recent call last):\n" + stack
        tb += "".join(traceback.format_exception_only(exc))
    else:
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
        if isinstance(exc, HardTimeoutError):
            reason = Reason.HARD_TIMEOUT
        else:
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
    telemetry.attempt_failed(task_id, fence, exc, outcome, reason, due)
    if outcome == 0:
        log.warning(
            "relier: failure of %s[%s] with fence %d refused: the attempt no longer holds the task "
            "(superseded by a newer attempt, or ended by its hard timeout)",
            task.name,
            task_id,
            fence,
        )

"""Every exception Relier raises, under one root.

Callers can catch :class:`RelierError` to handle anything of ours, or a
precise subclass. Each class says when it is raised; each message says what
to do about it.

::

    RelierError
    ├── ConfigurationError
    ├── RedisUnavailableError
    │   └── RedisFullError
    ├── PreflightError
    ├── UnknownTaskError
    ├── PayloadError
    │   ├── PayloadNotSerializableError
    │   ├── PayloadTooLargeError
    │   ├── PayloadValidationError
    │   └── InvalidEnvelopeError
    │       └── BadSignatureError
    ├── TaskFailedError
    ├── TaskNotFoundError
    ├── ResultTimeoutError
    ├── StaleFenceError
    ├── HardTimeoutError
    ├── LockNotAcquiredError
    ├── IdempotencyConflictError
    ├── AdmissionRejectedError
    └── LocalRedisError
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AdmissionRejectedError",
    "BadSignatureError",
    "ConfigurationError",
    "HardTimeoutError",
    "IdempotencyConflictError",
    "InvalidEnvelopeError",
    "LocalRedisError",
    "LockNotAcquiredError",
    "PayloadError",
    "PayloadNotSerializableError",
    "PayloadTooLargeError",
    "PayloadValidationError",
    "PreflightError",
    "RedisFullError",
    "RedisUnavailableError",
    "RelierError",
    "ResultTimeoutError",
    "StaleFenceError",
    "TaskFailedError",
    "TaskNotFoundError",
    "UnknownTaskError",
]


class RelierError(Exception):
    """Root of every exception raised by Relier."""


class ConfigurationError(RelierError):
    """Raised when a setting is missing, malformed or contradicts another.

    The message names the ``RELIER_*`` variable (or decorator option), the
    value received and what would be accepted.
    """


class RedisUnavailableError(RelierError):
    """Raised when Redis cannot be reached or drops the connection mid-call.

    Wraps the ``redis.exceptions`` error as ``__cause__``; the message names
    the URL (without its password).
    """


class RedisFullError(RedisUnavailableError):
    """Raised when Redis refuses a write because it is at its ``maxmemory``.

    With the ``noeviction`` policy Relier requires, a full Redis answers
    ``OOM`` instead of dropping keys. Nothing was journaled or published by
    the call that raised it (Redis refuses a script at its first write,
    and lets one that has started writing finish), so it is safe to retry
    once memory is freed. A subclass of :class:`RedisUnavailableError`: the
    admin API answers 503 and ``rl`` exits with 3, as for an unreachable
    Redis.
    """


class PreflightError(RelierError):
    """Raised when Redis is not fit to hold the journal.

    Relier needs Redis 7+, AOF on and ``maxmemory-policy noeviction``; the
    message names each failed check and the exact command that fixes it.
    """

    def __init__(self, message: str, problems: list[str]) -> None:
        super().__init__(message)
        self.problems = problems


class UnknownTaskError(RelierError):
    """Raised when a task is pushed by a name no ``@rl_task`` registered."""


class PayloadError(RelierError):
    """Raised when a call's arguments cannot travel as a Relier payload."""


class PayloadNotSerializableError(PayloadError):
    """Raised when an argument cannot be encoded as JSON (Relier never pickles)."""


class PayloadTooLargeError(PayloadError):
    """Raised when an encoded payload exceeds ``RELIER_MAX_PAYLOAD_BYTES``."""

    def __init__(self, message: str, size: int, limit: int) -> None:
        super().__init__(message)
        self.size = size
        self.limit = limit


class PayloadValidationError(PayloadError):
    """Raised when a call's arguments do not fit the task's signature or type hints.

    Raised by ``push`` (nothing is enqueued); on a worker the same check
    sends the task to the DLQ with reason ``invalid_payload``. The message
    names each offending argument and what was wrong with it.
    """


class InvalidEnvelopeError(PayloadError):
    """Raised when a stored or delivered envelope cannot be decoded.

    Workers never let it escape: the task goes to the DLQ with reason
    ``invalid_payload``.
    """


class BadSignatureError(InvalidEnvelopeError):
    """Raised when a worker that has ``RELIER_SIGNING_KEY`` set reads an envelope
    that is unsigned or whose HMAC matches none of its keys.

    Workers never let it escape: the task goes to the DLQ with reason
    ``bad_signature`` and its function is not called. Give every producer
    the same key (or list the producer's key in ``RELIER_SIGNING_OLD_KEYS``).
    """


class TaskFailedError(RelierError):
    """Raised by ``TaskHandle.result()`` when the task ended in the DLQ.

    ``reason`` is the DLQ reason (``max_retries``, ``unknown_task``, ...) and
    ``error`` the last error's text.
    """

    def __init__(self, task_id: str, reason: str, error: str) -> None:
        super().__init__(f"task {task_id} is in the dead letter queue ({reason}): {error}")
        self.task_id = task_id
        self.reason = reason
        self.error = error


class ResultTimeoutError(RelierError, TimeoutError):
    """Raised by ``TaskHandle.result()`` when the task has not ended in time.

    The task is not cancelled; it keeps running and its result can be
    awaited again.
    """


class TaskNotFoundError(RelierError):
    """Raised when no journal entry exists for a task id.

    Either the id was never pushed to this Redis/prefix, or the task finished
    longer ago than ``RELIER_RESULT_TTL`` and its entry expired.
    """


class StaleFenceError(RelierError):
    """Raised inside a task whose attempt has been superseded.

    A newer attempt of the same task holds a larger fence (the worker was
    presumed dead and the task resurrected), so this attempt's checkpoints
    and commit are refused. The worker catches it; user code may let it
    propagate.
    """


class HardTimeoutError(RelierError, TimeoutError):
    """Raised (recorded, not thrown into user code) when an attempt outlives its
    ``hard_timeout``.

    The attempt is cancelled (async) or its process replaced (sync); this
    error is what the retry policy sees and what the history and the DLQ
    entry (reason ``hard_timeout``) show.
    """

    def __init__(self, task_name: str, seconds: float) -> None:
        super().__init__(f"{task_name} exceeded its hard_timeout of {seconds:g} s")
        self.task_name = task_name
        self.seconds = seconds


class LocalRedisError(RelierError):
    """Raised when a local redis-server (``rl demo``, the test fixtures) cannot be
    found, run, or reached; the message says which, with the install command."""


class LockNotAcquiredError(RelierError):
    """Raised by ``idempotency_lock`` when another holder keeps the lock.

    ``retry_after`` is how many seconds until the holder's lock expires
    (if it does not release it earlier).
    """

    def __init__(self, key: str, retry_after: float) -> None:
        super().__init__(
            f"the idempotency lock {key!r} is held by someone else (it expires in "
            f"{retry_after:.3f} s at the latest)"
        )
        self.key = key
        self.retry_after = retry_after


class IdempotencyConflictError(RelierError):
    """Raised by a push that reuses an idempotency key with other arguments.

    The first call under the key stands; nothing was enqueued. Use a key that
    covers everything that makes two calls different.
    """

    def __init__(self, task_name: str, key: str, task_id: str) -> None:
        super().__init__(
            f"idempotency key {key!r} of {task_name} was used before with different arguments "
            f"(task {task_id}); nothing was enqueued"
        )
        self.task_name = task_name
        self.key = key
        self.task_id = task_id


class AdmissionRejectedError(RelierError):
    """Raised by a push that admission control refused; nothing was enqueued.

    ``retry_after`` is the number of seconds (float) after which the same
    push would be admitted (for a rate limit, exactly; for a full queue, the
    configured hint), ``reason`` is ``"rate"`` or ``"depth"``. HTTP adapters
    turn it into ``429 Too Many Requests`` with a ``Retry-After`` header.
    For ``push_many``, ``rejected`` lists the indexes of refused calls and
    ``handles`` holds a handle for each admitted call (``None`` for refused).
    """

    def __init__(
        self,
        task_name: str,
        retry_after: float,
        reason: str,
        rejected: list[int] | None = None,
        handles: list[Any] | None = None,
    ) -> None:
        what = "rate limit" if reason == "rate" else "queue depth cap"
        count = f"{len(rejected)} calls" if rejected else "the call"
        super().__init__(
            f"{task_name}: {count} refused by its {what}; retry after {retry_after:.3f} s"
        )
        self.task_name = task_name
        self.retry_after = retry_after
        self.reason = reason
        self.rejected = rejected or []
        self.handles = handles or []

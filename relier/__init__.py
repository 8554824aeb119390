"""Relier: a reliability layer for Celery.

Add ``@rl_task`` to a function, push it with ``task.push(...)`` or
``await task.apush(...)``, run ``rl worker -A your.module``. Every pushed
task ends either SUCCEEDED or in the dead letter queue with a reason.
"""

from __future__ import annotations

from .app import Relier, bind, current
from .config import RelierSettings, load_settings
from .context import TaskContext
from .dispatch import Call, CallOptions
from .dlq import DeadTask, Reason
from .errors import (
    AdmissionRejectedError,
    BadSignatureError,
    ConfigurationError,
    HardTimeoutError,
    IdempotencyConflictError,
    InvalidEnvelopeError,
    LocalRedisError,
    LockNotAcquiredError,
    PayloadError,
    PayloadNotSerializableError,
    PayloadTooLargeError,
    PayloadValidationError,
    PreflightError,
    RedisFullError,
    RedisUnavailableError,
    RelierError,
    ResultTimeoutError,
    StaleFenceError,
    TaskFailedError,
    TaskNotFoundError,
    UnknownTaskError,
)
from .handle import TaskHandle
from .locks import IdempotencyLock, idempotency_lock
from .task import BoundTask, RlTask, rl_task

__version__ = "0.1.0"

__all__ = [
    "AdmissionRejectedError",
    "BadSignatureError",
    "BoundTask",
    "Call",
    "CallOptions",
    "ConfigurationError",
    "DeadTask",
    "HardTimeoutError",
    "IdempotencyConflictError",
    "IdempotencyLock",
    "InvalidEnvelopeError",
    "LocalRedisError",
    "LockNotAcquiredError",
    "PayloadError",
    "PayloadNotSerializableError",
    "PayloadTooLargeError",
    "PayloadValidationError",
    "PreflightError",
    "Reason",
    "RedisFullError",
    "RedisUnavailableError",
    "Relier",
    "RelierError",
    "RelierSettings",
    "ResultTimeoutError",
    "RlTask",
    "StaleFenceError",
    "TaskContext",
    "TaskFailedError",
    "TaskHandle",
    "TaskNotFoundError",
    "UnknownTaskError",
    "__version__",
    "bind",
    "current",
    "idempotency_lock",
    "load_settings",
    "rl_task",
    "send_task",
]


def send_task(name: str, *args: object, **kwargs: object) -> TaskHandle:
    """Push the task registered as ``name`` (``UnknownTaskError`` if none is)."""
    return current().task(name).push(*args, **kwargs)

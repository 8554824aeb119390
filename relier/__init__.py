"""Relier: a reliability layer for Celery.

Add ``@rl_task`` to a function, push it with ``task.push(...)`` or
``await task.apush(...)``, run ``rl worker -A your.module``. Every pushed
task ends either SUCCEEDED or in the dead letter queue with a reason.
"""

from __future__ import annotations

from typing import Any, cast

from relier.config import RelierSettings, load_settings
from relier.context import TaskContext
from relier.errors import (
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
from relier.hub import Relier, bind, current
from relier.journal.states import Reason
from relier.ops.dlq import DeadTask
from relier.tasks.decorator import BoundTask, RlTask, rl_task
from relier.tasks.dispatch import Call, CallOptions
from relier.tasks.handle import TaskHandle
from relier.tasks.locks import IdempotencyLock, idempotency_lock

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
    # Every registered task is an RlTask; the hub sees them as TaskSpecs.
    return cast("RlTask[..., Any]", current().task(name)).push(*args, **kwargs)

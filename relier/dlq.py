"""The dead letter queue: where a task ends when it cannot succeed.

A dead task keeps its journal hash (envelope, reason, last error, traceback)
and history without expiry, and is indexed in ``rl:dlq`` (score = time of
death). This module names the reasons and reads entries; ``fail.lua`` and
``dead_letter.lua`` write them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from .connection import translate_errors
from .errors import TaskNotFoundError

if TYPE_CHECKING:
    from .app import Relier

__all__ = ["DeadTask", "Reason", "dlq_size", "get_dead", "list_dead", "read_history"]


class Reason(StrEnum):
    """Why a task is in the DLQ."""

    MAX_RETRIES = "max_retries"
    """It failed with a retryable error more than ``max_retries`` times."""
    NOT_RETRYABLE = "not_retryable"
    """It raised an exception outside its ``retry_on``."""
    UNKNOWN_TASK = "unknown_task"
    """The worker that received it has no task of that name."""
    INVALID_PAYLOAD = "invalid_payload"
    """Its envelope could not be decoded or its arguments did not fit."""
    BAD_SIGNATURE = "bad_signature"
    """The worker requires signed envelopes (``RELIER_SIGNING_KEY``) and its
    envelope was unsigned or signed with none of the worker's keys."""
    RESULT_NOT_SERIALIZABLE = "result_not_serializable"
    """It returned a value JSON cannot carry."""
    POISON_PILL = "poison_pill"
    """Its own crashes killed the process running it ``max_resurrections`` times."""
    HARD_TIMEOUT = "hard_timeout"
    """Its last attempt was stopped by its ``hard_timeout`` and no retry was left."""
    MIGRATION_FAILED = "migration_failed"
    """A migration of its call from an older ``schema_version`` raised or returned no call."""
    SCHEMA_TOO_NEW = "schema_too_new"
    """It was made for a newer ``schema_version`` than the workers that received it know,
    for longer than ``RELIER_SCHEMA_DEFER_MAX`` seconds."""


@dataclass(frozen=True, slots=True)
class DeadTask:
    """One DLQ entry."""

    id: str
    task: str
    reason: str
    error: str
    traceback: str
    attempts: int
    died_ms: int
    envelope: str
    history: list[dict[str, Any]]


def _s(value: bytes | None) -> str:
    return value.decode() if value else ""


def read_history(relier: Relier, task_id: str) -> list[dict[str, Any]]:
    """A task's history events, oldest first."""
    with translate_errors(relier.settings.redis_url):
        raw = relier.redis.lrange(relier.keys.task(task_id).hist, 0, -1)
    return [json.loads(item) for item in raw]


def get_dead(relier: Relier, task_id: str) -> DeadTask:
    """The DLQ entry of ``task_id``.

    Raises:
        TaskNotFoundError: the task does not exist or is not DEAD.
    """
    fields = ("state", "task", "reason", "error", "tb", "attempt", "finished", "env")
    with translate_errors(relier.settings.redis_url):
        row = relier.redis.hmget(relier.keys.task(task_id).job, fields)
    if _s(row[0]) != "DEAD":
        raise TaskNotFoundError(f"task {task_id} is not in the dead letter queue")
    return DeadTask(
        id=task_id,
        task=_s(row[1]),
        reason=_s(row[2]),
        error=_s(row[3]),
        traceback=_s(row[4]),
        attempts=int(row[5] or 0),
        died_ms=int(row[6] or 0),
        envelope=_s(row[7]),
        history=read_history(relier, task_id),
    )


def list_dead(relier: Relier, limit: int = 100) -> list[str]:
    """Ids of the newest ``limit`` DLQ entries, newest first."""
    with translate_errors(relier.settings.redis_url):
        return [i.decode() for i in relier.redis.zrevrange(relier.keys.dlq, 0, limit - 1)]


def dlq_size(relier: Relier) -> int:
    """How many tasks are in the DLQ."""
    with translate_errors(relier.settings.redis_url):
        return int(relier.redis.zcard(relier.keys.dlq))

"""The dead letter queue: where a task ends when it cannot succeed.

A dead task keeps its journal hash (envelope, reason, last error, traceback)
and history without expiry, and is indexed in ``rl:dlq`` (score = time of
death). An entry leaves the DLQ only through an operator: :func:`release`
(``dlq_release.lua``: the same task runs again, with a new fence) or
:func:`purge` (``dlq_purge.lua``: its keys are deleted); each acts on one
task atomically and only while it is DEAD. This module names the reasons,
reads and filters entries, and runs those two scripts in batches;
``fail.lua``, ``dead_letter.lua``, ``resurrect.lua`` and ``defer.lua``
write entries.

Keys: ``rl:dlq`` and the dead tasks' ``rl:{<id>}:job``/``hist``/``done``
(release also pushes to the task's queue list and counts ``released`` in
``rl:stats:<start s>``).
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from relier.clock import now_ms
from relier.errors import TaskNotFoundError
from relier.journal.connection import translate_errors
from relier.journal.message import new_delivery_tag
from relier.journal.scripts import outcome
from relier.ops.inspection import journal_int

if TYPE_CHECKING:
    from relier.hub import Relier

__all__ = [
    "DeadSummary",
    "DeadTask",
    "Purged",
    "Released",
    "dlq_size",
    "find_dead",
    "get_dead",
    "list_dead",
    "purge",
    "read_history",
    "release",
]

_BATCH = 500


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
        attempts=journal_int(row[5]) or 0,
        died_ms=journal_int(row[6]) or 0,
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


@dataclass(frozen=True, slots=True)
class DeadSummary:
    """One DLQ entry as listed: enough to choose it, not the whole record.

    An entry whose journal hash is gone (deleted by hand) has empty ``task``,
    ``queue`` and ``reason``; :func:`purge` removes it.
    """

    id: str
    task: str
    queue: str
    reason: str
    error: str
    attempts: int
    died_ms: int


@dataclass(frozen=True, slots=True)
class Released:
    """What :func:`release` did.

    Attributes:
        released: id -> the new fence of each task sent back to work.
        refused: id -> why it was not: its state when it is not DEAD
            (released or revived meanwhile, say), ``MISSING`` when no journal
            entry has that id, ``CORRUPT`` when its ``fence`` is not an
            integer (edited by hand: it cannot be raised safely).
    """

    released: dict[str, int]
    refused: dict[str, str]


@dataclass(frozen=True, slots=True)
class Purged:
    """What :func:`purge` did.

    Attributes:
        purged: ids deleted (including DLQ entries whose journal was gone).
        refused: id -> why it was not: its state when it is not DEAD,
            ``MISSING`` when the id is in neither the journal nor the DLQ.
    """

    purged: list[str]
    refused: dict[str, str]


def find_dead(
    relier: Relier,
    *,
    task: str | None = None,
    reason: str | None = None,
    since_ms: int | None = None,
    before_ms: int | None = None,
    limit: int | None = None,
) -> list[DeadSummary]:
    """DLQ entries, newest first, that match every filter given.

    Args:
        task: task name, or a shell-style pattern (``billing.*``).
        reason: a :class:`Reason` value.
        since_ms: died at or after this time (ms since the epoch).
        before_ms: died strictly before this time.
        limit: stop after this many matches (None: all).
    """
    key = relier.keys.dlq
    top = f"({before_ms}" if before_ms is not None else "+inf"
    bottom = since_ms if since_ms is not None else "-inf"
    found: list[DeadSummary] = []
    offset = 0
    client = relier.redis
    with translate_errors(relier.settings.redis_url):
        while limit is None or len(found) < limit:
            page = client.zrevrangebyscore(key, top, bottom, offset, _BATCH, withscores=True)
            if not page:
                break
            offset += len(page)
            with client.pipeline(transaction=False) as pipe:
                for member, _ in page:
                    pipe.hmget(
                        relier.keys.task(member.decode()).job,
                        ("task", "queue", "reason", "error", "attempt"),
                    )
                rows = pipe.execute()
            for (member, score), row in zip(page, rows, strict=True):
                entry = DeadSummary(
                    id=member.decode(),
                    task=_s(row[0]),
                    queue=_s(row[1]),
                    reason=_s(row[2]),
                    error=_s(row[3]),
                    attempts=journal_int(row[4]) or 0,
                    died_ms=int(score),
                )
                if task is not None and not fnmatch.fnmatchcase(entry.task, task):
                    continue
                if reason is not None and entry.reason != reason:
                    continue
                found.append(entry)
                if limit is not None and len(found) >= limit:
                    break
    return found


def _batches(ids: Iterable[str]) -> list[list[str]]:
    unique = list(dict.fromkeys(ids))
    return [unique[n : n + _BATCH] for n in range(0, len(unique), _BATCH)]


def release(
    relier: Relier, ids: Iterable[str], progress: Callable[[int], object] | None = None
) -> Released:
    """Send DLQ entries back to work: each runs again with its original
    envelope, attempt count 0 and a new, larger fence (``dlq_release.lua``).

    The history of each keeps a ``released`` event. Admission (rate limits,
    queue-depth caps) does not apply: an operator's release is never refused
    for load. Each task moves atomically; the batch as a whole does not.

    Args:
        progress: called with the number of ids handled after each batch.
    """
    done: dict[str, int] = {}
    refused: dict[str, str] = {}
    client, scripts = relier.redis, relier.scripts
    with translate_errors(relier.settings.redis_url):
        for batch in _batches(ids):
            # A task's queue changes only if it is revived (a new push of a
            # dead idempotent call), and then it is no longer DEAD: the
            # script refuses with "QUEUE" only in that race, so one more
            # read settles it.
            todo = batch
            for _ in range(2):
                with client.pipeline(transaction=False) as pipe:
                    for task_id in todo:
                        pipe.hget(relier.keys.task(task_id).job, "queue")
                    queues = pipe.execute()
                now = now_ms()
                with client.pipeline(transaction=False) as pipe:
                    for task_id, queue in zip(todo, queues, strict=True):
                        if queue is not None:
                            tag = new_delivery_tag()
                            scripts.dlq_release(task_id, queue.decode(), now, tag, client=pipe)
                    replies = iter(pipe.execute())
                again = []
                for task_id, queue in zip(todo, queues, strict=True):
                    result = outcome(next(replies)) if queue is not None else None
                    if result is None:
                        refused[task_id] = "MISSING"
                    elif result.done:
                        done[task_id] = int(result.detail)
                    elif result.detail == "QUEUE":
                        again.append(task_id)
                    else:
                        refused[task_id] = result.detail
                todo = again
            refused.update(dict.fromkeys(todo, "QUEUE"))
            if progress is not None:
                progress(len(batch))
    return Released(done, refused)


def purge(
    relier: Relier, ids: Iterable[str], progress: Callable[[int], object] | None = None
) -> Purged:
    """Delete DLQ entries for good: each task's journal hash, history, done
    list and DLQ entry, atomically, and only while it is DEAD (``dlq_purge.lua``).

    Args:
        progress: called with the number of ids handled after each batch.
    """
    done: list[str] = []
    refused: dict[str, str] = {}
    client, scripts = relier.redis, relier.scripts
    with translate_errors(relier.settings.redis_url):
        for batch in _batches(ids):
            with client.pipeline(transaction=False) as pipe:
                for task_id in batch:
                    scripts.dlq_purge(task_id, client=pipe)
                replies = pipe.execute()
            for task_id, raw in zip(batch, replies, strict=True):
                result = outcome(raw)
                if result.done:
                    done.append(task_id)
                else:
                    refused[task_id] = result.detail
            if progress is not None:
                progress(len(batch))
    return Purged(done, refused)

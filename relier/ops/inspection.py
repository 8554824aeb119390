"""Inspection: read-only views of the journal, for ``rl`` and the admin APIs.

Every query here only reads, and each is a handful of pipelined round trips
whose cost grows with the number of workers and of tasks they hold (never
with the whole journal: nothing here scans ``rl:{*}:job``). ``rl status``,
``rl inflight``, ``rl workers`` and ``rl task`` print these results; a web
admin serialises them with :func:`dataclasses.asdict`.

Keys read: ``rl:workers``, ``rl:worker:<wid>``, ``rl:owned:<wid>``, the job
and history of the tasks workers own (or of the one task asked for),
``rl:queues`` and the queue lists it names, ``rl:schedule``, ``rl:dlq`` and
``rl:stats:<start s>`` (:mod:`relier.ops.stats`). Keys owned: none.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from relier.clock import now_ms as clock_now
from relier.errors import TaskNotFoundError
from relier.journal.connection import translate_errors
from relier.ops.stats import Rates, read_rates
from relier.ops.workers import WorkerInfo, list_workers

if TYPE_CHECKING:
    from relier.hub import Relier

__all__ = [
    "RETRYING_SCAN_MAX",
    "InflightTask",
    "QueueDepth",
    "Status",
    "TaskDetail",
    "WorkerStatus",
    "inflight",
    "journal_int",
    "status",
    "task_detail",
    "workers",
]

RETRYING_SCAN_MAX = 10_000
"""``status`` reads the state of at most this many ``rl:schedule`` entries
(the soonest due) to count the RETRYING ones; beyond it the count is partial."""

_OWNED_FIELDS = ("state", "task", "queue", "owner", "pid", "attempt", "fence", "started", "updated")


@dataclass(frozen=True, slots=True)
class QueueDepth:
    """A Celery queue and the messages waiting in it."""

    name: str
    depth: int


@dataclass(frozen=True, slots=True)
class Status:
    """The whole cluster at a glance (``rl status``).

    Attributes:
        workers_alive: listed workers whose lease is held.
        workers_dead: listed workers whose lease expired and whose tasks the
            resurrector has not taken back yet.
        queues: every queue tasks were pushed to, plus the default queue.
        running: tasks RUNNING on a listed worker.
        reserved: tasks a listed worker received but has not started.
        scheduled: entries of ``rl:schedule`` (retries, countdown pushes,
            tasks waiting for a ``max_concurrency`` slot or deferred).
        overdue: scheduled entries already due; a number that stays high
            means no resurrector is publishing them (no worker runs).
        retrying: RETRYING tasks among the scheduled ones.
        retrying_exact: False when ``scheduled`` exceeds
            :data:`RETRYING_SCAN_MAX`, so ``retrying`` counts only the
            soonest due.
        dlq: tasks in the dead letter queue.
        rates: events over the last minute.
    """

    now_ms: int
    workers_alive: int
    workers_dead: int
    queues: list[QueueDepth]
    running: int
    reserved: int
    scheduled: int
    overdue: int
    retrying: int
    retrying_exact: bool
    dlq: int
    rates: Rates


@dataclass(frozen=True, slots=True)
class InflightTask:
    """A task a worker holds: RUNNING, or RESERVED (received, not started).

    ``since_ms`` is the start of the attempt for a RUNNING task and the time
    it was reserved for a RESERVED one; ``elapsed_ms`` counts from it.
    """

    id: str
    task: str
    state: str
    queue: str
    worker_id: str
    worker_alive: bool
    pid: int | None
    attempt: int
    fence: int
    since_ms: int
    elapsed_ms: int


@dataclass(frozen=True, slots=True)
class WorkerStatus:
    """A listed worker incarnation (``rl workers``).

    ``lease_age_ms`` is the time since its lease was last renewed (None once
    the lease expired: the worker is dead, its tasks not yet taken back).
    """

    worker_id: str
    alive: bool
    node: str
    host: str
    pid: int
    started_ms: int
    uptime_ms: int
    lease_age_ms: int | None
    lease_left_ms: int
    owned: int
    running: int
    reserved: int


@dataclass(frozen=True, slots=True)
class TaskDetail:
    """One task's journal entry and full history (``rl task ID``).

    Times are ms since the epoch (None when not reached). ``envelope`` is the
    stored JSON text, as pushed; ``extra`` holds the journal fields not
    named here (deferral and concurrency bookkeeping), without the stored
    Celery message and the claim token.
    """

    id: str
    task: str
    state: str
    queue: str
    attempt: int
    fence: int
    failures: int
    resurrections: int
    worker_deaths: int
    owner: str | None
    pid: int | None
    created_ms: int | None
    updated_ms: int | None
    started_ms: int | None
    finished_ms: int | None
    due_ms: int | None
    reason: str | None
    error: str | None
    traceback: str | None
    result: str | None
    progress: str | None
    envelope: str
    history: list[dict[str, Any]]
    extra: dict[str, str] = field(default_factory=dict)


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode()


def journal_int(value: bytes | None) -> int | None:
    """A number field of a journal hash; None when absent or unreadable.

    Read-only views must show a hash edited by hand into garbage (that is how
    an operator finds it, e.g. in the DLQ as ``corrupt_journal``), not crash.
    """
    if value is None or value == b"":
        return None
    try:
        return int(value)
    except ValueError:
        pass
    try:
        return int(float(value))  # a time Lua computed as a float ("1.7e+12")
    except (ValueError, OverflowError):  # OverflowError: "inf"
        return None


def _held(relier: Relier, listed: list[WorkerInfo]) -> list[tuple[WorkerInfo, str, list[Any]]]:
    """(worker, task id, job fields) of every task in a listed worker's owned set."""
    client, keys = relier.redis, relier.keys
    with client.pipeline(transaction=False) as pipe:
        for worker in listed:
            pipe.smembers(keys.owned(worker.worker_id))
        owned = pipe.execute()
    pairs = [(w, i.decode()) for w, ids in zip(listed, owned, strict=True) for i in sorted(ids)]
    with client.pipeline(transaction=False) as pipe:
        for _, task_id in pairs:
            pipe.hmget(keys.task(task_id).job, _OWNED_FIELDS)
        rows = pipe.execute()
    held = []
    for (worker, task_id), row in zip(pairs, rows, strict=True):
        # A stale member (the task moved on and its owner was not told yet)
        # is not held: only count tasks whose journal names this worker.
        if row[0] in (b"RUNNING", b"RESERVED") and row[3] == worker.worker_id.encode():
            held.append((worker, task_id, row))
    return held


def _match(pattern: str | None, value: str) -> bool:
    return pattern is None or fnmatch.fnmatchcase(value, pattern)


def inflight(
    relier: Relier, queue: str | None = None, task: str | None = None, now_ms: int | None = None
) -> list[InflightTask]:
    """Every task a listed worker holds, longest-running first.

    Args:
        queue: only tasks of this queue (a shell-style pattern, like ``task``).
        task: only tasks whose name matches this pattern (``billing.*``).
    """
    now = clock_now() if now_ms is None else now_ms
    with translate_errors(relier.settings.redis_url):
        held = _held(relier, list_workers(relier))
    out = []
    for worker, task_id, row in held:
        state, name, q = row[0].decode(), _text(row[1]) or "", _text(row[2]) or ""
        if not (_match(queue, q) and _match(task, name)):
            continue
        since = journal_int(row[7] if state == "RUNNING" else row[8]) or now
        out.append(
            InflightTask(
                id=task_id,
                task=name,
                state=state,
                queue=q,
                worker_id=worker.worker_id,
                worker_alive=worker.alive,
                pid=journal_int(row[4]) if state == "RUNNING" else None,
                attempt=journal_int(row[5]) or 0,
                fence=journal_int(row[6]) or 0,
                since_ms=since,
                elapsed_ms=max(now - since, 0),
            )
        )
    out.sort(key=lambda t: (-t.elapsed_ms, t.id))
    return out


def workers(relier: Relier, now_ms: int | None = None) -> list[WorkerStatus]:
    """Every listed worker incarnation, oldest first, with the tasks it holds."""
    now = clock_now() if now_ms is None else now_ms
    with translate_errors(relier.settings.redis_url):
        listed = list_workers(relier)
        held = _held(relier, listed)
    running = {w.worker_id: 0 for w in listed}
    reserved = dict(running)
    for worker, _, row in held:
        counter = running if row[0] == b"RUNNING" else reserved
        counter[worker.worker_id] += 1
    return [
        WorkerStatus(
            worker_id=w.worker_id,
            alive=w.alive,
            node=w.node,
            host=w.host,
            pid=w.pid,
            started_ms=w.started_ms,
            uptime_ms=max(now - w.started_ms, 0) if w.started_ms else 0,
            lease_age_ms=max(w.lease_period_ms - w.lease_ttl_ms, 0) if w.alive else None,
            lease_left_ms=w.lease_ttl_ms,
            owned=w.owned,
            running=running[w.worker_id],
            reserved=reserved[w.worker_id],
        )
        for w in listed
    ]


def status(relier: Relier, queues: Iterable[str] = (), now_ms: int | None = None) -> Status:
    """Workers, queue depths, work in flight, scheduled, DLQ and rates.

    Args:
        queues: more queue names to show, besides those in ``rl:queues`` and
            the default queue.
    """
    now = clock_now() if now_ms is None else now_ms
    client, keys = relier.redis, relier.keys
    with translate_errors(relier.settings.redis_url):
        listed = list_workers(relier)
        held = _held(relier, listed)
        known = {m.decode() for m in client.smembers(keys.queues)}
        names = sorted(known | {relier.settings.default_queue} | set(queues))
        with client.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.llen(keys.queue(name))
            pipe.zcard(keys.schedule)
            pipe.zcount(keys.schedule, "-inf", now)
            pipe.zrange(keys.schedule, 0, RETRYING_SCAN_MAX - 1)
            pipe.zcard(keys.dlq)
            *depths, scheduled, overdue, soonest, dlq = pipe.execute()
        with client.pipeline(transaction=False) as pipe:
            for task_id in soonest:
                pipe.hget(keys.task(task_id.decode()).job, "state")
            states = pipe.execute()
        rates = read_rates(relier, now)
    running = sum(1 for _, _, row in held if row[0] == b"RUNNING")
    return Status(
        now_ms=now,
        workers_alive=sum(1 for w in listed if w.alive),
        workers_dead=sum(1 for w in listed if not w.alive),
        queues=[QueueDepth(n, int(d)) for n, d in zip(names, depths, strict=True)],
        running=running,
        reserved=len(held) - running,
        scheduled=int(scheduled),
        overdue=int(overdue),
        retrying=sum(1 for s in states if s == b"RETRYING"),
        retrying_exact=int(scheduled) <= RETRYING_SCAN_MAX,
        dlq=int(dlq),
        rates=rates,
    )


_NAMED = {
    "id", "task", "state", "queue", "attempt", "fence", "failures", "res", "res_w", "owner",
    "pid", "created", "updated", "started", "finished", "due", "reason", "error", "tb",
    "result", "progress", "env", "msg", "claim",
}  # fmt: skip


def task_detail(relier: Relier, task_id: str) -> TaskDetail:
    """One task's journal entry and history.

    Raises:
        TaskNotFoundError: no journal entry has that id (never pushed, purged,
            or a SUCCEEDED task past ``RELIER_RESULT_TTL``).
    """
    tk = relier.keys.task(task_id)
    with translate_errors(relier.settings.redis_url), relier.redis.pipeline(False) as pipe:
        pipe.hgetall(tk.job)
        pipe.lrange(tk.hist, 0, -1)
        raw, hist = pipe.execute()
    if not raw:
        raise TaskNotFoundError(
            f"no task {task_id!r} in the journal (never pushed, purged from the DLQ, or "
            "succeeded longer than RELIER_RESULT_TTL ago)"
        )
    job = {k.decode(): v for k, v in raw.items()}
    return TaskDetail(
        id=task_id,
        task=_text(job.get("task")) or "",
        state=_text(job.get("state")) or "",
        queue=_text(job.get("queue")) or "",
        attempt=journal_int(job.get("attempt")) or 0,
        fence=journal_int(job.get("fence")) or 0,
        failures=journal_int(job.get("failures")) or 0,
        resurrections=journal_int(job.get("res")) or 0,
        worker_deaths=journal_int(job.get("res_w")) or 0,
        owner=_text(job.get("owner")),
        pid=journal_int(job.get("pid")),
        created_ms=journal_int(job.get("created")),
        updated_ms=journal_int(job.get("updated")),
        started_ms=journal_int(job.get("started")),
        finished_ms=journal_int(job.get("finished")),
        due_ms=journal_int(job.get("due")),
        reason=_text(job.get("reason")),
        error=_text(job.get("error")),
        traceback=_text(job.get("tb")),
        result=_text(job.get("result")),
        progress=_text(job.get("progress")),
        envelope=_text(job.get("env")) or "",
        history=[json.loads(item) for item in hist],
        extra={k: v.decode(errors="replace") for k, v in job.items() if k not in _NAMED},
    )

"""Messages a worker took from the queue but died before it could reserve.

kombu's Redis transport moves a delivered message into its ``unacked`` hash
(indexed by delivery time in ``unacked_index``). Relier reserves the task in
the same transaction (:mod:`relier.worker.kombu.reservation`); when it could not, it
reserves a moment later, when Celery tells it about the message
(``task_received`` -> ``reserve.lua``). A worker killed in between leaves
the task PENDING, owned by nobody, its only message parked in
``unacked`` until kombu's visibility timeout (an hour by default) restores
it. Relier does not wait for that: the resurrector looks at ``unacked``
entries older than :data:`ORPHAN_AGE_S` and republishes any whose task the
journal still shows PENDING and unowned (``republish.lua``). A live worker
reserves within milliseconds, so such a task is stranded, not waiting; if it
was not, the duplicate message is dropped at claim.

Each entry is looked at once: a cursor (``rl:orphans:cursor``, the delivery
time reached so far) moves forward through ``unacked_index``. A delivery
that was reserved when it was looked at cannot become stranded later, and
long-running tasks (whose messages stay in ``unacked`` until they finish)
are not read again and again, nor can they hide a stranded one behind them.

Only reads kombu's keys; never writes them.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from relier.clock import now_ms
from relier.journal.message import new_delivery_tag

if TYPE_CHECKING:
    from relier.hub import Relier

_UPTIME_SLACK_MS = 1000

__all__ = ["ORPHAN_AGE_S", "republish_orphans"]

ORPHAN_AGE_S = 10.0
_BATCH = 200


def _kombu_keys(relier: Relier) -> tuple[str, str]:
    options: dict[str, Any] = relier.celery_app.conf.broker_transport_options or {}
    prefix = str(options.get("global_keyprefix", ""))
    return (
        prefix + str(options.get("unacked_key", "unacked")),
        prefix + str(options.get("unacked_index_key", "unacked_index")),
    )


def _task_of(raw: bytes) -> tuple[str, str] | None:
    """(task id, queue) of a kombu unacked entry, if it is a Celery task message."""
    try:
        message = json.loads(raw)[0]
        task_id = message["headers"]["id"]
        queue = message["properties"]["delivery_info"]["routing_key"]
    except (ValueError, KeyError, IndexError, TypeError):
        return None
    if not isinstance(task_id, str) or not isinstance(queue, str) or not queue:
        return None
    return task_id, queue


def republish_orphans(relier: Relier, age_s: float = ORPHAN_AGE_S) -> int:
    """Republish stranded PENDING tasks; returns how many were published."""
    client = relier.redis
    unacked, index = _kombu_keys(relier)
    cursor_key = relier.keys.orphans_cursor
    cursor = client.get(cursor_key)
    low = f"({float(cursor)}" if cursor else "-inf"
    entries = client.zrangebyscore(
        index, low, time.time() - age_s, start=0, num=_BATCH, withscores=True
    )
    if not entries:
        return 0
    client.set(cursor_key, repr(entries[-1][1]))
    tags = [tag for tag, _ in entries]
    found = [_task_of(raw) for raw in client.hmget(unacked, tags) if raw is not None]
    tasks = [t for t in found if t is not None]
    if not tasks:
        return 0
    now = now_ms()
    scripts = relier.scripts
    with client.pipeline(transaction=False) as pipe:
        for task_id, queue in tasks:
            scripts.republish(task_id, queue, now, new_delivery_tag(), client=pipe)
        return sum(1 for r in pipe.execute() if r == 1)


def reconcile_after_restart(relier: Relier) -> int | None:
    """After a Redis restart, republish every PENDING, unowned task from before it.

    A ``BRPOP`` served just before Redis went down can lose its reply: the
    message is gone from the queue, never reached kombu's ``unacked``, and
    its task is PENDING and owned by nobody. No per-message trace exists,
    so once per Redis run (``run_id``, remembered in ``rl:reconciled``) the
    leader walks the journal (``SCAN``) and republishes each such task last
    touched before the restart. Tasks still waiting in the queue get a
    duplicate message, dropped at claim: one extra message per pending task
    per Redis restart.

    Returns how many tasks were republished, or ``None`` when this Redis run
    was reconciled already.
    """
    client = relier.redis
    keys = relier.keys
    info = client.info("server")
    run_id = str(info.get("run_id", ""))
    if not run_id or client.get(keys.reconciled) == run_id.encode():
        return None
    # uptime_in_seconds is whole seconds on both ends (the start time and the
    # clock are cached as seconds), so the start it implies is off by up to
    # a second either way. Err late: a task touched in the second after the
    # restart gets a harmless duplicate message; one touched in the second
    # before it, the likeliest to have lost its message, must not be missed.
    started_ms = now_ms() - int(info.get("uptime_in_seconds", 0)) * 1000 + _UPTIME_SLACK_MS
    scripts = relier.scripts
    published = 0
    for batch in _scan_jobs(client, keys.task_pattern):
        with client.pipeline(transaction=False) as pipe:
            for job_key in batch:
                pipe.hmget(job_key, ["state", "owner", "updated", "queue", "id"])
            rows = pipe.execute()
        stranded = [
            (row[4].decode(), (row[3] or b"celery").decode())
            for row in rows
            if row[0] == b"PENDING" and not row[1] and row[4] and int(row[2] or 0) < started_ms
        ]
        if stranded:
            now = now_ms()
            with client.pipeline(transaction=False) as pipe:
                for task_id, queue in stranded:
                    scripts.republish(task_id, queue, now, new_delivery_tag(), client=pipe)
                published += sum(1 for r in pipe.execute() if r == 1)
    client.set(keys.reconciled, run_id)
    return published


def _scan_jobs(client: Any, pattern: str) -> Any:
    batch: list[bytes] = []
    for key in client.scan_iter(match=pattern, count=1000):
        batch.append(key)
        if len(batch) >= 500:
            yield batch
            batch = []
    if batch:
        yield batch

"""Moving scheduled tasks (retries, countdown pushes) to their queue when due.

``rl:schedule`` holds task ids scored by due time. Any number of workers
may run :func:`promote_due` at once: ``requeue.lua`` removes the id from the
set and publishes in one step, so each due task is published exactly once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from relier.clock import now_ms
from relier.journal.message import new_delivery_tag

if TYPE_CHECKING:
    from relier.hub import Relier

__all__ = ["promote_due"]


def promote_due(relier: Relier, limit: int = 500) -> int:
    """Publish up to ``limit`` due tasks; returns how many were published."""
    client = relier.redis
    keys = relier.keys
    now = now_ms()
    ids = [i.decode() for i in client.zrangebyscore(keys.schedule, "-inf", now, start=0, num=limit)]
    if not ids:
        return 0
    with client.pipeline(transaction=False) as pipe:
        for task_id in ids:
            pipe.hget(keys.task(task_id).job, "queue")
        queues = pipe.execute()
    scripts = relier.scripts
    is_requeue = []
    with client.pipeline(transaction=False) as pipe:
        for task_id, queue in zip(ids, queues, strict=True):
            if queue is None:
                # The journal entry is gone (purged): nothing to publish.
                pipe.zrem(keys.schedule, task_id)
            else:
                scripts.requeue(task_id, queue.decode(), now, new_delivery_tag(), client=pipe)
            is_requeue.append(queue is not None)
        replies = pipe.execute()
    return sum(1 for flag, r in zip(is_requeue, replies, strict=True) if flag and r == 1)

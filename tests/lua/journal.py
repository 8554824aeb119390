"""Shared helpers of the Lua script tests: put a task in a known state, read its journal.

Every task here is ``t1`` unless a test names another, dispatched at ``t=1_000``
on queue ``q`` with delivery tag ``tag0``.
"""

from __future__ import annotations

import json
from typing import Any

import redis

from relier.journal.envelope import Envelope, encode
from relier.journal.keys import Keys
from relier.journal.message import message_template
from relier.journal.scripts import NewTask, Scripts

HMAX = 10
NAME = "tests.lua.task"
KEYS = Keys()


def pending(scripts: Scripts, task_id: str = "t1", *, queue: str = "q", due: int = 0) -> None:
    env = encode(Envelope(id=task_id, task=NAME, args=[1], kwargs={}, ts=1), max_bytes=4096)
    tpl = message_template(task_id, NAME, queue)
    assert scripts.dispatch(NewTask(task_id, NAME, queue, env, tpl, "tag0", 1_000, due))[0]


def running(scripts: Scripts) -> int:
    """Dispatch ``t1`` and start it on ``w1`` (pid 42); the attempt's fence."""
    pending(scripts)
    return scripts.claim("t1", "w1", 2_000, 42).fence


def history(client: redis.Redis, task_id: str = "t1") -> list[dict[str, Any]]:
    return [json.loads(e) for e in client.lrange(KEYS.task(task_id).hist, 0, -1)]


def queued_tags(client: redis.Redis, queue: str = "q") -> list[str]:
    return [
        json.loads(m)["properties"]["delivery_tag"] for m in client.lrange(KEYS.queue(queue), 0, -1)
    ]

"""Tasks with ``max_concurrency``, run by real workers in test_concurrency.py.

Each execution counts itself in ``rl-test:cur:<key>`` while it runs and
records the count it saw on entry in ``rl-test:peaks:<key>``: the largest
entry is the most executions that ever ran at once.
"""

from __future__ import annotations

import time

import relier
from relier import rl_task


@rl_task(name="limited.hold", max_concurrency=2)
def hold(key: str, seconds: float) -> int:
    client = relier.current().redis
    now = int(client.incr(f"rl-test:cur:{key}"))
    client.rpush(f"rl-test:peaks:{key}", now)
    try:
        time.sleep(seconds)
    finally:
        client.decr(f"rl-test:cur:{key}")
    return now


@rl_task(name="limited.free")
def free(x: int) -> int:
    return x

"""Tasks for the operator commands' tests (``rl status``, ``rl inflight``, ``rl dlq``)."""

from __future__ import annotations

import asyncio
import time

import relier
from relier import rl_task


def gate_key(key: str) -> str:
    """While this Redis key exists, :func:`gated` calls with ``key`` fail."""
    return f"rl-test:gate:{key}"


@rl_task(name="ops.slow")
def slow(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@rl_task(name="ops.aslow")
async def aslow(seconds: float) -> float:
    await asyncio.sleep(seconds)
    return seconds


@rl_task(name="ops.gated", max_retries=0)
def gated(key: str) -> str:
    """Fails (straight to the DLQ: no retries) while the gate of ``key`` is closed."""
    if relier.current().redis.exists(gate_key(key)):
        raise ValueError(f"gate {key} is closed")
    return f"passed {key}"


@rl_task(name="ops.flaky", max_retries=3, retry_backoff=2.0)
def flaky(key: str, failures: int) -> str:
    """Fails its first ``failures`` attempts (counted in Redis), then succeeds."""
    if relier.current().redis.incr(f"rl-test:flaky:{key}") <= failures:
        raise ConnectionError(f"{key}: transient failure")
    return key

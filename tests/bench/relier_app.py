"""Relier tasks the benchmark workers run (``rl worker -A tests.bench.relier_app``)."""

from __future__ import annotations

import time

import relier
from relier import rl_task

RELEASE_KEY = "bench:release:"


@rl_task(name="bench.hold", max_retries=0)
def hold(token: str, max_seconds: float) -> str:
    """Runs until ``bench:release:<token>`` exists (at most ``max_seconds``).

    A long task the benchmark kills; once it has measured the recovery it
    releases the resurrected run, so the worker is free for the next round.
    """
    client = relier.current().redis
    deadline = time.monotonic() + max_seconds
    while time.monotonic() < deadline and not client.exists(RELEASE_KEY + token):
        time.sleep(0.05)
    return token


@rl_task(name="bench.sleep", max_retries=0)
def sleep(seconds: float) -> float:
    """Sleeps without touching Redis, so in-flight tasks add no Redis load themselves."""
    time.sleep(seconds)
    return seconds

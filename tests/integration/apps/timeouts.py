"""Tasks with soft and hard timeouts, run by real worker subprocesses.

Each task notes what it saw (``rl-test:notes:<key>``, a list of JSON values)
so a test can tell which process ran which attempt and what it resumed from.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any

import relier
from relier import TaskContext, rl_task


def note(key: str, value: Any) -> None:
    relier.current().redis.rpush(f"rl-test:notes:{key}", json.dumps(value))


def released(key: str) -> bool:
    return bool(relier.current().redis.get(f"rl-test:release:{key}"))


def save_progress(ctx: TaskContext) -> None:
    ctx.checkpoint({"saved_by": "hook", "attempt": ctx.attempt})


async def asave_progress(ctx: TaskContext) -> None:
    await asyncio.sleep(0)
    ctx.checkpoint({"saved_by": "async hook", "attempt": ctx.attempt})


def broken(ctx: TaskContext) -> None:
    raise RuntimeError("the hook broke")


@rl_task(name="timeouts.slow", soft_timeout=0.3, on_soft_timeout=save_progress)
def slow(ctx: TaskContext, seconds: float) -> Any:
    time.sleep(seconds)
    return ctx.progress


@rl_task(name="timeouts.aslow", soft_timeout=0.3, hard_timeout=5, on_soft_timeout=asave_progress)
async def aslow(ctx: TaskContext, seconds: float) -> Any:
    await asyncio.sleep(seconds)
    return ctx.progress


@rl_task(name="timeouts.no_hook", soft_timeout=0.2)
def no_hook(seconds: float) -> str:
    time.sleep(seconds)
    return "done"


@rl_task(name="timeouts.broken_hook", soft_timeout=0.2, on_soft_timeout=broken)
async def broken_hook(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "done"


@rl_task(
    name="timeouts.spin",
    soft_timeout=0.3,
    hard_timeout=0.8,
    on_soft_timeout=save_progress,
    max_retries=1,
    retry_backoff=0.05,
    retry_jitter=False,
)
def spin(ctx: TaskContext, key: str) -> None:
    note(key, {"attempt": ctx.attempt, "progress": ctx.progress, "pid": os.getpid()})
    while True:
        pass


@rl_task(name="timeouts.asleep", hard_timeout=0.5, max_retries=0)
async def asleep(key: str) -> None:
    note(key, {"pid": os.getpid()})
    try:
        await asyncio.sleep(60)
    except asyncio.CancelledError:
        note(key, "cancelled")
        raise


@rl_task(name="timeouts.stubborn", hard_timeout=0.5, max_retries=0)
async def stubborn(key: str) -> None:
    """Swallows every cancellation."""
    note(key, {"pid": os.getpid()})
    while True:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            note(key, "swallowed")


@rl_task(name="timeouts.blocks_loop", hard_timeout=0.5, max_retries=0)
async def blocks_loop(key: str) -> None:
    """Blocks the event loop, so the cancellation never reaches it."""
    note(key, {"pid": os.getpid()})
    time.sleep(60)


@rl_task(name="timeouts.until_released", hard_timeout=0.5, max_retries=0)
def until_released(key: str) -> str:
    """Runs past its hard timeout until the test sets ``rl-test:release:<key>``."""
    note(key, {"pid": os.getpid()})
    while not released(key):
        time.sleep(0.02)
    return "late"


@rl_task(name="timeouts.pid")
def pid() -> int:
    return os.getpid()

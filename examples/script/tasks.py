"""The tasks of the plain-script example.

Start a worker in this folder with ``rl worker -A tasks -c 2``, then run
``python push.py`` to push them. Tasks live in an importable module (not in
the script you run) because a task's name is ``module.qualname``: the
worker and the pusher must agree on it.
"""

from __future__ import annotations

import asyncio

from relier import TaskContext, rl_task


@rl_task
async def greet(name: str) -> str:
    """An async task: it runs on the worker process's persistent event loop."""
    await asyncio.sleep(0.1)  # stands in for an HTTP call or a database query
    return f"Hello, {name}!"


@rl_task(max_retries=2, retry_backoff=0.5, retry_on=(ConnectionError,))
def total(ctx: TaskContext, numbers: list[int]) -> int:
    """A sync task that checkpoints its progress, fails once, and resumes on the retry.

    A ``ValueError`` is not in ``retry_on``, so bad input goes straight to the
    dead letter queue (reason ``not_retryable``).
    """
    if any(n < 0 for n in numbers):
        raise ValueError(f"negative numbers are not allowed: {numbers}")
    state: dict[str, int] = ctx.progress or {"next": 0, "sum": 0}
    for i in range(state["next"], len(numbers)):
        state = {"next": i + 1, "sum": state["sum"] + numbers[i]}
        ctx.checkpoint(state)
        if ctx.attempt == 1 and i == len(numbers) // 2:
            # The first attempt fails halfway; the retry starts from the checkpoint.
            raise ConnectionError("simulated outage halfway through")
    return state["sum"]

"""The per-process event loop, and coroutines run on it from other threads."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time

import pytest

from relier.worker.loop import RunningCoroutine, run_coroutine


async def double(x: int) -> int:
    await asyncio.sleep(0)
    return 2 * x


async def fail() -> None:
    await asyncio.sleep(0)
    raise ValueError("nope")


async def stubborn(seen: list[str]) -> str:
    seen.append("running")
    while True:
        try:
            await asyncio.sleep(0.02)
        except asyncio.CancelledError:
            seen.append("swallowed")
            if seen.count("swallowed") == 2:
                return "outlived"


def started(seen: list[str]) -> None:
    # A cancellation that arrives before a coroutine's first step ends it
    # there, before it could swallow anything.
    deadline = time.monotonic() + 5
    while not seen and time.monotonic() < deadline:
        time.sleep(0.01)


def in_thread(running: RunningCoroutine[object]) -> concurrent.futures.Future[object]:
    """``running.result()`` waited for in another thread."""
    future: concurrent.futures.Future[object] = concurrent.futures.Future()

    def wait() -> None:
        try:
            future.set_result(running.result())
        except BaseException as exc:
            future.set_exception(exc)

    threading.Thread(target=wait, daemon=True).start()
    return future


def test_run_coroutine_returns_its_value() -> None:
    assert run_coroutine(double(21)) == 42


def test_result_is_the_value_or_the_exception() -> None:
    assert RunningCoroutine(double(4)).result() == 8
    with pytest.raises(ValueError, match="nope"):
        RunningCoroutine(fail()).result()


def test_cancel_ends_a_cooperative_coroutine_with_cancelled_error() -> None:
    running = RunningCoroutine(asyncio.sleep(60))
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        running.result()


def test_a_coroutine_that_swallows_cancellation_is_still_running() -> None:
    seen: list[str] = []
    running: RunningCoroutine[object] = RunningCoroutine(stubborn(seen))
    waiting = in_thread(running)
    started(seen)
    running.cancel()
    time.sleep(0.1)
    # Unlike run_coroutine_threadsafe's future, nothing pretends it ended.
    assert seen == ["running", "swallowed"] and not waiting.done()
    assert "in stubborn" in running.stack() and "in sleep" in running.stack()
    running.cancel()
    assert waiting.result(timeout=5) == "outlived"
    assert not running.abandoned


def test_abandon_releases_the_waiting_thread_and_the_coroutine_runs_on() -> None:
    seen: list[str] = []
    running: RunningCoroutine[object] = RunningCoroutine(stubborn(seen))
    waiting = in_thread(running)
    started(seen)
    running.abandon(TimeoutError("gave up"))
    with pytest.raises(TimeoutError, match="gave up"):
        waiting.result(timeout=5)
    assert running.abandoned
    # It still runs: it sees both cancellations, and ends on the second.
    for _ in range(2):
        running.cancel()
        time.sleep(0.05)
    assert seen == ["running", "swallowed", "swallowed"]


def test_stack_of_a_coroutine_blocking_the_loop() -> None:
    release = threading.Event()

    async def blocks() -> None:
        release.wait(5)

    running = RunningCoroutine(blocks())
    time.sleep(0.1)
    try:
        stack = running.stack()
    finally:
        release.set()
    running.result()
    assert "in blocks" in stack and "release.wait(5)" in stack
    assert "run_forever" not in stack

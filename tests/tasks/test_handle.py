"""TaskHandle: waiting for a result, driven here by the journal scripts (no worker)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import relier
from relier import (
    RedisUnavailableError,
    Relier,
    ResultTimeoutError,
    TaskFailedError,
    TaskHandle,
    TaskNotFoundError,
    load_settings,
)
from relier.clock import now_ms


@relier.rl_task(name="tests.handle.echo")
def echo(value: Any) -> Any:
    return value


@pytest.fixture
def rl(rl_redis_url: str) -> Iterator[Relier]:
    instance = Relier(load_settings(redis_url=rl_redis_url, result_ttl=60))
    yield instance
    instance.close()


@pytest.fixture
def push(rl: Relier, monkeypatch: pytest.MonkeyPatch) -> Callable[..., TaskHandle]:
    monkeypatch.setattr(echo, "relier", rl)
    return echo.push


def run(rl: Relier, handle: TaskHandle, result: bytes = b'{"ok":1}') -> None:
    """What a worker does: claim, then commit with the attempt's fence."""
    claim = rl.scripts.claim(handle.id, "w/1", now_ms())
    assert claim.run
    assert rl.scripts.complete(handle.id, claim.fence, result, now_ms(), 60)


def later(delay: float, fn: Callable[[], Any]) -> threading.Thread:
    def go() -> None:
        time.sleep(delay)
        fn()

    thread = threading.Thread(target=go)
    thread.start()
    return thread


def test_result_returns_once_another_thread_completes(
    rl: Relier, push: Callable[..., TaskHandle]
) -> None:
    handle = push(1)
    thread = later(0.3, lambda: run(rl, handle, b'{"sum":3,"items":[1,2]}'))
    started = time.monotonic()
    try:
        assert handle.result(timeout=10) == {"sum": 3, "items": [1, 2]}
    finally:
        thread.join()
    assert 0.25 <= time.monotonic() - started < 3


def test_result_of_a_finished_task_returns_at_once(
    rl: Relier, push: Callable[..., TaskHandle]
) -> None:
    handle = push(1)
    run(rl, handle, b"null")
    started = time.monotonic()
    assert handle.result(timeout=5) is None
    assert handle.result() is None
    assert time.monotonic() - started < 0.5


def test_every_waiter_sees_the_result(rl: Relier, push: Callable[..., TaskHandle]) -> None:
    handle = push(1)
    results: list[Any] = []

    def wait() -> None:
        results.append(TaskHandle(rl, handle.id, handle.task_name).result(timeout=10))

    waiters = [threading.Thread(target=wait) for _ in range(4)]
    for w in waiters:
        w.start()
    time.sleep(0.2)
    run(rl, handle, b'"done"')
    for w in waiters:
        w.join()
    assert results == ["done"] * 4
    assert rl.redis.lrange(rl.keys.task(handle.id).done, 0, -1) == [b"SUCCEEDED"]


def test_result_survives_retries_until_success(rl: Relier, push: Callable[..., TaskHandle]) -> None:
    handle = push(1)

    def retry_then_succeed() -> None:
        claim = rl.scripts.claim(handle.id, "w/1", now_ms())
        assert rl.scripts.fail(handle.id, claim.fence, now_ms(), now_ms() + 1, "", "e", "tb") == 1
        time.sleep(0.2)
        assert rl.scripts.requeue(handle.id, "celery", now_ms(), "tag") == 1
        run(rl, handle, b"2")

    thread = later(0.1, retry_then_succeed)
    try:
        assert handle.result(timeout=10) == 2
    finally:
        thread.join()


def test_result_timeout(rl: Relier, push: Callable[..., TaskHandle]) -> None:
    handle = push(1)
    started = time.monotonic()
    with pytest.raises(ResultTimeoutError, match=handle.id):
        handle.result(timeout=0.4)
    elapsed = time.monotonic() - started
    assert 0.35 <= elapsed < 1.5
    with pytest.raises(TimeoutError):
        handle.result(timeout=0)
    # The task is not cancelled by a timeout: it can still be waited for.
    assert handle.state() == "PENDING"
    run(rl, handle, b"7")
    assert handle.result(timeout=1) == 7


def test_timeout_longer_than_one_block_is_honoured(
    rl: Relier, push: Callable[..., TaskHandle]
) -> None:
    handle = push(1)
    started = time.monotonic()
    with pytest.raises(ResultTimeoutError):
        handle.result(timeout=1.6)
    assert 1.5 <= time.monotonic() - started < 2.8


def test_dead_task_raises_task_failed(rl: Relier, push: Callable[..., TaskHandle]) -> None:
    handle = push(1)

    def die() -> None:
        claim = rl.scripts.claim(handle.id, "w/1", now_ms())
        assert (
            rl.scripts.fail(
                handle.id, claim.fence, now_ms(), 0, "max_retries", "ValueError: boom", "tb"
            )
            == 2
        )

    thread = later(0.2, die)
    try:
        with pytest.raises(TaskFailedError) as info:
            handle.result(timeout=10)
    finally:
        thread.join()
    assert info.value.task_id == handle.id
    assert info.value.reason == "max_retries"
    assert info.value.error == "ValueError: boom"
    assert handle.state() == "DEAD"


def test_dead_lettered_task_raises_task_failed(rl: Relier, push: Callable[..., TaskHandle]) -> None:
    handle = push(1)
    assert rl.scripts.dead_letter(handle.id, now_ms(), "unknown_task", "no task named x")
    with pytest.raises(TaskFailedError) as info:
        handle.result(timeout=1)
    assert (info.value.reason, info.value.error) == ("unknown_task", "no task named x")


def test_cancelled_task_raises_task_failed(rl: Relier, push: Callable[..., TaskHandle]) -> None:
    handle = push(1)
    rl.redis.hset(rl.keys.task(handle.id).job, "state", "CANCELLED")
    with pytest.raises(TaskFailedError) as info:
        handle.result(timeout=1)
    assert info.value.reason == "cancelled"


def test_missing_task_raises_not_found(rl: Relier) -> None:
    handle = TaskHandle(rl, "never-pushed", "tests.handle.echo")
    started = time.monotonic()
    with pytest.raises(TaskNotFoundError, match="never-pushed"):
        handle.result(timeout=5)
    assert time.monotonic() - started < 0.5
    assert handle.state() == "MISSING"


def test_expired_result_raises_not_found(rl: Relier, push: Callable[..., TaskHandle]) -> None:
    handle = push(1)
    run(rl, handle)
    rl.redis.delete(rl.keys.task(handle.id).job)
    with pytest.raises(TaskNotFoundError, match="RELIER_RESULT_TTL"):
        handle.result(timeout=1)


def test_state_follows_the_journal(rl: Relier, push: Callable[..., TaskHandle]) -> None:
    handle = push(1)
    assert handle.state() == "PENDING"
    claim = rl.scripts.claim(handle.id, "w/1", now_ms())
    assert handle.state() == "RUNNING"
    rl.scripts.complete(handle.id, claim.fence, b"1", now_ms(), 60)
    assert handle.state() == "SUCCEEDED"


async def test_aresult_and_astate(rl: Relier, push: Callable[..., TaskHandle]) -> None:
    handle = push(1)

    def finish_later() -> None:
        time.sleep(0.2)
        run(rl, handle, b'[1,"a"]')

    try:
        before = await handle.astate()
        worker = asyncio.get_running_loop().run_in_executor(None, finish_later)
        value = await handle.aresult(timeout=10)
        await worker
        after = await handle.astate()
    finally:
        await rl.aclose()
    assert (before, value, after) == ("PENDING", [1, "a"], "SUCCEEDED")


async def test_aresult_errors(rl: Relier, push: Callable[..., TaskHandle]) -> None:
    handle = push(1)
    dead = push(2)
    assert rl.scripts.dead_letter(dead.id, now_ms(), "invalid_payload", "bad")
    try:
        with pytest.raises(ResultTimeoutError):
            await handle.aresult(timeout=0.3)
        with pytest.raises(TaskFailedError, match="invalid_payload"):
            await dead.aresult(timeout=1)
        with pytest.raises(TaskNotFoundError):
            await TaskHandle(rl, "nope", "x").aresult(timeout=1)
        assert await TaskHandle(rl, "nope", "x").astate() == "MISSING"
    finally:
        await rl.aclose()


async def test_unreachable_redis_raises_redis_unavailable() -> None:
    down = Relier(load_settings(redis_url="redis://127.0.0.1:1/0"))
    handle = TaskHandle(down, "x", "tests.handle.echo")
    try:
        with pytest.raises(RedisUnavailableError):
            handle.result(timeout=1)
        with pytest.raises(RedisUnavailableError):
            handle.state()

        try:
            with pytest.raises(RedisUnavailableError):
                await handle.aresult(timeout=1)
            with pytest.raises(RedisUnavailableError):
                await handle.astate()
        finally:
            await down.aclose()
    finally:
        down.close()


def test_handle_identity(rl: Relier) -> None:
    a = TaskHandle(rl, "id1", "tests.handle.echo")
    b = TaskHandle(rl, "id1", "tests.handle.echo", created=False)
    assert a == b
    assert hash(a) == hash(b)
    assert a != TaskHandle(rl, "id2", "tests.handle.echo")
    assert len({a, b}) == 1
    assert repr(a) == "<TaskHandle tests.handle.echo[id1]>"

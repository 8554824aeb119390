"""relier.idempotency_lock against a real Redis: exclusive, fenced, expiring."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from relier import LockNotAcquiredError, Relier, idempotency_lock, load_settings


@pytest.fixture
def r(rl_redis_url: str) -> Iterator[Relier]:
    instance = Relier(load_settings(redis_url=rl_redis_url))
    yield instance
    instance.close()


def test_second_holder_is_refused_while_the_first_holds(r: Relier) -> None:
    with idempotency_lock("charge:1", ttl=5, relier=r) as first:
        assert first.fence == 1
        with pytest.raises(LockNotAcquiredError) as info:
            idempotency_lock("charge:1", ttl=5, relier=r).acquire()
        assert 4 < info.value.retry_after <= 5
    assert not first.lost
    assert r.redis.exists(r.keys.lock("charge:1")) == 0


def test_fences_grow_with_every_holder(r: Relier) -> None:
    fences = []
    for _ in range(3):
        with idempotency_lock("k", ttl=1, relier=r) as lock:
            fences.append(lock.fence)
    assert fences == [1, 2, 3]


def test_only_one_of_many_threads_holds_it_at_a_time(r: Relier) -> None:
    inside = 0
    overlaps = 0
    guard = threading.Lock()

    def work() -> None:
        nonlocal inside, overlaps
        with idempotency_lock("shared", ttl=5, wait=10, relier=r):
            with guard:
                inside += 1
                overlaps += inside > 1
            time.sleep(0.01)
            with guard:
                inside -= 1

    threads = [threading.Thread(target=work) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert overlaps == 0
    assert int(r.redis.get(r.keys.lock_fence("shared"))) == 20


def test_waiting_holder_gets_it_once_released(r: Relier) -> None:
    first = idempotency_lock("w", ttl=5, relier=r)
    first.acquire()
    threading.Timer(0.2, first.release).start()
    started = time.monotonic()
    with idempotency_lock("w", ttl=5, wait=3, relier=r) as second:
        assert second.fence == 2
    assert 0.15 < time.monotonic() - started < 2


def test_an_expired_lock_is_lost_and_never_releases_the_next_holder(r: Relier) -> None:
    stale = idempotency_lock("x", ttl=0.1, relier=r)
    stale.acquire()
    time.sleep(0.2)
    with idempotency_lock("x", ttl=5, relier=r) as fresh:
        stale.release()
        assert stale.lost
        assert r.redis.get(r.keys.lock("x")).decode() == fresh.token
        assert not stale.extend()
    assert not fresh.lost


def test_extend_keeps_the_lock(r: Relier) -> None:
    with idempotency_lock("e", ttl=0.3, relier=r) as lock:
        assert lock.extend(5)
        time.sleep(0.4)
        assert r.redis.get(r.keys.lock("e")).decode() == lock.token
    assert not lock.lost


async def test_async_lock(r: Relier) -> None:
    async with idempotency_lock("a", ttl=5, relier=r) as lock:
        with pytest.raises(LockNotAcquiredError):
            await idempotency_lock("a", ttl=5, relier=r).aacquire()
        assert await lock.aextend(2)
        got = [lock.fence]
    async with idempotency_lock("a", ttl=5, relier=r) as again:
        got.append(again.fence)
    assert got == [1, 2]


def test_bad_arguments_are_refused() -> None:
    from relier import ConfigurationError

    with pytest.raises(ConfigurationError):
        idempotency_lock("", ttl=1)
    with pytest.raises(ConfigurationError):
        idempotency_lock("k", ttl=0)
    with pytest.raises(ConfigurationError):
        idempotency_lock("a}b", ttl=1)

"""Redis clients per process and per event loop, and the error boundary."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import redis.exceptions

from relier import RedisUnavailableError, load_settings
from relier.journal.connection import Connections, redact, translate_errors, translate_errors_async


@pytest.fixture
def connections(rl_redis_url: str) -> Iterator[Connections]:
    conns = Connections(
        load_settings(redis_url=rl_redis_url, socket_timeout=3, socket_connect_timeout=1)
    )
    yield conns
    conns.close()


def relier_clients(rl_redis: Any) -> list[dict[str, Any]]:
    with rl_redis.client() as admin:
        return [c for c in admin.client_list() if c["name"] == "relier"]


# --- redact ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://localhost:6379/0", "redis://localhost:6379/0"),
        ("redis://:s3cret@localhost:6379/0", "redis://:***@localhost:6379/0"),
        ("rediss://app:s3cret@cache.internal:6380/2", "rediss://app:***@cache.internal:6380/2"),
        ("redis://app:p%40ss@h/0", "redis://app:***@h/0"),
        ("unix:///run/redis.sock", "unix:///run/redis.sock"),
    ],
)
def test_redact(url: str, shown: str) -> None:
    assert redact(url) == shown


# --- translate_errors --------------------------------------------------------------------


@pytest.mark.parametrize(
    "error", [redis.exceptions.ConnectionError("refused"), redis.exceptions.TimeoutError("slow")]
)
def test_connection_failures_become_redis_unavailable(error: Exception) -> None:
    with pytest.raises(RedisUnavailableError) as info, translate_errors("redis://:pw@h:1/0"):
        raise error
    assert info.value.__cause__ is error
    message = str(info.value)
    assert "redis://:***@h:1/0" in message
    assert "pw" not in message
    assert "RELIER_REDIS_URL" in message


def test_other_redis_errors_pass_through() -> None:
    with pytest.raises(redis.exceptions.ResponseError), translate_errors("redis://h/0"):
        raise redis.exceptions.ResponseError("WRONGTYPE")


async def test_async_translation() -> None:
    with pytest.raises(RedisUnavailableError):
        async with translate_errors_async("redis://h/0"):
            raise redis.exceptions.ConnectionError("refused")
    with pytest.raises(KeyError):
        async with translate_errors_async("redis://h/0"):
            raise KeyError("x")


# --- the sync client ---------------------------------------------------------------------


def test_sync_client_is_lazy_shared_and_named(connections: Connections, rl_redis: Any) -> None:
    assert relier_clients(rl_redis) == []
    client = connections.sync
    assert connections.sync is client
    assert client.ping()
    assert len(relier_clients(rl_redis)) == 1
    kwargs = client.connection_pool.connection_kwargs
    assert (kwargs["socket_timeout"], kwargs["socket_connect_timeout"]) == (3, 1)


def test_close_drops_the_sync_client(connections: Connections) -> None:
    first = connections.sync
    first.ping()
    connections.close()
    connections.close()  # twice is fine
    assert connections.sync is not first
    assert connections.sync.ping()


# --- per-loop async clients --------------------------------------------------------------


async def test_one_async_client_per_loop(connections: Connections) -> None:
    a = await connections.for_loop()
    b = await connections.for_loop()
    assert await a.ping()
    assert a is b
    await connections.aclose()


def test_async_clients_differ_between_live_loops(connections: Connections) -> None:
    loops = [asyncio.new_event_loop() for _ in range(2)]
    try:
        clients = [loop.run_until_complete(connections.for_loop()) for loop in loops]
        assert clients[0] is not clients[1]
        for loop, client in zip(loops, clients, strict=True):
            assert loop.run_until_complete(client.ping())
    finally:
        for loop in loops:
            loop.run_until_complete(connections.aclose())
            loop.close()


def test_async_client_closes_when_asyncio_run_ends(connections: Connections, rl_redis: Any) -> None:
    async def main() -> int:
        client = await connections.for_loop()
        await client.ping()
        return len(relier_clients(rl_redis))

    assert asyncio.run(main()) == 1
    assert relier_clients(rl_redis) == []


async def test_aclose_closes_the_loops_client(connections: Connections, rl_redis: Any) -> None:
    first = await connections.for_loop()
    await first.ping()
    await connections.aclose()
    assert relier_clients(rl_redis) == []
    second = await connections.for_loop()
    assert second is not first
    assert await second.ping()
    await connections.aclose()
    await connections.aclose()  # nothing left to close


def test_finished_loops_are_not_kept_alive(connections: Connections) -> None:
    # A producer may call asyncio.run once per job for its whole life.
    refs: list[weakref.ref[asyncio.AbstractEventLoop]] = []

    async def main() -> None:
        refs.append(weakref.ref(asyncio.get_running_loop()))
        await (await connections.for_loop()).ping()

    for _ in range(5):
        asyncio.run(main())
    gc.collect()
    assert [r() for r in refs] == [None] * 5


def test_for_loop_needs_a_running_loop(connections: Connections) -> None:
    coro = connections.for_loop()
    with pytest.raises(RuntimeError):
        coro.send(None)
    coro.close()


def test_unreachable_redis() -> None:
    conns = Connections(load_settings(redis_url="redis://127.0.0.1:1/0"))
    try:
        with pytest.raises(RedisUnavailableError), translate_errors(conns.settings.redis_url):
            conns.sync.ping()
    finally:
        conns.close()

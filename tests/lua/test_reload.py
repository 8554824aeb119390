"""Scripts survive SCRIPT FLUSH (a Redis restart): NOSCRIPT reloads them."""

from __future__ import annotations

from typing import Any

import pytest
import redis
import redis.asyncio
import redis.exceptions

from relier.journal.envelope import Envelope, encode
from relier.journal.message import message_template
from relier.journal.scripts import SCRIPT_NAMES, AsyncScripts, NewTask, Scripts, load_all
from tests.lua.journal import HMAX, KEYS, NAME


def args(task_id: str) -> NewTask:
    env = encode(Envelope(id=task_id, task=NAME, args=[], kwargs={}, ts=1), max_bytes=4096)
    return NewTask(task_id, NAME, "q", env, message_template(task_id, NAME, "q"), "tag", 1_000, 0)


def test_raw_evalsha_fails_after_flush(client: redis.Redis) -> None:
    shas = load_all(client)
    assert set(shas) == set(SCRIPT_NAMES)
    assert all(client.script_exists(*shas.values()))
    client.script_flush()
    assert not any(client.script_exists(*shas.values()))
    with pytest.raises(redis.exceptions.NoScriptError):
        client.evalsha(shas["claim"], 2, "a", "b", "owner", 1, HMAX)


def test_sync_scripts_reload_after_flush(client: redis.Redis) -> None:
    scripts = Scripts(client, KEYS, HMAX)
    assert scripts.dispatch(args("t1")) == (True, "PENDING")
    client.script_flush()
    assert scripts.claim("t1", "w/1", 2_000).run
    client.script_flush()
    assert scripts.checkpoint("t1", 1, b"1", 2_100)
    client.script_flush()
    assert scripts.complete("t1", 1, b"1", 2_200, 60)
    assert client.hget(KEYS.task("t1").job, "state") == b"SUCCEEDED"


def test_sync_pipeline_reloads_after_flush(client: redis.Redis) -> None:
    scripts = Scripts(client, KEYS, HMAX)
    scripts.dispatch(args("t0"))
    client.script_flush()
    with client.pipeline(transaction=False) as pipe:
        for n in range(1, 4):
            scripts.dispatch_in(pipe, args(f"t{n}"))
        replies = pipe.execute()
    assert replies == [[1, b"PENDING"]] * 3
    assert client.llen(KEYS.queue("q")) == 4


async def test_async_scripts_reload_after_flush(rl_redis: Any, client: redis.Redis) -> None:
    aclient = redis.asyncio.Redis.from_url(rl_redis.url)
    try:
        scripts = AsyncScripts(aclient, KEYS, HMAX)
        assert await scripts.dispatch(args("t1")) == (True, "PENDING")
        await aclient.script_flush()
        assert await scripts.dispatch(args("t2")) == (True, "PENDING")
        await aclient.script_flush()
        async with aclient.pipeline(transaction=False) as pipe:
            await scripts.dispatch_in(pipe, args("t3"))
            await scripts.dispatch_in(pipe, args("t1"))
            replies = await pipe.execute()
        assert replies == [[1, b"PENDING"], [0, b"PENDING"]]
    finally:
        await aclient.aclose()
    assert client.llen(KEYS.queue("q")) == 3

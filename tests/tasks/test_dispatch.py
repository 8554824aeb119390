"""Pushing (producer side): every push journals the task and publishes or schedules it."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
from collections.abc import Iterator
from typing import Any, cast

import pytest
import redis

import relier
import relier.hub
from relier import (
    Call,
    CallOptions,
    ConfigurationError,
    PayloadNotSerializableError,
    PayloadTooLargeError,
    RedisUnavailableError,
    Relier,
    UnknownTaskError,
    rl_task,
)
from relier.journal.envelope import decode

UNREACHABLE = "redis://127.0.0.1:1/0"


@rl_task(name="tests.dispatch.add")
def add(x: Any, y: Any = 0) -> Any:
    return x + y


@rl_task(name="tests.dispatch.mail", queue="emails", schema_version=2)
async def mail(to: str, *, subject: str = "") -> str:
    return to


@pytest.fixture
def rl(rl_redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Relier]:
    """The process default Relier on the test server (tasks push through it)."""
    for name in list(os.environ):
        if name.startswith("RELIER_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("RELIER_REDIS_URL", rl_redis_url)
    monkeypatch.setenv("RELIER_MAX_PAYLOAD_BYTES", "4096")
    relier.hub.reset()
    yield relier.hub.current()
    relier.hub.reset()


def job(rl: Relier, client: redis.Redis, task_id: str) -> dict[bytes, bytes]:
    return cast(
        "dict[bytes, bytes]", client.hgetall(rl.keys.task(task_id).job)
    )  # no decode_responses


def queued(client: redis.Redis, queue: str = "celery") -> list[dict[str, Any]]:
    """Messages of ``queue``, oldest first (the order a worker BRPOPs them)."""
    return [json.loads(m) for m in reversed(client.lrange(queue, 0, -1))]


def message_task_id(message: dict[str, Any]) -> str:
    return str(json.loads(base64.b64decode(message["body"]))[0][0])


# --- push ------------------------------------------------------------------------------


def test_push_journals_and_publishes(rl: Relier, client: redis.Redis) -> None:
    handle = add.push(2, y=3)
    assert handle.created
    assert handle.task_name == "tests.dispatch.add"
    row = job(rl, client, handle.id)
    assert row[b"state"] == b"PENDING"
    assert row[b"task"] == b"tests.dispatch.add"
    assert row[b"queue"] == b"celery"
    env = decode(row[b"env"])
    assert (env.id, env.task, env.args, env.kwargs) == (
        handle.id,
        "tests.dispatch.add",
        [2],
        {"y": 3},
    )
    assert abs(env.ts - time.time() * 1000) < 10_000
    (message,) = queued(client)
    assert message["headers"]["id"] == handle.id
    assert message["headers"]["task"] == "tests.dispatch.add"
    assert message_task_id(message) == handle.id
    assert message["properties"]["delivery_tag"]
    assert handle.state() == "PENDING"


def test_push_uses_the_tasks_queue_and_schema_version(rl: Relier, client: redis.Redis) -> None:
    handle = mail.push("a@example.com", subject="hi")
    assert client.llen("celery") == 0
    (message,) = queued(client, "emails")
    assert message["properties"]["delivery_info"]["routing_key"] == "emails"
    env = decode(job(rl, client, handle.id)[b"env"])
    assert env.schema_version == 2
    assert env.kwargs == {"subject": "hi"}


def test_each_push_gets_its_own_id(rl: Relier, client: redis.Redis) -> None:
    ids = [add.push(n).id for n in range(5)]
    assert len(set(ids)) == 5
    assert [message_task_id(m) for m in queued(client)] == ids


def test_with_options_queue_overrides_the_tasks(rl: Relier, client: redis.Redis) -> None:
    handle = mail.with_options(queue="urgent").push("b@example.com")
    assert client.llen("emails") == 0
    assert [message_task_id(m) for m in queued(client, "urgent")] == [handle.id]
    assert job(rl, client, handle.id)[b"queue"] == b"urgent"


def test_default_queue_setting_is_used(
    rl: Relier, client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RELIER_DEFAULT_QUEUE", "low")
    relier.hub.reset()
    add.push(1)
    assert client.llen("low") == 1
    assert client.llen("celery") == 0


def test_countdown_schedules_instead_of_publishing(rl: Relier, client: redis.Redis) -> None:
    before = time.time() * 1000
    handle = add.with_options(countdown=30).push(1)
    after = time.time() * 1000
    assert client.llen("celery") == 0
    due = client.zscore(rl.keys.schedule, handle.id)
    assert due is not None
    assert before + 30_000 - 5 <= due <= after + 30_000 + 5
    assert job(rl, client, handle.id)[b"state"] == b"PENDING"


def test_zero_countdown_publishes_now(rl: Relier, client: redis.Redis) -> None:
    add.with_options(countdown=0).push(1)
    assert client.llen("celery") == 1
    assert client.zcard(rl.keys.schedule) == 0


def test_caller_chosen_id_is_pushed_once(rl: Relier, client: redis.Redis) -> None:
    first = add.with_options(task_id="order-42").push(1)
    second = add.with_options(task_id="order-42").push(2)
    assert first.id == second.id == "order-42"
    assert (first.created, second.created) == (True, False)
    assert first == second
    assert client.llen("celery") == 1
    assert decode(job(rl, client, "order-42")[b"env"]).args == [1]


def test_idempotency_key_travels_in_the_envelope(rl: Relier, client: redis.Redis) -> None:
    handle = add.with_options(idempotency_key="pay-7").push(1)
    assert decode(job(rl, client, handle.id)[b"env"]).idempotency_key == "pay-7"


@pytest.mark.parametrize(
    "options",
    [{"countdown": -1}, {"countdown": float("nan")}, {"queue": ""}, {"task_id": ""},
     {"task_id": "a}b"}],
)  # fmt: skip
def test_invalid_call_options_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        add.with_options(**options)
    with pytest.raises(ConfigurationError):
        CallOptions(**options)


# --- refusals enqueue nothing ------------------------------------------------------------


def assert_nothing_enqueued(client: redis.Redis) -> None:
    assert client.keys("*") == []


def test_unserialisable_argument_enqueues_nothing(rl: Relier, client: redis.Redis) -> None:
    with pytest.raises(PayloadNotSerializableError, match=r"args\[1\]"):
        add.push(1, object())
    with pytest.raises(PayloadNotSerializableError, match=r"kwargs\['y'\]"):
        add.push(1, y={1, 2})
    assert_nothing_enqueued(client)


def test_oversized_payload_enqueues_nothing(rl: Relier, client: redis.Redis) -> None:
    with pytest.raises(PayloadTooLargeError) as info:
        add.push("x" * 5_000)
    assert info.value.limit == 4096
    assert info.value.size > 5_000
    assert_nothing_enqueued(client)


async def test_apush_refusals_enqueue_nothing(rl: Relier, client: redis.Redis) -> None:
    try:
        with pytest.raises(PayloadNotSerializableError):
            await add.apush(b"bytes")
        with pytest.raises(PayloadTooLargeError):
            await add.apush("x" * 5_000)
        with pytest.raises(PayloadNotSerializableError):
            await add.apush_many([(1,), (float("inf"),)])
    finally:
        await rl.aclose()
    assert_nothing_enqueued(client)


def test_push_many_with_one_bad_call_enqueues_none(rl: Relier, client: redis.Redis) -> None:
    with pytest.raises(PayloadNotSerializableError):
        add.push_many([(1,), (2,), (3, object())])
    with pytest.raises(PayloadTooLargeError):
        add.push_many([(1,), ("x" * 5_000,)])
    assert_nothing_enqueued(client)


async def test_push_to_unreachable_redis_raises_quickly(monkeypatch: pytest.MonkeyPatch) -> None:
    down = Relier(relier.load_settings(redis_url=UNREACHABLE))
    monkeypatch.setattr(add, "relier", down)
    started = time.monotonic()
    try:
        with pytest.raises(RedisUnavailableError) as info:
            add.push(1)
        assert "127.0.0.1:1" in str(info.value)
        assert isinstance(info.value.__cause__, redis.exceptions.ConnectionError)
        with pytest.raises(RedisUnavailableError):
            add.push_many([(1,), (2,)])

        try:
            with pytest.raises(RedisUnavailableError):
                await add.apush(1)
            with pytest.raises(RedisUnavailableError):
                await add.apush_many([(1,)])
        finally:
            await down.aclose()
    finally:
        down.close()
    assert time.monotonic() - started < 5


# --- send_task -------------------------------------------------------------------------


def test_send_task_pushes_by_name(rl: Relier, client: redis.Redis) -> None:
    handle = relier.send_task("tests.dispatch.add", 4, y=5)
    assert handle.task_name == "tests.dispatch.add"
    assert decode(job(rl, client, handle.id)[b"env"]).kwargs == {"y": 5}
    assert client.llen("celery") == 1


def test_send_task_of_an_unknown_name_raises(rl: Relier, client: redis.Redis) -> None:
    with pytest.raises(UnknownTaskError, match=r"tests\.dispatch\.nope") as info:
        relier.send_task("tests.dispatch.nope", 1)
    assert "tests.dispatch.add" in str(info.value)  # the known names help spot a typo
    assert_nothing_enqueued(client)


# --- push_many ---------------------------------------------------------------------------


def test_push_many_journals_and_publishes_in_order(rl: Relier, client: redis.Redis) -> None:
    handles = add.push_many([(1, 2), add.call(3, y=4), Call((5,))])
    assert all(h.created for h in handles)
    assert [message_task_id(m) for m in queued(client)] == [h.id for h in handles]
    envs = [decode(job(rl, client, h.id)[b"env"]) for h in handles]
    assert [(e.args, e.kwargs) for e in envs] == [([1, 2], {}), ([3], {"y": 4}), ([5], {})]


def test_push_many_of_more_than_one_chunk(rl: Relier, client: redis.Redis) -> None:
    handles = add.push_many([(n,) for n in range(2_345)])
    assert len({h.id for h in handles}) == 2_345
    assert client.llen("celery") == 2_345
    assert [message_task_id(m) for m in queued(client)] == [h.id for h in handles]


def test_push_many_with_options(rl: Relier, client: redis.Redis) -> None:
    handles = add.with_options(queue="bulk", countdown=60).push_many([(1,), (2,)])
    assert client.llen("bulk") == 0
    assert client.zcard(rl.keys.schedule) == 2
    assert {job(rl, client, h.id)[b"queue"] for h in handles} == {b"bulk"}


def test_push_many_keeps_a_calls_own_options(rl: Relier, client: redis.Redis) -> None:
    own = Call((1,), {}, CallOptions(queue="mine"))
    add.with_options(queue="bulk").push_many([own, (2,)])
    assert client.llen("mine") == 1
    assert client.llen("bulk") == 1


def test_push_many_reports_existing_ids(rl: Relier, client: redis.Redis) -> None:
    add.with_options(task_id="dup").push(0)
    handles = add.push_many([Call((1,), {}, CallOptions(task_id="dup")), (2,)])
    assert [h.created for h in handles] == [False, True]
    assert client.llen("celery") == 2


def test_push_many_of_nothing(rl: Relier, client: redis.Redis) -> None:
    assert add.push_many([]) == []
    assert_nothing_enqueued(client)


# --- asyncio -----------------------------------------------------------------------------


async def test_apush_and_apush_many(rl: Relier, client: redis.Redis) -> None:
    try:
        one = await add.apush(1, y=2)
        many = await mail.apush_many([("a@x",), mail.call("b@x", subject="s")])
        later = await add.with_options(countdown=10).apush(3)
        ids = [one.id, *(h.id for h in many), later.id]
    finally:
        await rl.aclose()
    assert [message_task_id(m) for m in queued(client)] == ids[:1]
    assert [message_task_id(m) for m in queued(client, "emails")] == ids[1:3]
    assert client.zrange(rl.keys.schedule, 0, -1) == [ids[3].encode()]
    assert decode(job(rl, client, ids[2])[b"env"]).kwargs == {"subject": "s"}


async def test_sync_push_inside_a_running_loop(rl: Relier, client: redis.Redis) -> None:
    asyncio.get_running_loop()
    task_id = add.push(1).id
    assert [message_task_id(m) for m in queued(client)] == [task_id]


def test_apush_across_separate_event_loops(rl: Relier, client: redis.Redis) -> None:
    async def main() -> str:
        return (await add.apush(1)).id

    first = asyncio.run(main())
    second = asyncio.run(main())
    third = asyncio.run(main())
    assert [message_task_id(m) for m in queued(client)] == [first, second, third]


async def test_apush_from_concurrent_coroutines(rl: Relier, client: redis.Redis) -> None:
    try:
        handles = await asyncio.gather(*(add.apush(n) for n in range(50)))
        ids = [h.id for h in handles]
    finally:
        await rl.aclose()
    assert len(set(ids)) == 50
    assert client.llen("celery") == 50


def test_push_many_batch_boundaries_keep_order_and_outcomes(
    rl: Relier, client: redis.Redis
) -> None:
    # 1,101 calls: a full chunk of 10 batches, then one batch of a single call;
    # an existing id inside a batch and as that last single call.
    add.with_options(task_id="dup").push(0)
    calls: list[Any] = [(n,) for n in range(1_101)]
    calls[57] = calls[1_100] = Call((1,), {}, CallOptions(task_id="dup"))
    handles = add.push_many(calls)
    assert len(handles) == 1_101
    created = [h.created for h in handles]
    assert not created[57] and not created[1_100]
    assert created.count(False) == 2
    assert handles[57].id == handles[1_100].id == "dup"
    fresh = [h.id for h in handles if h.created]
    assert [message_task_id(m) for m in queued(client)] == ["dup", *fresh]

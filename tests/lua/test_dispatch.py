"""dispatch.lua: journal a new task and publish (or schedule) it, atomically."""

from __future__ import annotations

import base64
import json
from typing import Any

import redis

from relier.journal.envelope import Envelope, decode, encode
from relier.journal.keys import Keys
from relier.journal.message import message_template
from relier.journal.scripts import NewTask, Scripts, load_all
from tests.lua.journal import HMAX, KEYS, history

NAME = "tests.lua.dispatch_task"


def envelope(task_id: str, *args: Any) -> bytes:
    return encode(Envelope(id=task_id, task=NAME, args=list(args), kwargs={}, ts=1), max_bytes=4096)


def dispatch(
    scripts: Scripts, task_id: str, *, queue: str = "q", now: int = 1_000, due: int = 0,
    tag: str = "tag-1", env: bytes | None = None,
) -> tuple[bool, str]:  # fmt: skip
    return scripts.dispatch(
        NewTask(
            task_id,
            NAME,
            queue,
            env if env is not None else envelope(task_id, 1, 2),
            message_template(task_id, NAME, queue),
            tag,
            now,
            due,
        )
    )


def test_new_task_is_journaled_pending(scripts: Scripts, client: redis.Redis) -> None:
    env = envelope("t1", "x")
    assert dispatch(scripts, "t1", now=1234, env=env) == (True, "PENDING")
    job = client.hgetall(KEYS.task("t1").job)
    assert job[b"id"] == b"t1"
    assert job[b"task"] == NAME.encode()
    assert job[b"queue"] == b"q"
    assert job[b"state"] == b"PENDING"
    assert job[b"env"] == env
    assert decode(job[b"env"]).args == ["x"]
    assert job[b"msg"] == message_template("t1", NAME, "q").encode()
    assert (job[b"attempt"], job[b"fence"], job[b"res"]) == (b"0", b"0", b"0")
    assert job[b"created"] == job[b"updated"] == b"1234"


def test_history_records_the_dispatch(scripts: Scripts, client: redis.Redis) -> None:
    dispatch(scripts, "t1", queue="emails", now=555)
    assert history(client) == [{"t": 555, "e": "dispatched", "q": "emails"}]


def test_message_is_pushed_to_the_queue_with_its_delivery_tag(
    scripts: Scripts, client: redis.Redis
) -> None:
    dispatch(scripts, "t1", queue="emails", tag="the-tag")
    assert client.llen(KEYS.queue("emails")) == 1
    raw = client.lindex(KEYS.queue("emails"), 0)
    assert raw is not None
    message = json.loads(raw)
    assert message["properties"]["delivery_tag"] == "the-tag"
    assert message["properties"]["delivery_info"] == {"exchange": "", "routing_key": "emails"}
    assert message["headers"]["id"] == "t1"
    assert message["headers"]["task"] == NAME
    body = json.loads(base64.b64decode(message["body"]))
    assert body[0] == ["t1"]
    assert body[1] == {}
    assert client.zcard(KEYS.schedule) == 0


def test_messages_are_lpushed_in_dispatch_order(scripts: Scripts, client: redis.Redis) -> None:
    for i in range(3):
        dispatch(scripts, f"t{i}")
    # kombu BRPOPs, so the oldest message sits at the right end.
    ids = [json.loads(m)["headers"]["id"] for m in client.lrange(KEYS.queue("q"), 0, -1)]
    assert ids == ["t2", "t1", "t0"]


def test_countdown_goes_to_the_schedule_not_the_queue(
    scripts: Scripts, client: redis.Redis
) -> None:
    assert dispatch(scripts, "t1", now=1_000, due=6_000) == (True, "PENDING")
    assert client.llen(KEYS.queue("q")) == 0
    assert client.zscore(KEYS.schedule, "t1") == 6_000
    assert client.hget(KEYS.task("t1").job, "state") == b"PENDING"
    (event,) = history(client)
    assert event == {"t": 1_000, "e": "dispatched", "q": "q", "due": 6_000}


def test_existing_id_returns_its_state_and_publishes_nothing(
    scripts: Scripts, client: redis.Redis
) -> None:
    first = envelope("t1", "first")
    dispatch(scripts, "t1", env=first)
    client.hset(KEYS.task("t1").job, "state", "RUNNING")
    assert dispatch(scripts, "t1", env=envelope("t1", "second")) == (False, "RUNNING")
    assert client.llen(KEYS.queue("q")) == 1
    assert client.hget(KEYS.task("t1").job, "env") == first
    assert client.llen(KEYS.task("t1").hist) == 1


def test_existing_id_with_countdown_is_not_scheduled_again(
    scripts: Scripts, client: redis.Redis
) -> None:
    dispatch(scripts, "t1")
    assert dispatch(scripts, "t1", due=9_999) == (False, "PENDING")
    assert client.zcard(KEYS.schedule) == 0
    assert client.llen(KEYS.queue("q")) == 1


def test_per_task_keys_carry_no_ttl(scripts: Scripts, client: redis.Redis) -> None:
    dispatch(scripts, "t1")
    assert client.ttl(KEYS.task("t1").job) == -1
    assert client.ttl(KEYS.task("t1").hist) == -1


def test_raw_evalsha_matches_the_typed_wrapper(scripts: Scripts, client: redis.Redis) -> None:
    sha = load_all(client)["dispatch"]
    _, keys, argv = scripts.args.dispatch(
        NewTask("raw", NAME, "q", envelope("raw"), message_template("raw", NAME, "q"), "tag", 7, 0)
    )
    assert client.evalsha(sha, len(keys), *keys, *argv) == [1, b"PENDING"]
    assert client.evalsha(sha, len(keys), *keys, *argv) == [0, b"PENDING"]
    assert client.llen(KEYS.queue("q")) == 1


def test_queue_key_honours_kombu_global_keyprefix(client: redis.Redis) -> None:
    scripts = Scripts(client, Keys(prefix="app1", queue_prefix="kp:"), HMAX)
    dispatch(scripts, "t1", queue="q")
    assert client.llen("kp:q") == 1
    assert client.llen("q") == 0
    assert client.hget("app1:{t1}:job", "state") == b"PENDING"


def test_one_call_dispatches_a_batch_as_each_alone(scripts: Scripts, client: redis.Redis) -> None:
    dispatch(scripts, "old")
    items = [
        NewTask(
            t, NAME, "q", envelope(t, 1), message_template(t, NAME, "q"), f"tag-{t}", 2_000, due
        )
        for t, due in (("b1", 0), ("old", 0), ("b2", 9_000), ("b3", 0))
    ]
    with client.pipeline(transaction=False) as pipe:
        scripts.dispatch_many_in(pipe, items)
        (replies,) = pipe.execute()
    assert replies == [[1, b"PENDING"], [0, b"PENDING"], [1, b"PENDING"], [1, b"PENDING"]]
    # b2 is scheduled, b1 and b3 published after the earlier "old", in order.
    assert [json.loads(m)["headers"]["id"] for m in reversed(client.lrange("q", 0, -1))] == [
        "old", "b1", "b3",
    ]  # fmt: skip
    assert client.zscore(KEYS.schedule, "b2") == 9_000
    for t in ("b1", "b2", "b3"):
        assert decode(client.hget(KEYS.task(t).job, "env")).id == t
        assert history(client, t)[0]["e"] == "dispatched"
    assert len(history(client, "old")) == 1  # the duplicate changed nothing


def test_a_batch_of_one_replies_like_a_single_dispatch(
    scripts: Scripts, client: redis.Redis
) -> None:
    item = NewTask("s1", NAME, "q", envelope("s1"), message_template("s1", NAME, "q"), "tag", 7, 0)
    with client.pipeline(transaction=False) as pipe:
        scripts.dispatch_many_in(pipe, [item])
        assert pipe.execute() == [[1, b"PENDING"]]

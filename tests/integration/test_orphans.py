"""A task whose message a worker took but never reserved is not stranded.

Simulates a worker killed between kombu moving the message into ``unacked``
and Celery reporting it to Relier: the task is PENDING, owned by nobody, and
its only message sits in kombu's ``unacked`` hash (restored by kombu only
after the visibility timeout, an hour by default).
"""

from __future__ import annotations

import json
import time

from relier import Relier, load_settings
from relier.testing import RedisServer, WorkerFactory
from tests.integration.apps import basic

APP = "tests.integration.apps.basic"


def test_message_stranded_in_kombu_unacked_is_republished(
    rl_worker: WorkerFactory, rl: Relier
) -> None:
    handle = basic.add.push(20, 22)
    raw = rl.redis.rpop(rl.keys.queue("celery"))  # what a consumer's BRPOP takes
    message = json.loads(raw)
    tag = message["properties"]["delivery_tag"]
    rl.redis.hset("unacked", tag, json.dumps([message, "", "celery"]))
    rl.redis.zadd("unacked_index", {tag: time.time() - 60})
    assert rl.redis.llen(rl.keys.queue("celery")) == 0

    started = time.monotonic()
    rl_worker(APP)
    assert handle.result(timeout=30) == 42
    assert time.monotonic() - started < 25
    events = [e["e"] for e in _history(rl, handle.id)]
    assert events[:2] == ["dispatched", "republished"]


def test_running_tasks_in_unacked_are_left_alone(rl_worker: WorkerFactory, rl: Relier) -> None:
    rl_worker(APP)
    handle = basic.count.push("left-alone")
    assert handle.result(timeout=20) == 1
    # An old unacked entry for a task that already succeeded: nothing to do.
    template = rl.redis.hget(rl.keys.task(handle.id).job, "msg").decode()
    message = json.loads(template + 'old-tag"}}')
    rl.redis.hset("unacked", "old-tag", json.dumps([message, "", "celery"]))
    rl.redis.zadd("unacked_index", {"old-tag": time.time() - 60})
    time.sleep(6)  # more than one orphan scan
    assert "republished" not in [e["e"] for e in _history(rl, handle.id)]
    assert int(rl.redis.get("rl-test:count:left-alone")) == 1


def _history(rl: Relier, task_id: str) -> list[dict[str, object]]:
    from relier.ops.dlq import read_history

    return read_history(rl, task_id)


def test_message_lost_with_a_redis_restart_is_republished(
    rl_worker: WorkerFactory, rl_redis: RedisServer, rl_env: dict[str, str]
) -> None:
    # A BRPOP served just before Redis went down, whose reply never arrived:
    # the message is gone from the queue and never reached kombu's unacked.
    # A Redis of its own: this test restarts it, and must not share it.
    own = rl_redis.start_extra("--appendfsync", "always")
    relier = Relier(load_settings(redis_url=own.url))
    basic.add.relier = relier
    try:
        handle = basic.add.push(40, 2)
        countdown = basic.add.with_options(countdown=3600).push(1, 1)
        assert own.client().rpop(relier.keys.queue("celery")) is not None
        run_id = own.client().info("server")["run_id"]
        own.restart()
        assert own.client().info("server")["run_id"] != run_id
        rl_worker(APP, env={**rl_env, "RELIER_REDIS_URL": own.url})
        assert handle.result(timeout=30) == 42
        assert "republished" in [e["e"] for e in _history(relier, handle.id)]
        # A countdown push is the scheduler's: it is not published early.
        assert countdown.state() == "PENDING"
        assert "republished" not in [e["e"] for e in _history(relier, countdown.id)]
    finally:
        basic.add.relier = None
        relier.close()
        own.stop()

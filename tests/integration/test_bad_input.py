"""Bad input reaching a real worker: each case ends in the DLQ with a reason
or in a logged refusal, and the worker keeps serving good tasks."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid

import pytest
from celery import Celery

from relier import PayloadValidationError, Relier, TaskFailedError, TaskHandle, rl_task
from relier.clock import now_ms
from relier.journal.envelope import Envelope, encode
from relier.journal.message import message_template, new_delivery_tag
from relier.journal.scripts import NewTask
from relier.testing import CliRunner, RedisServer, WorkerFactory
from tests.integration.apps import basic

APP = "tests.integration.apps.basic"


# Registered in this (producer) process only: the worker never imports it.
@rl_task(name="tests.producer_only")
def producer_only(x: int) -> int:
    return x


def test_unknown_task_on_the_worker_goes_to_the_dlq(rl_worker: WorkerFactory, rl: Relier) -> None:
    worker = rl_worker(APP)
    handle = producer_only.push(1)
    with pytest.raises(TaskFailedError) as info:
        handle.result(timeout=20)
    assert info.value.reason == "unknown_task"
    assert "tests.producer_only" in info.value.error
    assert basic.add.push(2, 3).result(timeout=20) == 5
    assert worker.is_alive()


def _journal_raw_call(rl: Relier, task: str, args: list[object]) -> TaskHandle:
    """Journal and publish a call as a producer that skipped validation would."""
    task_id = str(uuid.uuid4())
    now = now_ms()
    env = encode(Envelope(id=task_id, task=task, args=args, kwargs={}, ts=now), max_bytes=1 << 20)
    tpl = message_template(task_id, task, "celery")
    new = NewTask(task_id, task, "celery", env, tpl, new_delivery_tag(), now, 0)
    assert rl.scripts.dispatch(new)[0]
    return TaskHandle(rl, task_id, task)


def test_arguments_that_do_not_fit_are_refused_on_push(rl: Relier) -> None:
    before = rl.redis.llen("celery")
    with pytest.raises(PayloadValidationError, match="missing a required argument"):
        basic.add.push(1)  # type: ignore[call-arg]  # add takes two arguments
    with pytest.raises(PayloadValidationError, match="a: Input should be a valid integer"):
        basic.add.push("one", 2)  # type: ignore[arg-type]
    assert rl.redis.llen("celery") == before


@pytest.mark.parametrize(
    ("args", "error"),
    [([1], "missing a required argument"), (["one", 2], "a: Input should be a valid integer")],
)
def test_arguments_that_do_not_fit_go_to_the_dlq_without_retrying(
    rl_worker: WorkerFactory, rl: Relier, args: list[object], error: str
) -> None:
    rl_worker(APP)
    handle = _journal_raw_call(rl, basic.add.name, args)
    with pytest.raises(TaskFailedError) as info:
        handle.result(timeout=20)
    assert info.value.reason == "invalid_payload"
    assert error in info.value.error
    events = [e["e"] for e in _history(rl, handle.id)]
    assert events.count("started") == 1  # no retry loop
    assert basic.add.push(2, 3).result(timeout=20) == 5


def test_tampered_journal_envelope_goes_to_the_dlq(rl_worker: WorkerFactory, rl: Relier) -> None:
    rl_worker(APP)
    handle = basic.add.with_options(countdown=1.5).push(1, 2)
    rl.redis.hset(rl.keys.task(handle.id).job, "env", b'{"v":1,"id":"truncated')
    with pytest.raises(TaskFailedError) as info:
        handle.result(timeout=20)
    assert info.value.reason == "invalid_payload"
    assert "not valid JSON" in info.value.error
    assert basic.add.push(2, 3).result(timeout=20) == 5


def test_plain_celery_message_for_a_relier_task_is_refused_and_logged(
    rl_worker: WorkerFactory, rl: Relier, rl_redis_url: str
) -> None:
    worker = rl_worker(APP)
    producer = Celery("plain", broker=rl_redis_url)
    producer.send_task("basic.count", args=("plain",), task_id="plain-celery-id")
    producer.close()
    worker.wait_for_log("Relier did not write", timeout=20)
    assert rl.redis.get("rl-test:count:plain") is None  # the body never ran
    assert basic.add.push(2, 3).result(timeout=20) == 5


def test_foreign_message_for_a_journaled_task_runs_the_journaled_payload(
    rl_worker: WorkerFactory, rl: Relier, rl_redis_url: str
) -> None:
    rl_worker(APP)
    handle = basic.add.with_options(countdown=30).push(20, 22)  # journaled, not yet published
    producer = Celery("plain", broker=rl_redis_url)
    producer.send_task("basic.add", args=(1, 1), task_id=handle.id)
    producer.close()
    assert handle.result(timeout=20) == 42  # the journal's arguments, not the message's


def test_worker_refuses_to_start_on_redis_without_aof(
    rl_redis: RedisServer, rl_env: dict[str, str]
) -> None:
    unsafe = rl_redis.start_extra("--appendonly", "no", "--maxmemory-policy", "allkeys-lru")
    env = {**rl_env, "RELIER_REDIS_URL": unsafe.url}
    proc = subprocess.run(
        [sys.executable, "-m", "relier", "worker", "-A", APP, "--concurrency", "1"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "PreflightError" in proc.stderr
    assert "CONFIG SET appendonly yes" in proc.stderr
    assert "CONFIG SET maxmemory-policy noeviction" in proc.stderr


def test_plain_celery_worker_with_a_bound_app_refuses_unsafe_redis(
    rl_redis: RedisServer, rl_env: dict[str, str]
) -> None:
    unsafe = rl_redis.start_extra("--appendonly", "no")
    env = {**rl_env, "RELIER_REDIS_URL": unsafe.url}
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "tests.integration.apps.with_app", "worker",
         "--concurrency", "1", "--loglevel", "INFO"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output
    assert "CONFIG SET appendonly yes" in output
    assert time.monotonic() - started < 60


def test_bound_celery_app_runs_tasks(rl_worker: WorkerFactory, rl: Relier) -> None:
    from tests.integration.apps import with_app

    rl_worker("tests.integration.apps.with_app")
    assert with_app.mul.push(6, 7).result(timeout=20) == 42


def test_worker_with_unreachable_redis_exits_with_a_clear_error(
    rl_cli: CliRunner, rl_env: dict[str, str]
) -> None:
    env = {**rl_env, "RELIER_REDIS_URL": "redis://127.0.0.1:1/0"}
    proc = rl_cli("worker", "-A", APP, env=env)
    assert proc.returncode == 3  # Redis unreachable, as for every rl command
    assert "RedisUnavailableError" in proc.stderr and "127.0.0.1:1" in proc.stderr


def _history(rl: Relier, task_id: str) -> list[dict[str, object]]:
    from relier.ops.dlq import read_history

    return read_history(rl, task_id)

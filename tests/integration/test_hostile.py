"""Hostile input against a real worker: bytes written straight into the broker's queue
list and into the journal, bypassing every check ``push`` makes.

Each case ends in the DLQ with the right reason, or in a logged refusal when there is no
journal entry to record it against; good tasks pushed before, between and after all
succeed; the worker process stays alive; nothing loops (one attempt at most, a short
history).

test_bad_input.py covers the friendlier cases: an unknown task pushed by a producer, a
call that does not fit the signature, a truncated ``env`` field, a plain Celery
``send_task`` for a Relier task, and a foreign message for a journaled id.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from celery import Celery

import relier
from relier import Relier, TaskFailedError, TaskHandle
from relier.clock import now_ms
from relier.hub import reset
from relier.journal.message import TEMPLATE_TAIL, message_template, new_delivery_tag
from relier.journal.scripts import NewTask
from relier.ops.dlq import read_history
from relier.testing import WorkerFactory, WorkerProcess
from tests.integration.apps import basic

APP = "tests.integration.apps.basic"
QUEUE = "celery"
KEY = "hostile-tests-signing-key-0001"
OLD_KEY = "hostile-tests-retired-key-0002"
WRONG_KEY = "not-the-key-of-this-cluster-03"
WAIT = 20


@pytest.fixture
def signed_rl(rl_redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Relier]:
    """The process-default Relier with the cluster's signing key: its pushes are signed."""
    monkeypatch.setenv("RELIER_REDIS_URL", rl_redis_url)
    monkeypatch.setenv("RELIER_SIGNING_KEY", KEY)
    reset()
    yield relier.current()
    reset()


# --- helpers ---------------------------------------------------------------------------


def body(task_id: str, task: str = "basic.add", **fields: Any) -> dict[str, Any]:
    """A format-2 body (no digest yet) for ``task`` with id ``task_id``."""
    out: dict[str, Any] = {"v": 2, "id": task_id, "t": task, "sv": 1, "a": [1, 2], "k": {}}
    out["ts"] = now_ms()
    out.update(fields)
    return {k: v for k, v in out.items() if v is not None}


def seal(fields: dict[str, Any] | bytes, key: str | None = None) -> bytes:
    """Digest (and MAC) as docs/architecture.md specifies, without Relier's encoder."""
    data = (
        fields if isinstance(fields, bytes) else json.dumps(fields, separators=(",", ":")).encode()
    )
    tail = f',"d":"{hashlib.sha256(data).hexdigest()[:32]}"'
    if key is not None:
        tail += f',"s":"{hmac.new(key.encode(), data, hashlib.sha256).hexdigest()}"'
    return data[:-1] + tail.encode() + b"}"


def journal(
    rl: Relier, env: bytes, task: str = "basic.add", task_id: str = "", countdown_ms: int = 0
) -> str:
    """Journal ``env`` and publish its message, as dispatch does, with no check at all."""
    task_id = task_id or f"hostile-{uuid.uuid4()}"
    template = message_template(task_id, task, QUEUE)
    now = now_ms()
    due = now + countdown_ms if countdown_ms else 0
    created, _ = rl.scripts.dispatch(
        NewTask(task_id, task, QUEUE, env, template, new_delivery_tag(), now, due)
    )
    assert created
    return task_id


def raw_message(task: str, task_id: str, args: list[Any], **headers: Any) -> bytes:
    """A kombu Redis-transport message, built by hand (nothing journaled)."""
    inner = json.dumps([args, {}, {"callbacks": None, "errbacks": None, "chain": None}])
    text = message_template(task_id, task, QUEUE) + new_delivery_tag() + TEMPLATE_TAIL
    message = json.loads(text)
    message["body"] = base64.b64encode(inner.encode()).decode()
    message["headers"].update(headers)
    return json.dumps(message).encode()


def dead(rl: Relier, task_id: str, task: str = "basic.add") -> TaskFailedError:
    """Waits for ``task_id`` to end; it must be in the DLQ after one attempt at most."""
    with pytest.raises(TaskFailedError) as info:
        TaskHandle(rl, task_id, task).result(timeout=WAIT)
    events = [e["e"] for e in read_history(rl, task_id)]
    assert events.count("started") <= 1, events
    assert len(events) <= 5, events  # dispatched, [requeued], reserved, started, dead
    return info.value


class Stream:
    """Good tasks pushed between the hostile ones; all must succeed."""

    def __init__(self) -> None:
        self.handles: list[tuple[TaskHandle, int]] = []

    def push(self) -> None:
        n = len(self.handles)
        self.handles.append((basic.add.push(n, 1000), n + 1000))

    def check(self, worker: WorkerProcess) -> None:
        for handle, expected in self.handles:
            assert handle.result(timeout=WAIT) == expected
        assert worker.is_alive()


# --- the broker's queue list -----------------------------------------------------------


def test_garbage_in_the_queue_list_is_refused_and_logged(
    rl_worker: WorkerFactory, rl: Relier
) -> None:
    worker = rl_worker(APP)
    stream = Stream()
    stream.push()
    ghost, huge = f"ghost-{uuid.uuid4()}", f"huge-{uuid.uuid4()}"
    routed = '"delivery_info": {"exchange": "", "routing_key": "celery"}'
    garbage: list[bytes | str] = [
        # not a kombu message at all: refused by Relier's guard around kombu
        b"not json at all",
        b'{"body": "trunc',
        b"[1, 2, 3]",
        b'"a string"',
        b"{}",
        b'{"properties": 5}',
        b'{"body": "e30=", "properties": {}}',  # no delivery tag
        b'{"body": "e30", "properties": {"delivery_tag": "t1", "body_encoding": "base64"}}',
        f'{{"body": "e30=", "headers": 5, "properties": {{"delivery_tag": "t2", {routed}}}}}',
        b'{"body": "e30=", "properties": {"delivery_tag": "t3", "delivery_info": {}}}',
        # kombu messages that are not Celery task messages: refused by Celery
        f'{{"body": "e30=", "headers": {{"task": 5, "id": []}}, "content-type": '
        f'"application/json", "properties": {{"delivery_tag": "t4", {routed}}}}}',
        raw_message("basic.add", f"pickle-{uuid.uuid4()}", [1, 2]).replace(
            b'"application/json"', b'"application/x-python-serialize"'
        ),
        raw_message("no.such.task", ghost, [ghost]),
        # Celery task messages for a Relier task that Relier did not write and that have
        # no journal entry: refused by the worker
        raw_message("basic.add", "no-task-name", [1]).replace(
            b'"task":"basic.add"', b'"task":null'
        ),
        raw_message("basic.count", f"unjournaled-{uuid.uuid4()}", ["never"]),
        raw_message("basic.count", huge, ["x" * 1_000_000]),
    ]
    for item in garbage:
        rl.redis.lpush(QUEUE, item if isinstance(item, bytes) else item.encode())
        stream.push()
    stream.check(worker)
    worker.wait_for_log(f"basic.count[{huge}] that Relier did not write", timeout=WAIT)
    log = worker.log()
    refusals = (
        log.count("relier: refused a malformed message")
        + log.count("Received invalid task message")
        + log.count("Received unregistered task")
        + log.count("that Relier did not write")
    )
    assert refusals == len(garbage)
    assert "Unrecoverable error" not in log
    assert "Connection to broker lost" not in log  # no consumer restart either
    assert not rl.redis.keys("rl-test:count:*")  # no body ran for any of them
    assert rl.redis.llen(QUEUE) == 0
    # Nothing is left in kombu's unacked bookkeeping, where it would hold a prefetch
    # slot for good and come back at every visibility timeout. The last refusal
    # is logged just before its message is acknowledged: allow that moment.
    deadline = time.monotonic() + 5
    while rl.redis.hlen("unacked") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert rl.redis.hlen("unacked") == 0
    assert worker.is_alive()


# --- the journal -----------------------------------------------------------------------


def test_bad_envelopes_in_the_journal_go_to_the_dlq(rl_worker: WorkerFactory, rl: Relier) -> None:
    worker = rl_worker(APP)
    stream = Stream()
    stream.push()
    cases: dict[str, tuple[str, str]] = {}  # task id -> (reason, fragment of the error)

    def case(make: Callable[[str], bytes | None], reason: str, fragment: str) -> None:
        """Journal ``make(task_id)`` as the envelope of a basic.add call."""
        task_id = f"hostile-{uuid.uuid4()}"
        env = make(task_id)
        if env is None:
            # Scheduled, so that the field is gone before any worker can look.
            journal(rl, b"", task_id=task_id, countdown_ms=300)
            rl.redis.hdel(rl.keys.task(task_id).job, "env")
        else:
            journal(rl, env, task_id=task_id)
        cases[task_id] = (reason, fragment)
        stream.push()

    def flipped(task_id: str) -> bytes:
        return seal(body(task_id, a=[1, 2])).replace(b'"a":[1,2]', b'"a":[7,2]')

    case(lambda _: b"\x00\xffnot json", "invalid_payload", "not valid JSON")
    case(lambda t: seal(body(t))[:-20], "invalid_payload", "not valid JSON")  # truncated
    case(flipped, "invalid_payload", "digest mismatch")  # corrupted, stale digest
    case(lambda t: json.dumps(body(t)).encode(), "invalid_payload", "integrity")  # no digest
    case(lambda t: seal(body(t, a="12")), "invalid_payload", "'a'")  # wrong types
    case(lambda t: seal(body(t, ts="now")), "invalid_payload", "'ts'")
    case(lambda t: seal(body(t, v=99)), "invalid_payload", "version")  # unknown version
    case(lambda t: seal(body(t, v=None)), "invalid_payload", "version")
    case(lambda t: seal(body(t, k=None, a=None)), "invalid_payload", "'a'")  # missing fields
    case(lambda t: seal({"v": 2}), "invalid_payload", "'id'")
    case(lambda _: None, "invalid_payload", "no envelope")  # the env field deleted
    # a valid envelope of another task, journaled and delivered as basic.add
    case(lambda t: seal(body(t, "basic.count")), "invalid_payload", "for basic.count")
    # huge: 4 MB in one mistyped field, and JSON nested 100,000 deep
    case(lambda t: seal(body(t, k="x" * 4_000_000)), "invalid_payload", "characters)")
    case(lambda _: b"[" * 100_000 + b"]" * 100_000, "invalid_payload", "not valid JSON")

    for task_id, (reason, fragment) in cases.items():
        failure = dead(rl, task_id)
        assert failure.reason == reason, (task_id, failure.error)
        assert fragment in failure.error, (task_id, failure.error)
        assert len(failure.error) < 1000  # a hostile value is never quoted whole
    stream.check(worker)

    # An unknown task, journaled with a valid envelope.
    tid = f"hostile-{uuid.uuid4()}"
    journal(rl, seal(body(tid, "no.such.task")), "no.such.task", tid)
    assert dead(rl, tid, "no.such.task").reason == "unknown_task"
    # A worker without a key ignores signatures (the digest still counts).
    tid = f"hostile-{uuid.uuid4()}"
    journal(rl, seal(body(tid, a=[20, 22]), WRONG_KEY), task_id=tid)
    assert TaskHandle(rl, tid, "basic.add").result(timeout=WAIT) == 42
    # A format-1 envelope, as Relier 0.1 wrote it, still runs.
    tid = f"hostile-{uuid.uuid4()}"
    journal(rl, json.dumps({**body(tid, a=[40, 2]), "v": 1}).encode(), task_id=tid)
    assert TaskHandle(rl, tid, "basic.add").result(timeout=WAIT) == 42
    assert not rl.redis.keys("rl-test:count:*")
    assert worker.is_alive()


# --- signatures ------------------------------------------------------------------------


def test_a_keyed_worker_refuses_forged_and_unsigned_envelopes(
    rl_worker: WorkerFactory, signed_rl: Relier, rl_env: dict[str, str], rl_redis_url: str
) -> None:
    rl = signed_rl
    env = {**rl_env, "RELIER_SIGNING_KEY": KEY, "RELIER_SIGNING_OLD_KEYS": OLD_KEY}
    worker = rl_worker(APP, env=env)
    stream = Stream()
    stream.push()  # signed by this process, which has the key
    refused: dict[str, str] = {}

    # Tampered: a genuine signed envelope, its arguments changed and its digest recomputed
    # (the MAC cannot be), rewritten in the journal before the task is due.
    genuine = basic.add.with_options(countdown=0.5).push(1, 2)
    job = rl.keys.task(genuine.id).job
    stored = rl.redis.hget(job, "env")
    signature = json.loads(stored)["s"]
    genuine_body = stored[: stored.rindex(b',"d":')] + b"}"
    forged_body = genuine_body.replace(b'"a":[1,2]', b'"a":[100,200]')
    assert forged_body != genuine_body
    rl.redis.hset(job, "env", seal(forged_body)[:-1] + f',"s":"{signature}"}}'.encode())
    refused[genuine.id] = "matches none"
    stream.push()
    tid = f"hostile-{uuid.uuid4()}"
    refused[journal(rl, seal(body(tid), WRONG_KEY), task_id=tid)] = "matches none"
    stream.push()
    tid = f"hostile-{uuid.uuid4()}"
    refused[journal(rl, seal(body(tid)), task_id=tid)] = "unsigned"
    stream.push()
    tid = f"hostile-{uuid.uuid4()}"
    v1 = json.dumps({**body(tid), "v": 1}, separators=(",", ":")).encode()
    refused[journal(rl, v1, task_id=tid)] = "format 1"
    stream.push()
    # Signed with the retired key the worker still accepts: runs.
    tid = f"hostile-{uuid.uuid4()}"
    rotated = TaskHandle(
        rl, journal(rl, seal(body(tid, a=[2, 3]), OLD_KEY), task_id=tid), "basic.add"
    )
    stream.push()

    for task_id, fragment in refused.items():
        failure = dead(rl, task_id)
        assert failure.reason == "bad_signature", (task_id, failure.error)
        assert fragment in failure.error
    assert rotated.result(timeout=WAIT) == 5
    assert not rl.redis.keys("rl-test:count:*")

    # send_task by name goes straight to the broker (a signature of a task this process
    # defines would go journal-first): refused (no journal entry), and a replay of a
    # refused task's id does not bring it back to life.
    producer = Celery("plain", broker=rl_redis_url)
    producer.send_task("basic.count", args=("plain",), task_id=f"plain-{uuid.uuid4()}")
    producer.send_task("basic.add", args=(5, 5), task_id=next(iter(refused)))
    producer.close()
    worker.wait_for_log("Relier did not write", timeout=WAIT)
    worker.wait_for_log("(state DEAD)", timeout=WAIT)
    stream.push()
    stream.check(worker)
    assert rl.redis.get("rl-test:count:plain") is None
    for task_id in refused:
        assert rl.redis.hget(rl.keys.task(task_id).job, "reason") == b"bad_signature"

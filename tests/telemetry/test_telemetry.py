"""Telemetry, in one process: spans, span events and metrics of pushes, attempts and take-backs.

The SDK is the in-memory span exporter and metric reader of ``tests._otel``; attempts run
through :func:`relier.executor.execute` in this process (no worker), against the test Redis.
tests/integration/test_telemetry.py checks the same from real worker processes.
"""

from __future__ import annotations

import json
import os
import re
import socket
import sys
import time
import urllib.request
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode

import relier
import relier.hub
from relier import (
    AdmissionRejectedError,
    ConfigurationError,
    Relier,
    TaskContext,
    rl_task,
    telemetry,
)
from relier.worker.executor import execute
from relier.worker.resurrector import take_back
from tests._otel import Otel, install, uninstall

QUEUE = "tel-unit"


@rl_task(name="tel.unit.add", queue=QUEUE)
def add(a: int, b: int) -> int:
    return a + b


@rl_task(name="tel.unit.flaky", queue=QUEUE, max_retries=2, retry_backoff=0.05)
def flaky(ctx: TaskContext) -> str:
    if ctx.attempt == 1:
        raise ConnectionError("first attempt fails")
    return "ok"


@rl_task(name="tel.unit.broken", queue=QUEUE, retry_on=(ConnectionError,))
def broken() -> None:
    raise KeyError("not retryable")


@rl_task(name="tel.unit.slow", queue=QUEUE, soft_timeout=0.05)
def slow() -> str:
    time.sleep(0.25)
    return "done"


@rl_task(name="tel.unit.stuck", queue=QUEUE, hard_timeout=0.1, max_retries=0)
def stuck() -> str:
    time.sleep(0.4)
    return "late"


@rl_task(name="tel.unit.superseded", queue=QUEUE)
def superseded(ctx: TaskContext) -> str:
    # What a resurrection on another worker does to this attempt: a newer fence.
    r = relier.current()
    r.redis.hincrby(r.keys.task(ctx.task_id).job, "fence", 1)
    return "too late"


@rl_task(name="tel.unit.limited", queue=QUEUE, rate_limit="1/h")
def limited(n: int) -> int:
    return n


@rl_task(name="tel.unit.versioned", queue=QUEUE)
def versioned(n: int) -> int:
    return n


@pytest.fixture
def rl(default_relier: Relier) -> Iterator[Relier]:
    yield default_relier
    telemetry.unwatch(default_relier)


@pytest.fixture
def otel() -> Iterator[Otel]:
    sdk = install()
    yield sdk
    uninstall(sdk)


def run(task: Any, task_id: str) -> None:
    """One delivery of ``task_id`` in this process, as a worker's pool process runs it."""
    request = SimpleNamespace(id=task_id, hostname="tel@test", delivery_info={"routing_key": QUEUE})
    execute(task, request, (task_id,), {})


def events(span: Any) -> list[str]:
    return [e.name for e in span.events]


def test_push_is_a_producer_span_whose_context_travels_in_the_envelope(
    rl: Relier, otel: Otel
) -> None:
    before = otel.value("relier.tasks.dispatched", task="tel.unit.add", queue=QUEUE)
    handle = add.push(1, 2)
    [span] = otel.spans("relier.push tel.unit.add")
    assert span.kind is SpanKind.PRODUCER
    assert span.attributes is not None
    assert span.attributes["messaging.system"] == "relier"
    assert span.attributes["messaging.destination.name"] == QUEUE
    assert span.attributes["messaging.message.id"] == handle.id
    assert span.attributes["relier.created"] is True
    envelope = json.loads(rl.redis.hget(rl.keys.task(handle.id).job, "env"))
    context = span.get_span_context()
    assert context is not None
    assert envelope["tc"]["traceparent"].startswith(
        f"00-{context.trace_id:032x}-{context.span_id:016x}-"
    )
    assert otel.value("relier.tasks.dispatched", task="tel.unit.add", queue=QUEUE) == before + 1
    assert otel.value("relier.dispatch.duration", task="tel.unit.add") >= 1


def test_a_push_inside_a_request_span_continues_its_trace(rl: Relier, otel: Otel) -> None:
    with trace.get_tracer("web").start_as_current_span("GET /orders") as request_span:
        add.push(2, 2)
    [push] = otel.spans("relier.push tel.unit.add")
    assert push.parent is not None
    assert push.parent.span_id == request_span.get_span_context().span_id
    assert push.context.trace_id == request_span.get_span_context().trace_id


async def test_batches_are_one_span_and_async_pushes_are_traced_too(rl: Relier, otel: Otel) -> None:
    handles = add.push_many([(i, i) for i in range(5)])
    await add.apush(1, 1)
    await add.apush_many([(1, 2), (3, 4)])
    await rl.aclose()
    [batch, abatch] = otel.spans("relier.push_many tel.unit.add")
    assert batch.attributes is not None and abatch.attributes is not None
    assert batch.attributes["messaging.batch.message_count"] == 5
    assert abatch.attributes["messaging.batch.message_count"] == 2
    assert len(otel.spans("relier.push tel.unit.add")) == 1
    # Every call of a batch carries the batch span's context.
    parents = {
        json.loads(rl.redis.hget(rl.keys.task(h.id).job, "env"))["tc"]["traceparent"][:-3]
        for h in handles
    }
    assert parents == {f"00-{batch.context.trace_id:032x}-{batch.context.span_id:016x}"}


def test_admission_rejection_is_counted_by_reason_and_is_not_an_error(
    rl: Relier, otel: Otel
) -> None:
    limited.push(1)
    with pytest.raises(AdmissionRejectedError):
        limited.push(2)
    assert otel.value("relier.admission.rejections", task="tel.unit.limited", reason="rate") == 1
    rejected = otel.spans("relier.push tel.unit.limited")[1]
    assert events(rejected) == ["relier.rejected"]
    assert rejected.status.status_code is StatusCode.UNSET


def test_with_hooks_off_or_without_a_span_envelopes_carry_no_trace_context(
    rl: Relier, otel: Otel
) -> None:
    assert telemetry.trace_context() == {}
    telemetry.set_enabled(False)
    handle = add.push(1, 1)
    assert otel.spans() == []
    assert "tc" not in json.loads(rl.redis.hget(rl.keys.task(handle.id).job, "env"))


def test_execution_is_a_consumer_span_child_of_the_push(rl: Relier, otel: Otel) -> None:
    started = otel.value("relier.tasks.started", task="tel.unit.add", queue=QUEUE)
    handle = add.push(20, 22)
    run(add, handle.id)
    assert handle.result(timeout=1) == 42
    [push] = otel.spans("relier.push tel.unit.add")
    [consumer] = otel.spans("relier.run tel.unit.add")
    assert consumer.kind is SpanKind.CONSUMER
    assert consumer.context.trace_id == push.context.trace_id
    assert consumer.parent is not None and consumer.parent.span_id == push.context.span_id
    attributes = consumer.attributes or {}
    assert attributes["relier.task.id"] == handle.id
    assert attributes["relier.attempt"] == 1 and attributes["relier.fence"] == 1
    assert attributes["relier.worker.id"] == f"tel@test#{os.getpid()}"
    assert attributes["messaging.destination.name"] == QUEUE
    assert attributes["relier.outcome"] == "succeeded"
    assert events(consumer) == []
    assert otel.value("relier.tasks.started", task="tel.unit.add", queue=QUEUE) == started + 1
    assert otel.value("relier.tasks.succeeded", task="tel.unit.add") >= 1
    assert otel.value("relier.tasks.queue_wait", task="tel.unit.add") >= 1
    assert otel.value("relier.tasks.duration", task="tel.unit.add") >= 1


def test_a_retry_is_one_event_on_the_failed_attempt(rl: Relier, otel: Otel) -> None:
    handle = flaky.push()
    run(flaky, handle.id)
    time.sleep(0.3)  # the retry's backoff; no resurrector runs here, so publish it by hand
    rl.redis.zrem(rl.keys.schedule, handle.id)
    rl.redis.hset(rl.keys.task(handle.id).job, "state", "PENDING")
    run(flaky, handle.id)
    assert handle.result(timeout=1) == "ok"
    first, second = otel.spans("relier.run tel.unit.flaky")
    assert events(first) == ["exception", "relier.retry"]
    assert first.status.status_code is StatusCode.ERROR
    assert events(second) == []
    assert (second.attributes or {})["relier.attempt"] == 2
    assert first.context.trace_id == second.context.trace_id
    assert otel.value("relier.tasks.retried", task="tel.unit.flaky") == 1
    assert otel.value("relier.tasks.failed", task="tel.unit.flaky") == 1


def test_a_task_that_cannot_succeed_is_one_dead_letter_event(rl: Relier, otel: Otel) -> None:
    handle = broken.push()
    run(broken, handle.id)
    [span] = otel.spans("relier.run tel.unit.broken")
    assert events(span) == ["exception", "relier.dead_lettered"]
    [dead] = [e for e in span.events if e.name == "relier.dead_lettered"]
    assert (dead.attributes or {})["relier.reason"] == "not_retryable"
    value = otel.value("relier.tasks.dead_lettered", task="tel.unit.broken", reason="not_retryable")
    assert value == 1


def test_a_call_for_a_newer_schema_is_dead_lettered_with_one_event(
    rl: Relier, otel: Otel, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RELIER_SCHEMA_DEFER_MAX", "0.001")
    relier.hub.reset()
    with monkeypatch.context() as newer:
        # What a producer already running the next version's code pushes.
        newer.setattr(versioned, "schema_version", 2)
        handle = versioned.push(1)
    run(versioned, handle.id)  # first sight: deferred for a newer worker
    assert rl.redis.hget(rl.keys.task(handle.id).job, "state") == b"PENDING"
    time.sleep(0.01)
    rl.redis.zrem(rl.keys.schedule, handle.id)
    run(versioned, handle.id)  # past RELIER_SCHEMA_DEFER_MAX: dead-lettered
    assert rl.redis.hget(rl.keys.task(handle.id).job, "reason") == b"schema_too_new"
    spans = otel.spans("relier.run tel.unit.versioned")
    assert [events(s) for s in spans] == [[], ["relier.dead_lettered"]]
    [dead] = spans[1].events
    assert (dead.attributes or {})["relier.reason"] == "schema_too_new"
    assert "RELIER_SCHEMA_DEFER_MAX" in str((dead.attributes or {})["relier.error"])
    value = otel.value(
        "relier.tasks.dead_lettered", task="tel.unit.versioned", reason="schema_too_new"
    )
    assert value == 1


def test_soft_timeout_is_one_event(rl: Relier, otel: Otel) -> None:
    handle = slow.push()
    run(slow, handle.id)
    [span] = otel.spans("relier.run tel.unit.slow")
    assert events(span) == ["relier.soft_timeout"]
    assert (span.attributes or {})["relier.outcome"] == "succeeded"


def test_hard_timeout_then_the_zombies_refused_commit(rl: Relier, otel: Otel) -> None:
    handle = stuck.push()
    run(stuck, handle.id)  # not a pool process: the stuck attempt runs on as a zombie
    [span] = otel.spans("relier.run tel.unit.stuck")
    assert events(span) == [
        "relier.hard_timeout",
        "exception",
        "relier.dead_lettered",
        "relier.stale_fence",
    ]
    [refused] = [e for e in span.events if e.name == "relier.stale_fence"]
    assert (refused.attributes or {})["relier.refused"] == "commit"
    assert handle.state() == "DEAD"


def test_a_superseded_attempt_records_a_stale_fence_refusal(rl: Relier, otel: Otel) -> None:
    handle = superseded.push()
    run(superseded, handle.id)
    [span] = otel.spans("relier.run tel.unit.superseded")
    assert events(span) == ["relier.stale_fence"]
    assert (span.attributes or {})["relier.outcome"] == "stale"
    assert otel.value("relier.tasks.succeeded", task="tel.unit.superseded") == 0


def test_take_back_is_a_short_span_linked_to_the_push(rl: Relier, otel: Otel) -> None:
    reserved, running = add.push(1, 1), add.push(2, 2)
    rl.scripts.reserve(reserved.id, "w-gone", 1)
    rl.scripts.claim(running.id, "w-gone", 1, pid=4242, token="t")
    [push_reserved, push_running] = otel.spans("relier.push tel.unit.add")

    assert take_back(rl, "w-gone", "handoff_reserved") == (1, 0)
    assert take_back(rl, "w-gone", "child", pid=4242) == (1, 0)
    handoff, resurrect = otel.spans("relier.resurrect tel.unit.add")
    assert events(handoff) == ["relier.handoff"]
    assert events(resurrect) == ["relier.resurrected"]
    assert resurrect.kind is SpanKind.INTERNAL and resurrect.parent is None
    assert [link.context.span_id for link in handoff.links] == [push_reserved.context.span_id]
    assert [link.context.span_id for link in resurrect.links] == [push_running.context.span_id]
    assert (resurrect.attributes or {})["relier.resurrection.kind"] == "child"
    assert (
        otel.value("relier.tasks.handed_off", task="tel.unit.add", reason="handoff_reserved") == 1
    )
    assert otel.value("relier.tasks.resurrected", task="tel.unit.add", reason="child") == 1
    assert otel.value("relier.resurrection.latency", task="tel.unit.add") == 2


def test_gauges_read_redis_only_when_collected(rl: Relier, otel: Otel) -> None:
    rl.redis.set(rl.keys.worker("w-alive"), b"{}")
    rl.redis.zadd(rl.keys.workers, {"w-alive": 1, "w-dead": 1})
    handles = add.push_many([(i, 0) for i in range(3)])
    rl.scripts.reserve(handles[0].id, "w-alive", 1)
    broken_handle = broken.push()
    run(broken, broken_handle.id)
    leading = [True]
    telemetry.watch(rl, "w-alive", lambda: leading[0])

    def gauge(name: str) -> dict[str, float]:
        return {p.attributes.get("relier.queue", ""): p.value for p in otel.points(name)}

    assert gauge("relier.tasks.in_flight") == {"": 1}
    assert gauge("relier.queue.depth") == {QUEUE: 4}  # the dead task's message too
    assert gauge("relier.dlq.size") == {"": 1}
    assert gauge("relier.workers.live") == {"": 1}
    leading[0] = False  # another worker holds the resurrector lock: it reports the cluster
    assert gauge("relier.queue.depth") == {}
    assert gauge("relier.tasks.in_flight") == {"": 1}


def test_prometheus_exposition_serves_the_metrics(rl: Relier, otel: Otel) -> None:
    from prometheus_client import CollectorRegistry

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = telemetry.start_prometheus(port, "127.0.0.1", registry=CollectorRegistry())
    try:
        add.push(1, 1)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
            text = reply.read().decode()
    finally:
        server.shutdown()
        server.server_close()
        telemetry.use_meter_provider(None)
    labels = 'relier_queue="tel-unit",relier_task="tel.unit.add"'
    dispatched = rf"relier_tasks_dispatched_total\{{[^}}]*{labels}\}} 1\.0"
    assert re.search(dispatched, text), text
    assert "relier_dispatch_duration_seconds_bucket" in text


def test_prometheus_without_the_extra_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.prometheus", None)
    with pytest.raises(ConfigurationError) as info:
        telemetry.require_prometheus(9464)
    message = str(info.value)
    assert "RELIER_PROMETHEUS_PORT is 9464" in message and 'pip install "relier[otel]"' in message
    telemetry.require_prometheus(None)  # unset: nothing to check


def test_prometheus_on_a_taken_port_is_a_configuration_error(otel: Otel) -> None:
    from prometheus_client import CollectorRegistry

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(ConfigurationError, match="cannot be listened on"):
            telemetry.start_prometheus(port, "127.0.0.1", registry=CollectorRegistry())


def test_flush_before_exit_ends_the_open_spans(rl: Relier, otel: Otel) -> None:
    from relier.journal.scripts import Claim

    claim = Claim(run=True, state="RUNNING", fence=7, attempt=1)
    attempt = telemetry.attempt_started("tel.unit.add", "t-1", "w", claim, None)
    telemetry.soft_timeout("t-1", 7, 1.0)
    telemetry.flush_before_exit()
    [span] = otel.spans("relier.run tel.unit.add")
    assert events(span) == ["relier.soft_timeout"]
    assert span.status.status_code is StatusCode.ERROR
    assert (span.attributes or {})["relier.outcome"] == "abandoned"
    telemetry.attempt_ended(attempt)  # ending it again changes nothing
    assert len(otel.spans("relier.run tel.unit.add")) == 1

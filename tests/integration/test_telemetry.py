"""Telemetry from real ``rl worker`` processes: one trace from push to execution, and each
span event exactly once in the scenario that causes it.

The test process pushes with the in-memory SDK of ``tests._otel``; the workers load
``tests.integration.apps.telemetry``, whose SDK appends every span of every worker process
(main and pool) to a JSON-lines file that the test reads back.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pytest

from relier import Relier, TaskFailedError, telemetry
from relier.ops.dlq import read_history
from relier.testing import WorkerFactory
from tests._otel import Otel, install, uninstall
from tests.integration.apps import telemetry as apps

if TYPE_CHECKING:
    from collections.abc import Mapping

    from opentelemetry.util.types import AnyValue

    # What a finished SDK span's ``attributes`` is (typed as optional on ReadableSpan).
    Attributes = Mapping[str, AnyValue]

APP = "tests.integration.apps.telemetry"
# The span events Relier emits (the SDK's own "exception" events are left out).
RELIER_EVENTS = set(telemetry.EVENTS)


@pytest.fixture
def otel() -> Iterator[Otel]:
    sdk = install()
    yield sdk
    uninstall(sdk)


def wait_until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := check()):
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)
    return found


def read_spans(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def events_by_task(spans: list[dict[str, Any]]) -> dict[str, Counter[str]]:
    """Relier's span events per task id, over every span the workers wrote."""
    out: dict[str, Counter[str]] = {}
    for span in spans:
        task_id = span["attributes"].get("relier.task.id")
        names = Counter(e["name"] for e in span["events"] if e["name"] in RELIER_EVENTS)
        out.setdefault(task_id, Counter()).update(names)
    return out


# Span events and the journal history events they mirror.
JOURNAL = {
    "relier.retry": "retry",
    "relier.soft_timeout": "soft_timeout",
    "relier.dead_lettered": "dead",
    "relier.resurrected": "resurrected",
    "relier.handoff": "handoff",
    "relier.stale_fence": "stale_commit",
}


def journal_events(r: Relier, task_id: str) -> dict[str, int]:
    """The history's events of :data:`JOURNAL`, counted under their span event names."""
    names = Counter(e["e"] for e in read_history(r, task_id))
    return {span: names[kept] for span, kept in JOURNAL.items() if names[kept]}


def state(r: Relier, task_id: str) -> tuple[str, int]:
    raw_state, pid = r.redis.hmget(r.keys.task(task_id).job, ["state", "pid"])
    return (raw_state or b"").decode(), int(pid or 0)


def release(r: Relier, key: str) -> None:
    r.redis.set(f"rl-test:release:{key}", 1)


def test_one_trace_from_push_to_execution_and_each_event_once(
    rl_worker: WorkerFactory, rl: Relier, otel: Otel, rl_env: dict[str, str], tmp_path: Path
) -> None:
    spans_file = tmp_path / "spans.jsonl"
    env = {**rl_env, "TELEMETRY_SPANS": str(spans_file)}
    worker = rl_worker(APP, "--prefetch-multiplier", "2", concurrency=3, queues=apps.QUEUE, env=env)
    added = apps.add.push(20, 22)
    flaky, slow, spin, broken = (
        apps.flaky.push(),
        apps.slow.push(),
        apps.spin.push(),
        apps.broken.push(),
    )
    victim = apps.hold.push("victim")

    assert added.result(timeout=20) == 42
    assert flaky.result(timeout=20) == 2
    assert slow.result(timeout=20) == "done"
    for handle, reason in ((spin, "hard_timeout"), (broken, "not_retryable")):
        with pytest.raises(TaskFailedError) as info:
            handle.result(timeout=20)
        assert info.value.reason == reason
    # Resurrection: SIGKILL the pool process running the victim.
    _, pid = wait_until(
        lambda: state(rl, victim.id)[0] == "RUNNING" and state(rl, victim.id),
        20,
        "the victim to run",
    )
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: state(rl, victim.id)[1] not in (0, pid), 10, "the victim to run again")
    release(rl, "victim")
    assert victim.result(timeout=20) == 2

    # Handoff: SIGTERM while three tasks run and a fourth is reserved but not started.
    holds = [apps.hold.push(f"h{n}") for n in range(3)]
    reserved = apps.add.push(1, 1)
    wait_until(
        lambda: (
            sorted(state(rl, h.id)[0] for h in [*holds, reserved])
            == ["RESERVED", "RUNNING", "RUNNING", "RUNNING"]
        ),
        20,
        "3 running tasks and 1 reserved",
    )
    worker.signal(signal.SIGTERM)
    wait_until(
        lambda: any(e["e"] == "handoff" for e in read_history(rl, reserved.id)), 10, "the handoff"
    )
    for n in range(3):
        release(rl, f"h{n}")
    assert worker.wait(20) == 0
    assert [h.result(timeout=5) for h in holds] == [1, 1, 1]
    assert reserved.state() == "PENDING"  # handed back; no worker is left to run it

    spans = read_spans(spans_file)
    # One trace: the push's PRODUCER span here, its CONSUMER span in a pool process.
    [push] = [
        s
        for s in otel.spans("relier.push tel.add")
        if cast("Attributes", s.attributes)["relier.task.id"] == added.id
    ]
    [run] = [
        s
        for s in spans
        if s["name"] == "relier.run tel.add" and s["attributes"]["relier.task.id"] == added.id
    ]
    assert run["kind"] == "CONSUMER" and run["pid"] != os.getpid() and run["pid"] != worker.pid
    assert run["trace_id"] == f"{push.context.trace_id:032x}"
    assert run["parent_id"] == f"{push.context.span_id:016x}"
    assert run["attributes"]["relier.worker.id"].startswith("w1@")
    # Resurrections and handoffs are spans of the worker's main process, linked to the push.
    [resurrect] = [s for s in spans if s["name"] == "relier.resurrect tel.hold"]
    handoffs = [s for s in spans if s["name"] == "relier.resurrect tel.add"]
    # The journal has one handoff, or two when the draining worker took the message it had
    # just handed back once more before it stopped consuming (and handed it back at exit).
    handed_back = [e for e in read_history(rl, reserved.id) if e["e"] == "handoff"]
    assert 1 <= len(handed_back) == len(handoffs) <= 2
    for span, handle in [(resurrect, victim), *((h, reserved) for h in handoffs)]:
        assert span["pid"] == worker.pid
        [pushed] = [
            s
            for s in otel.spans()
            if cast("Attributes", s.attributes).get("relier.task.id") == handle.id
        ]
        assert span["links"] == [
            {
                "trace_id": f"{pushed.context.trace_id:032x}",
                "span_id": f"{pushed.context.span_id:016x}",
            }
        ]
    # Every event once per occurrence, on the task whose scenario causes it; none elsewhere.
    expected = {
        added.id: {},
        flaky.id: {"relier.retry": 1},
        slow.id: {"relier.soft_timeout": 1},
        spin.id: {"relier.hard_timeout": 1, "relier.dead_lettered": 1},
        broken.id: {"relier.dead_lettered": 1},
        victim.id: {"relier.resurrected": 1},
        reserved.id: {"relier.handoff": len(handed_back)},
        **{h.id: {} for h in holds},
    }
    assert {k: dict(v) for k, v in events_by_task(spans).items()} == expected
    for task_id, counts in expected.items():
        assert journal_events(rl, task_id) == {k: v for k, v in counts.items() if k in JOURNAL}
    # The hard-timed-out attempt's span was ended and exported before its process was replaced.
    [stuck] = [s for s in spans if s["attributes"].get("relier.task.id") == spin.id]
    assert stuck["attributes"]["relier.outcome"] == "abandoned" and stuck["status"] == "ERROR"


def test_a_zombie_commit_is_a_stale_fence_event_and_prometheus_serves_the_metrics(
    rl_worker: WorkerFactory, rl: Relier, otel: Otel, rl_env: dict[str, str], tmp_path: Path
) -> None:
    spans_file = tmp_path / "spans.jsonl"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        **rl_env,
        "TELEMETRY_SPANS": str(spans_file),
        "RELIER_PROMETHEUS_PORT": str(port),
    }
    # Threads pool: a task stuck past its hard timeout cannot be stopped, and runs on.
    worker = rl_worker(APP, concurrency=2, pool="threads", queues=apps.THREADS_QUEUE, env=env)
    handle = apps.zombie.push("zombie")
    with pytest.raises(TaskFailedError) as info:
        handle.result(timeout=20)
    assert info.value.reason == "hard_timeout"
    release(rl, "zombie")
    wait_until(
        lambda: any(e["e"] == "stale_commit" for e in read_history(rl, handle.id)),
        10,
        "the zombie's refused commit",
    )

    def scrape() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
            return str(reply.read().decode())

    labels = 'relier_queue="tel-threads",relier_reason="hard_timeout",relier_task="tel.zombie"'
    text = wait_until(
        lambda: (t := scrape()) and "relier_workers_live" in t and t,
        10,
        "the cluster gauges (once the worker holds the resurrector lock)",
    )
    assert re.search(rf"relier_tasks_dead_lettered_total\{{[^}}]*{labels}\}} 1\.0", text), text
    assert re.search(r"relier_workers_live\{[^}]*\} 1\.0", text), text
    assert re.search(r'relier_tasks_started_total\{[^}]*relier_task="tel.zombie"\} 1\.0', text)
    assert "relier_tasks_duration_seconds_bucket" in text
    assert worker.terminate() == 0

    spans = read_spans(spans_file)
    [run] = [s for s in spans if s["name"] == "relier.run tel.zombie"]
    assert [e["name"] for e in run["events"] if e["name"] in RELIER_EVENTS] == [
        "relier.hard_timeout",
        "relier.dead_lettered",
        "relier.stale_fence",
    ]
    [push] = otel.spans("relier.push tel.zombie")
    assert run["trace_id"] == f"{push.context.trace_id:032x}"

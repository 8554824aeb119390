"""Rolling deploys: workers of two code versions share one Redis, and no call is lost.

The versions of ``deploy.greet`` are in tests/integration/apps/deploy_*.py
(see deploy_common). Each version's calls are pushed by a subprocess that
imports only that version, as its own producers would; this process imports
none of them and reads results by task id.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from relier import Relier, TaskFailedError, TaskHandle
from relier.ops.dlq import dlq_size, get_dead, read_history
from relier.testing import WorkerFactory

ROOT = Path(__file__).resolve().parents[2]
APPS = "tests.integration.apps"
NAME = "deploy.greet"


def push(env: dict[str, str], **calls: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Push ``calls[version]`` with each version's code, in parallel; the ids per version."""
    procs = {
        version: subprocess.Popen(
            [sys.executable, "-m", f"{APPS}.deploy_push", version, json.dumps(batch)],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for version, batch in calls.items()
    }
    ids = {}
    for version, proc in procs.items():
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, f"pushing {version} calls failed:\n{err}"
        ids[version] = json.loads(out.strip().splitlines()[-1])
    return ids


def v1(name: str) -> dict[str, Any]:
    return {"args": [name], "kwargs": {}}


def v2(first: str, last: str = "", **kwargs: str) -> dict[str, Any]:
    return {"args": [first, last], "kwargs": kwargs}


def v3(first: str, last: str, **kwargs: str) -> dict[str, Any]:
    return {"args": [{"first": first, "last": last}], "kwargs": kwargs}


def results(rl: Relier, ids: list[str], timeout: float = 30) -> list[Any]:
    return [TaskHandle(rl, i, NAME).result(timeout=timeout) for i in ids]


def ran(rl: Relier, task_id: str) -> list[str]:
    """The code versions that ran the body of ``task_id``, in order."""
    return [v.decode() for v in rl.redis.lrange(f"rl-test:ran:{task_id}", 0, -1)]


def events(rl: Relier, task_id: str) -> list[str]:
    return [e["e"] for e in read_history(rl, task_id)]


def wait_until(check: Callable[[], bool], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_old_and_new_workers_side_by_side_run_every_call_on_code_that_knows_it(
    rl_worker: WorkerFactory, rl: Relier, rl_env: dict[str, str]
) -> None:
    old = rl_worker(f"{APPS}.deploy_v1", concurrency=1)
    # Producers are upgraded before any worker: the only worker runs v1 code.
    early = push(
        rl_env,
        v1=[v1("Ada Lovelace"), v1("Alan Turing")],
        v2=[v2("Grace", "Hopper", greeting="Hi"), v2("Edsger", "Dijkstra")],
    )
    assert results(rl, early["v1"]) == ["Hello, Ada Lovelace!", "Hello, Alan Turing!"]
    # The v1 worker cannot know what a v2 call means: it hands each one back.
    wait_until(lambda: all("deferred" in events(rl, i) for i in early["v2"]))
    for task_id in early["v2"]:
        assert TaskHandle(rl, task_id, NAME).state() in ("PENDING", "RUNNING")
        deferred = [e for e in read_history(rl, task_id) if e["e"] == "deferred"]
        assert deferred[0]["reason"] == "schema_too_new"
        assert (deferred[0]["sv"], deferred[0]["known"]) == (2, 1)

    # The deploy starts: a v2 worker beside the v1 one, both taking calls of
    # both versions from the one queue while old and new producers push.
    rl_worker(f"{APPS}.deploy_v2", concurrency=2)
    people = [("Barbara", "Liskov"), ("Donald", "Knuth"), ("Frances", "Allen"), ("John", "Backus")]
    during = push(
        rl_env,
        v1=[v1(f"{first} {last}") for first, last in people],
        v2=[v2(first, last, greeting="Hey") for first, last in people],
    )
    assert results(rl, during["v1"]) == [f"Hello, {f} {la}!" for f, la in people]

    # The deploy ends: the v1 worker stops (v2 calls it handed back wait for
    # the v2 worker); a producer not yet upgraded still pushes v1 calls,
    # which the v2 worker migrates.
    assert old.terminate() == 0
    late = push(rl_env, v1=[v1("Niklaus Wirth"), v1("Tony Hoare")])
    assert results(rl, early["v2"]) == ["Hi, Grace Hopper!", "Hello, Edsger Dijkstra!"]
    assert results(rl, during["v2"]) == [f"Hey, {f} {la}!" for f, la in people]
    assert results(rl, late["v1"]) == ["Hello, Niklaus Wirth!", "Hello, Tony Hoare!"]

    v2_ids = early["v2"] + during["v2"]
    v1_ids = early["v1"] + during["v1"] + late["v1"]
    # No v2 call ever ran on v1 code; each call's body ran exactly once.
    assert all(ran(rl, i) == ["v2"] for i in v2_ids)
    assert all(len(ran(rl, i)) == 1 for i in v1_ids)
    assert all(ran(rl, i) == ["v1"] for i in early["v1"])
    assert all(ran(rl, i) == ["v2"] for i in late["v1"])
    assert dlq_size(rl) == 0
    for task_id in v1_ids + v2_ids:
        assert TaskHandle(rl, task_id, NAME).state() == "SUCCEEDED"
        assert "dead" not in events(rl, task_id)
    assert not any("deferred" in events(rl, i) for i in v1_ids)


def test_a_lone_old_worker_defers_a_newer_call_then_dead_letters_it(
    rl_worker: WorkerFactory, rl: Relier, rl_env: dict[str, str]
) -> None:
    rl_worker(f"{APPS}.deploy_v1", env={**rl_env, "RELIER_SCHEMA_DEFER_MAX": "1.5"})
    (task_id,) = push(rl_env, v2=[v2("Grace", "Hopper")])["v2"]
    with pytest.raises(TaskFailedError) as info:
        TaskHandle(rl, task_id, NAME).result(timeout=20)
    assert info.value.reason == "schema_too_new"
    entry = get_dead(rl, task_id)
    assert entry.reason == "schema_too_new"
    assert "pushed for schema_version 2" in entry.error and "up to 1" in entry.error
    assert entry.attempts == 0  # claimed and handed back, never run
    assert ran(rl, task_id) == []
    deferred = [e for e in entry.history if e["e"] == "deferred"]
    assert len(deferred) >= 2
    assert all((e["sv"], e["known"]) == (2, 1) for e in deferred)
    assert deferred[1]["t"] - deferred[0]["t"] >= 1_000  # backoff
    dead = entry.history[-1]
    assert (dead["e"], dead["reason"]) == ("dead", "schema_too_new")
    assert dead["t"] - deferred[0]["t"] >= 1_500


def test_a_v3_worker_migrates_v1_and_v2_calls_step_by_step(
    rl_worker: WorkerFactory, rl: Relier, rl_env: dict[str, str]
) -> None:
    rl_worker(f"{APPS}.deploy_v3")
    ids = push(
        rl_env,
        v1=[v1("Ada Lovelace")],
        v2=[v2("Grace", "Hopper", greeting="Hi"), {"args": [], "kwargs": {"first": "Alan"}}],
        v3=[v3("Barbara", "Liskov", greeting="Hey")],
    )
    assert results(rl, ids["v1"]) == ["Hello, Ada Lovelace!"]
    assert results(rl, ids["v2"]) == ["Hi, Grace Hopper!", "Hello, Alan!"]
    assert results(rl, ids["v3"]) == ["Hey, Barbara Liskov!"]
    for task_id in ids["v1"] + ids["v2"] + ids["v3"]:
        assert ran(rl, task_id) == ["v3"]
    # The journal keeps each call as it was pushed.
    envelope = json.loads(rl.redis.hget(rl.keys.task(ids["v1"][0]).job, "env"))
    assert (envelope["sv"], envelope["a"]) == (1, ["Ada Lovelace"])


def test_a_failing_migration_sends_the_task_to_the_dlq(
    rl_worker: WorkerFactory, rl: Relier, rl_env: dict[str, str]
) -> None:
    rl_worker(f"{APPS}.deploy_v2")
    bad, good = push(rl_env, v1=[v1("   "), v1("Ada Lovelace")])["v1"]
    with pytest.raises(TaskFailedError) as info:
        TaskHandle(rl, bad, NAME).result(timeout=20)
    assert info.value.reason == "migration_failed"
    entry = get_dead(rl, bad)
    assert entry.error == (
        "migration 1 -> 2 of deploy.greet raised ValueError: cannot split '   ' into a first "
        "and a last name"
    )
    assert "Traceback" in entry.traceback and "name_to_first_last" in entry.traceback
    assert entry.attempts == 1
    assert [e["e"] for e in entry.history][-2:] == ["started", "dead"]
    assert ran(rl, bad) == []
    # Not retried: a migration fails the same way every time. Other calls run on.
    assert "retry" not in [e["e"] for e in entry.history]
    assert results(rl, [good]) == ["Hello, Ada Lovelace!"]

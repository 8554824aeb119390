"""The operator commands, run as the real ``rl`` executable against a real worker.

Each test runs ``python -m relier ...`` (the ``rl_cli`` fixture) as a subprocess, several at a
time where the order does not matter, and parses its ``--json`` output; one call goes through
the ``rl`` console script itself.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from relier import Relier, TaskHandle
from relier.testing import CliRunner, WorkerFactory
from tests.integration.apps import ops

APP = "tests.integration.apps.ops"
Run = subprocess.CompletedProcess[str]


def run_all(rl_cli: CliRunner, *calls: tuple[str, ...]) -> list[Run]:
    """Run several ``rl`` commands at once; their results in order."""
    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(lambda argv: rl_cli(*argv), calls))


def ok_json(result: Run) -> Any:
    assert result.returncode == 0, (result.args, result.stdout, result.stderr)
    return json.loads(result.stdout)


def wait_until(check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_status_inflight_workers_and_task_during_a_live_load(
    rl_worker: WorkerFactory, rl_cli: CliRunner, rl: Relier
) -> None:
    worker = rl_worker(APP, concurrency=2)
    slow = [ops.slow.push(8) for _ in range(3)]
    wait_until(lambda: sum(h.state() == "RUNNING" for h in slow) == 2)
    running = [h.id for h in slow if h.state() == "RUNNING"]
    follow_argv = ["inflight", "--follow", "--json", "--interval", "0.2"]
    with subprocess.Popen(
        [sys.executable, "-m", "relier", *follow_argv],
        env=rl_cli.env, cwd=rl_cli.cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    ) as follow:  # fmt: skip
        assert follow.stdout is not None and follow.stderr is not None
        try:
            calls = [
                ("status", "--json"), ("status",), ("inflight", "--json"),
                ("inflight", "--task", "ops.*"), ("workers", "--json"), ("workers",),
                ("task", running[0], "--json"), ("task", running[0]),
            ]  # fmt: skip
            status, status_text, inflight, inflight_text, workers, workers_text, task, task_text = (
                run_all(rl_cli, *calls)
            )
            frames = [json.loads(follow.stdout.readline()) for _ in range(2)]
        finally:
            follow.send_signal(signal.SIGINT)
            follow_code = follow.wait(10)
        assert follow_code == 0, follow.stderr.read()
    assert frames[1]["now_ms"] > frames[0]["now_ms"]
    assert {t["id"] for t in frames[1]["tasks"]} == set(running)

    st = ok_json(status)
    assert (st["workers_alive"], st["workers_dead"], st["running"]) == (1, 0, 2)
    depth = {q["name"]: q["depth"] for q in st["queues"]}
    assert depth["celery"] + st["reserved"] == 1  # the third task waits for a process
    assert st["rates"]["counts"]["dispatched"] == 3
    assert (st["dlq"], st["scheduled"]) == (0, 0)
    assert status_text.returncode == 0 and "1 alive" in status_text.stdout
    assert "2 running" in status_text.stdout and "dispatched   3" in status_text.stdout

    tasks = ok_json(inflight)["tasks"]
    assert {t["id"] for t in tasks} == set(running)
    for t in tasks:
        assert (t["task"], t["state"], t["attempt"], t["queue"]) == (
            "ops.slow",
            "RUNNING",
            1,
            "celery",
        )
        assert t["worker_alive"] and t["worker_id"].startswith(worker.hostname + "#")
        assert t["pid"] in worker.children() and t["elapsed_ms"] > 0
    assert inflight_text.returncode == 0
    header = inflight_text.stdout.splitlines()[0].split()
    assert header == ["ID", "TASK", "STATE", "WORKER", "PID", "ATTEMPT", "ELAPSED", "QUEUE"]
    assert all(task_id in inflight_text.stdout for task_id in running)

    [w] = ok_json(workers)["workers"]
    assert (w["alive"], w["pid"], w["running"], w["owned"]) == (True, worker.pid, 2, 2)
    assert 0 <= w["lease_age_ms"] < 2_000 and w["uptime_ms"] > 0
    assert workers_text.returncode == 0 and "alive" in workers_text.stdout

    detail = ok_json(task)
    assert (detail["state"], detail["task"], detail["attempt"], detail["fence"]) == (
        "RUNNING", "ops.slow", 1, 1
    )  # fmt: skip
    assert detail["envelope"]["a"] == [8] and detail["envelope"]["t"] == "ops.slow"
    assert [e["e"] for e in detail["history"]][:1] == ["dispatched"]
    assert [e["e"] for e in detail["history"]][-1] == "started"
    assert task_text.returncode == 0 and "state     RUNNING" in task_text.stdout
    worker.kill()  # no need to wait for the slow tasks


def test_dlq_release_of_a_failed_task_that_then_succeeds_and_purge(
    rl_worker: WorkerFactory, rl_cli: CliRunner, rl: Relier
) -> None:
    rl_worker(APP)
    rl.redis.set(ops.gate_key("g"), 1)
    handles = [ops.gated.push("g") for _ in range(3)]
    wait_until(lambda: all(h.state() == "DEAD" for h in handles))
    first, second, third = (h.id for h in handles)

    listed, by_reason, none, show = run_all(
        rl_cli, ("dlq", "list", "--json"), ("dlq", "list", "--task", "ops.*", "--since", "5m",
        "--reason", "max_retries", "--json"), ("dlq", "list", "--reason", "poison_pill", "--json"),
        ("dlq", "show", first, "--json"),
    )  # fmt: skip
    entries = ok_json(listed)["entries"]
    assert {e["id"] for e in entries} == {first, second, third}
    assert {(e["task"], e["reason"], e["attempts"]) for e in entries} == {
        ("ops.gated", "max_retries", 1)
    }  # fmt: skip
    assert len(ok_json(by_reason)["entries"]) == 3
    assert ok_json(none) == {"entries": [], "truncated": False}
    dead = ok_json(show)
    assert dead["error"] == "ValueError: gate g is closed"
    assert "gate g is closed" in dead["traceback"] and dead["envelope"]["a"] == ["g"]

    rl.redis.delete(ops.gate_key("g"))
    released = ok_json(rl_cli("dlq", "release", first, "--json"))
    assert released == {"released": {first: 2}, "refused": {}}
    assert TaskHandle(rl, first, "ops.gated").result(timeout=20) == "passed g"
    events = ok_json(rl_cli("task", first, "--json"))["history"]
    names = [e["e"] for e in events]
    assert names[names.index("dead") :][:2] == ["dead", "released"]
    assert names[-1] == "succeeded"
    restarted = [e for e in events if e["e"] == "started"][-1]
    assert (restarted["attempt"], restarted["fence"]) == (1, 3)  # fresh count, fence went up

    dry, no_tty = run_all(
        rl_cli, ("dlq", "release", "--all", "--dry-run", "--json"), ("dlq", "purge", second)
    )
    plan = ok_json(dry)
    assert (plan["dry_run"], set(plan["would_release"]), plan["not_in_dlq"]) == (
        True, {second, third}, []
    )  # fmt: skip
    assert no_tty.returncode == 2 and "pass --yes" in no_tty.stderr
    assert ok_json(rl_cli("dlq", "purge", second, "--yes", "--json")) == {
        "purged": [second], "refused": {}
    }  # fmt: skip
    gone = rl_cli("task", second)
    assert gone.returncode == 1 and "TaskNotFoundError" in gone.stderr

    bulk = rl_cli("dlq", "release", "--all", "--task", "ops.gated")
    assert bulk.returncode == 0, bulk.stderr
    assert bulk.stdout.splitlines() == [f"released {third} (fence 2)", "1 released, 0 refused"]
    assert TaskHandle(rl, third, "ops.gated").result(timeout=20) == "passed g"
    empty, status = run_all(rl_cli, ("dlq", "list", "--json"), ("status", "--json"))
    assert ok_json(empty)["entries"] == []
    counts = ok_json(status)["rates"]["counts"]
    assert (counts["dead"], counts["released"], counts["succeeded"]) == (3, 2, 2)


def test_exit_codes_on_bad_input(rl_cli: CliRunner, rl: Relier) -> None:
    down = {**rl_cli.env, "RELIER_REDIS_URL": "redis://127.0.0.1:1/0"}
    with ThreadPoolExecutor(8) as pool:
        unknown = pool.map(lambda argv: rl_cli(*argv), [
            ("task", "no-such-id"), ("dlq", "show", "no-such-id"),
            ("dlq", "release", "no-such-id"), ("dlq", "purge", "no-such-id", "--yes"),
        ])  # fmt: skip
        usage = pool.map(lambda argv: rl_cli(*argv), [
            ("dlq", "list", "--since", "yesterday"), ("dlq", "release"), ("inflight", "--bogus"),
        ])  # fmt: skip
        unreachable = pool.map(lambda argv: rl_cli(*argv, env=down), [
            ("status",), ("inflight", "--json"), ("dlq", "list"),
        ])  # fmt: skip
        script = pool.submit(
            subprocess.run,
            [str(Path(sys.executable).with_name("rl")), "status", "--json"],
            env=rl_cli.env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    for result in unknown:
        assert result.returncode == 1, (result.args, result.stderr)
        assert "no-such-id" in result.stdout + result.stderr
    for result in usage:
        assert result.returncode == 2, (result.args, result.stderr)
        assert result.stderr.startswith(("usage: rl", "rl: "))
    for result in unreachable:
        assert result.returncode == 3, (result.args, result.stderr)
        assert result.stderr.startswith("rl: RedisUnavailableError: Redis at redis://127.0.0.1:1/0")
    console = script.result()
    assert console.returncode == 0, console.stderr
    assert json.loads(console.stdout)["workers_alive"] == 0

"""``rl chaos`` against a local cluster: every scenario passes, broken set-ups do not.

A module-wide cluster (the session's redis-server, two ``rl worker``
processes with ``RELIER_CHAOS=1`` and a 1 s lease) serves the scenarios
that leave the workers running; a scenario that stops one (``sigterm``)
gets a replacement before the next test. ``redis-restart`` gets a
redis-server of its own, since it replaces the server process. Each test
runs the real ``python -m relier chaos`` subprocess and then checks the
journal itself: every task in Redis ended SUCCEEDED or DEAD, and none has
two ``succeeded`` events.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from relier import Relier
from relier.config import load_settings
from relier.localredis import LocalRedis
from relier.testing import RedisServer, WorkerFactory, WorkerProcess
from tests.chaos.conftest import FAST

ROOT = Path(__file__).resolve().parents[2]
APP = "tests.chaos.apps"


def chaos_env(url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELIER_")}
    return {**env, "RELIER_REDIS_URL": url, "PYTHONUNBUFFERED": "1", **FAST, **extra}


def rl_chaos(
    env: dict[str, str], *args: str, timeout: float = 90
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "relier", "chaos", *args],
        env=env, cwd=ROOT, stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=timeout, check=False,
    )  # fmt: skip


def journal(client: Any) -> tuple[int, list[str], list[str]]:
    """(tasks, ids not SUCCEEDED/DEAD, ids with two `succeeded` events), from every job in Redis."""
    ids = [k.decode().split("{", 1)[1].split("}", 1)[0] for k in client.scan_iter("rl:{*}:job")]
    lost, double = [], []
    for task_id in ids:
        state = client.hget(f"rl:{{{task_id}}}:job", "state")
        if state not in (b"SUCCEEDED", b"DEAD"):
            lost.append(task_id)
        hist = [json.loads(e) for e in client.lrange(f"rl:{{{task_id}}}:hist", 0, -1)]
        if sum(1 for e in hist if e["e"] == "succeeded") > 1:
            double.append(task_id)
    return len(ids), lost, double


def assert_journal_clean(client: Any, timeout: float = 20) -> int:
    deadline = time.monotonic() + timeout
    while True:
        tasks, lost, double = journal(client)
        if not lost or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert not lost, f"{len(lost)} of {tasks} tasks in Redis are not SUCCEEDED or DEAD: {lost[:5]}"
    assert not double, f"tasks committed twice: {double}"
    return tasks


def probe_listed(client: Any, workers: list[WorkerProcess]) -> bool:
    listed = {k.decode().split("#")[0] for k in client.hkeys("rl:chaos:workers")}
    return all(w.hostname in listed for w in workers)


class Cluster:
    """Two probe workers on one Redis; :meth:`ready` tops them up to two."""

    def __init__(self, server: RedisServer, factory: WorkerFactory) -> None:
        self.server = server
        self.factory = factory
        self.url = server.url
        self.env = chaos_env(server.url)
        self.client = server.client()

    def alive(self) -> list[WorkerProcess]:
        return [w for w in self.factory.workers if w.is_alive()]

    def ready(self) -> None:
        while len(self.alive()) < 2:
            self.factory(APP, "--without-mingle", "--without-gossip")
        deadline = time.monotonic() + 10
        while not probe_listed(self.client, self.alive()):
            assert time.monotonic() < deadline, "workers did not list themselves for rl chaos"
            time.sleep(0.05)

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        self.ready()
        return rl_chaos(self.env, *args)


@pytest.fixture(scope="module")
def cluster(rl_redis: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    rl_redis.start()
    with rl_redis.client() as client:
        client.flushall()
    env = chaos_env(rl_redis.url, RELIER_CHAOS="1")
    factory = WorkerFactory(env, ROOT, tmp_path_factory.mktemp("rl-chaos-workers"))
    try:
        yield Cluster(rl_redis, factory)
    finally:
        factory.close()


def passed(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The JSON result of a run that must have passed."""
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    result: dict[str, Any] = json.loads(proc.stdout)
    assert result["status"] == "PASS" and not result["failed"], result
    ledger = result["figures"]["ledger"]
    assert ledger["lost"] == 0 and ledger["double_commits"] == 0 and ledger["unexpected"] == 0
    return result


def test_poison_pill_prints_did_verified_and_pass(cluster: Cluster) -> None:
    proc = cluster.run("poison-pill", "--tasks", "10")
    out = proc.stdout
    assert proc.returncode == 0, f"{out}\n{proc.stderr}"
    assert out.splitlines()[-1].startswith("PASS (poison-pill")
    assert "  did: pushed poison pill " in out
    assert "  verified: the pill is in the DLQ with reason poison_pill" in out
    assert "  verified: no neighbour was counted as a crash (0 were)" in out
    assert "FAILED" not in out
    assert "  measured: pill_executions = 3" in out  # RELIER_MAX_RESURRECTIONS default
    assert assert_journal_clean(cluster.client) >= 11
    assert cluster.client.zcard("rl:dlq") == 1


def test_load_spike(cluster: Cluster) -> None:
    result = passed(cluster.run("load-spike", "--json"))
    figures = result["figures"]
    assert figures["rejected"] > 0 and figures["admitted"] >= 5  # the burst
    assert figures["admitted"] + figures["rejected"] == 300
    assert 0 < figures["retry_after_ms"]["min"] <= figures["retry_after_ms"]["max"] <= 250
    assert any("retry_after" in v and "admitted" in v for v in result["verified"])
    assert_journal_clean(cluster.client)


def test_worker_kill(cluster: Cluster) -> None:
    result = passed(cluster.run("worker-kill", "--json"))
    figures = result["figures"]
    assert figures["kill_to_restarted_ms"]["n"] == 2
    assert figures["kill_to_requeued_ms"]["max"] < 1000  # the pool-child promise
    assert sum("SIGKILLed pool process" in d for d in result["did"]) == 2
    assert_journal_clean(cluster.client)


def test_zombie(cluster: Cluster) -> None:
    result = passed(cluster.run("zombie", "--json"))
    figures = result["figures"]
    assert figures["ledger"]["stale_commits"] >= 1
    # It waited out the 1 s lease (renewed every 0.2 s, so it had 0.8 to 1 s left).
    assert figures["stop_to_restarted_elsewhere_ms"] >= 700
    assert_journal_clean(cluster.client)


def test_partition(cluster: Cluster) -> None:
    result = passed(cluster.run("partition", "-A", APP, "--json"))
    figures = result["figures"]
    assert figures["cut_seconds"] > 2.0  # longer than twice the 1 s lease
    assert figures["ledger"]["stale_commits"] >= 2
    assert figures["cut_to_restarted_elsewhere_ms"]["n"] == 2
    assert any("refused by the fence" in v for v in result["verified"])
    assert any("ran new probes after the restore" in v for v in result["verified"])
    assert_journal_clean(cluster.client)
    listed = [k.decode() for k in cluster.client.hkeys("rl:chaos:workers")]
    assert not [w for w in listed if w.startswith("chaos-partition")], "partition worker left"


def test_sigterm(cluster: Cluster) -> None:
    cluster.ready()
    before = cluster.alive()
    result = passed(cluster.run("sigterm", "--json"))
    stopped = [w for w in before if not w.is_alive()]
    assert len(stopped) == 1, "exactly one worker was stopped"
    assert stopped[0].proc.returncode == 0, "it exited cleanly"
    assert result["figures"]["sigterm_to_exit_ms"] < 15_000
    assert_journal_clean(cluster.client)


def process_state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]


def test_sigterm_to_rl_chaos_continues_the_frozen_worker(cluster: Cluster) -> None:
    cluster.ready()
    workers = cluster.alive()
    proc = subprocess.Popen(
        [sys.executable, "-m", "relier", "chaos", "zombie"],
        env=cluster.env, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not any(process_state(w.pid) == "T" for w in workers):
            assert proc.poll() is None and time.monotonic() < deadline, "no worker was stopped"
            time.sleep(0.01)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, out + err
    assert "interrupted; cleaned up" in err
    assert all(w.is_alive() and process_state(w.pid) != "T" for w in workers), "left frozen"
    assert all(process_state(c) != "T" for w in workers for c in w.children())


def test_no_live_probe_worker_fails_fast(cluster: Cluster) -> None:
    env = chaos_env(cluster.url, RELIER_KEY_PREFIX="nobody")
    started = time.monotonic()
    proc = rl_chaos(env, "zombie")
    assert proc.returncode == 2, proc.stdout
    assert time.monotonic() - started < 15
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith("CANNOT RUN: no live worker runs the chaos probes")
    assert "RELIER_CHAOS=1" in last


def test_remote_workers_cannot_be_signalled(cluster: Cluster) -> None:
    cluster.ready()
    saved = cluster.client.hgetall("rl:chaos:workers")
    # The workers list themselves as running on another host: the scenario must refuse.
    for wid, info in saved.items():
        cluster.client.hset(
            "rl:chaos:workers", wid, json.dumps(json.loads(info) | {"host": "elsewhere.example"})
        )
    try:
        proc = rl_chaos(cluster.env, "worker-kill", "--json")
    finally:
        cluster.client.hset("rl:chaos:workers", mapping=saved)
    assert proc.stdout, proc.stderr
    result = json.loads(proc.stdout)
    assert proc.returncode == 2 and result["status"] == "CANNOT RUN", proc.stdout
    assert "needs one on this host" in result["reason"]
    assert "elsewhere.example" in result["reason"]


def test_redis_restart_is_not_applicable_without_aof(rl_redis: RedisServer, tmp_path: Path) -> None:
    plain = rl_redis.start_extra("--appendonly", "no")
    # Preflight would refuse this Redis; the worker skips it to give rl chaos a cluster.
    env = chaos_env(plain.url, RELIER_CHAOS="1", RELIER_PREFLIGHT="false")
    factory = WorkerFactory(env, ROOT, tmp_path / "workers")
    try:
        worker = factory(APP, "--without-mingle", "--without-gossip")
        with plain.client() as client:
            deadline = time.monotonic() + 10
            while not probe_listed(client, [worker]):
                assert time.monotonic() < deadline
                time.sleep(0.05)
            pid = int(client.info("server")["process_id"])
            proc = rl_chaos(env, "redis-restart", "--json")
            result = json.loads(proc.stdout)
            assert proc.returncode == 4 and result["status"] == "NOT APPLICABLE", proc.stdout
            assert "appendonly no: a restart would lose its data" in result["reason"]
            assert int(client.info("server")["process_id"]) == pid, "Redis was left alone"
    finally:
        factory.close()
        plain.stop()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[LocalRedis]:
    server = LocalRedis(tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        # redis-restart replaced the process: stop whichever one serves the port.
        try:
            with server.client(socket_timeout=2) as client:
                pid = int(client.info("server")["process_id"])
            os.kill(pid, signal.SIGTERM)
        except Exception:
            pid = 0
        server.stop()
        deadline = time.monotonic() + 10
        while pid and Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)


@pytest.mark.timeout(240)
def test_redis_restart_all_and_an_opted_out_worker(own_redis: LocalRedis, tmp_path: Path) -> None:
    url = own_redis.url
    factory = WorkerFactory(chaos_env(url), ROOT, tmp_path / "workers")
    client = own_redis.client()
    try:
        # A worker without RELIER_CHAOS: rl chaos refuses, and even a pill delivered to it
        # (it imports the probes and consumes their queue) does not end its process.
        plain = factory(APP, "-I", "relier.chaos.probes", "-Q", "celery,relier-chaos")
        proc = rl_chaos(factory.env, "poison-pill")
        assert proc.returncode == 2 and "RELIER_CHAOS=1" in proc.stdout, proc.stdout
        from relier.chaos import probes as chaos_probes

        hub = Relier(load_settings(redis_url=url))
        chaos_probes.crash.relier = hub
        try:
            handle = chaos_probes.crash.push()
        finally:
            chaos_probes.crash.relier = None
            hub.close()
        deadline = time.monotonic() + 15
        while client.hget(f"rl:{{{handle.id}}}:job", "state") != b"DEAD":
            assert time.monotonic() < deadline, "the refused pill did not reach the DLQ"
            time.sleep(0.05)
        job = client.hgetall(f"rl:{{{handle.id}}}:job")
        assert job[b"reason"] == b"max_retries" and b"RELIER_CHAOS=1" in job[b"error"], job
        assert plain.is_alive() and plain.children(), "the pill must not touch the process"
        plain.terminate()

        factory.env = chaos_env(url, RELIER_CHAOS="1")
        worker = factory(APP, "--without-mingle", "--without-gossip")
        deadline = time.monotonic() + 10
        while not probe_listed(client, [worker]):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        old_pid = int(client.info("server")["process_id"])
        proc = rl_chaos(chaos_env(url), "redis-restart", "--json")
        result = passed(proc)
        client = own_redis.client()
        assert int(client.info("server")["process_id"]) != old_pid, "Redis was restarted"
        assert result["figures"]["outage_seconds"] >= 1.0
        assert result["figures"]["pushes_refused"] > 0
        assert worker.is_alive()
        assert_journal_clean(client)

        # Every scenario in turn, on two workers (sigterm, last, stops one of them).
        second = factory(APP, "--without-mingle", "--without-gossip")
        deadline = time.monotonic() + 10
        while not probe_listed(client, [worker, second]):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        proc = rl_chaos(chaos_env(url), "all", "--json", timeout=150)
        report = json.loads(proc.stdout)
        statuses = {r["scenario"]: r["status"] for r in report["scenarios"]}
        assert proc.returncode == 0 and report["exit_code"] == 0, proc.stdout
        assert statuses == dict.fromkeys(statuses, "PASS") and len(statuses) == 7, statuses
        assert [r["scenario"] for r in report["scenarios"]][-1] == "sigterm"
        assert sum(w.is_alive() for w in (worker, second)) == 1
        assert_journal_clean(own_redis.client())
    finally:
        factory.close()

"""Tests of the ``relier.testing`` pytest plugin that need only redis-server."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from relier.testing import RedisServer


def _config(server: RedisServer, name: str) -> str:
    with server.client() as client:
        value = client.config_get(name)[name]
    return value.decode() if isinstance(value, bytes) else str(value)


def test_session_server_has_the_settings_preflight_requires(rl_redis: RedisServer) -> None:
    assert _config(rl_redis, "appendonly") == "yes"
    assert _config(rl_redis, "appendfsync") == "everysec"
    assert _config(rl_redis, "maxmemory-policy") == "noeviction"
    assert _config(rl_redis, "save") == ""
    assert rl_redis.url == f"redis://127.0.0.1:{rl_redis.port}/0"
    with rl_redis.client() as client:
        assert client.ping()
        assert int(client.info("server")["redis_version"].split(".")[0]) >= 7


@pytest.mark.parametrize("round_", [1, 2])
def test_redis_url_gives_every_test_empty_databases(
    rl_redis_url: str, rl_redis: RedisServer, round_: int
) -> None:
    # The second round proves the data the first one leaves behind is flushed.
    assert rl_redis_url == rl_redis.url
    with rl_redis.client() as db0, rl_redis.client(db=3) as db3:
        assert db0.dbsize() == 0
        assert db3.dbsize() == 0
        db0.set("left-behind", round_)
        db3.set("left-behind", round_)


def test_relier_env_points_at_the_test_redis_and_drops_other_relier_variables(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, rl_redis_url: str
) -> None:
    monkeypatch.setenv("RELIER_REDIS_URL", "redis://elsewhere:6379/0")
    monkeypatch.setenv("RELIER_KEY_PREFIX", "stray")
    env = request.getfixturevalue("rl_env")
    assert env["RELIER_REDIS_URL"] == rl_redis_url
    assert env["PYTHONUNBUFFERED"] == "1"
    assert "RELIER_KEY_PREFIX" not in env
    assert env["PATH"]


def test_restart_keeps_data_on_the_same_port(rl_redis_url: str, rl_redis: RedisServer) -> None:
    port, pid = rl_redis.port, rl_redis.proc.pid if rl_redis.proc else None
    with rl_redis.client() as client:
        client.config_set("appendfsync", "always")
        client.set("survivor", b"still here")
    rl_redis.restart()
    assert rl_redis.port == port
    assert rl_redis.proc is not None and rl_redis.proc.pid != pid
    with rl_redis.client() as client:
        assert client.get("survivor") == b"still here"
        # The restart re-applies the fixture's arguments.
        assert _config(rl_redis, "appendfsync") == "everysec"


def test_stop_then_redis_url_brings_the_server_back(rl_redis: RedisServer) -> None:
    rl_redis.stop()
    assert not rl_redis.is_running()
    with (
        rl_redis.client(retry=Retry(NoBackoff(), 0)) as client,
        pytest.raises(redis.ConnectionError),
    ):
        client.ping()
    # A test that leaves the server stopped must not break the next one.
    rl_redis.start()
    assert rl_redis.is_running()


def test_start_extra_runs_another_server_with_extra_args(rl_redis: RedisServer) -> None:
    extra = rl_redis.start_extra("--appendonly", "no")
    try:
        assert extra.port != rl_redis.port
        assert extra.dir != rl_redis.dir
        assert _config(extra, "appendonly") == "no"
        assert _config(extra, "maxmemory-policy") == "noeviction"
        assert _config(rl_redis, "appendonly") == "yes"
    finally:
        extra.stop()
    assert not extra.is_running()


def _fake_redis_server(tmp_path: Path, version_line: str) -> Path:
    script = tmp_path / "redis-server"
    script.write_text(f"#!/bin/sh\necho '{version_line}'\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


@pytest.mark.parametrize(
    ("binary", "message"),
    [
        ("missing", "cannot run redis-server"),
        ("old", "needs redis-server 7+, but * is 6.2.14"),
    ],
)
def test_an_unusable_redis_server_fails_instead_of_skipping(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, binary: str, message: str
) -> None:
    if binary == "missing":
        path = pytester.path / "no-such-redis-server"
    else:
        path = _fake_redis_server(pytester.path, "Redis server v=6.2.14 sha=00000000:0")
    monkeypatch.setenv("RELIER_TEST_REDIS_SERVER", str(path))
    pytester.makepyfile("def test_needs_redis(rl_redis_url):\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([f"*{message}*"])


# A stand-in for `python -m relier worker`: the worker fixture's contract is tested on its own,
# independently of the real worker. It forks two "pool" children that ignore SIGTERM, so only
# the fixture's SIGKILL of the process group can end them.
FAKE_WORKER = """
import os, signal, sys, time
print("args:", sys.argv[1:], flush=True)
print("url:", os.environ["RELIER_REDIS_URL"], flush=True)
if os.environ.get("FAKE_EXIT"):
    sys.exit(int(os.environ["FAKE_EXIT"]))
children = []
for _ in range(2):
    pid = os.fork()
    if pid == 0:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        while True:
            time.sleep(1)
    children.append(pid)
with open(os.environ["FAKE_PIDS"], "a") as f:
    f.write(" ".join(map(str, children)) + " ")
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
print("[INFO] Relier worker ready", flush=True)
while True:
    time.sleep(1)
"""

INNER_TESTS = """
import os, signal

def _env(rl_env, **extra):
    return {**rl_env, "PYTHONPATH": os.environ["FAKE_DIR"], **extra}

def test_ready_worker(rl_worker, rl_env, rl_redis_url):
    worker = rl_worker("app.mod", "--extra", env=_env(rl_env), concurrency=3, queues="a,b")
    assert len(worker.children()) == 2
    assert worker.hostname.startswith("w1@")
    log = worker.log()
    assert (
        "args: ['worker', '-A', 'app.mod', '--concurrency', '3', '--pool', 'prefork', "
        "'--loglevel', 'INFO', '--hostname', 'w1@%h', '-Q', 'a,b', '--extra']"
    ) in log
    assert f"url: {rl_redis_url}" in log
    second = rl_worker("app.mod", env=_env(rl_env))
    assert second.hostname.startswith("w2@")
    assert second.terminate(timeout=10) == 0
    assert False, "fail on purpose to get the worker logs in the report"

def test_worker_that_exits_before_ready(rl_worker, rl_env):
    rl_worker("app.mod", env=_env(rl_env, FAKE_EXIT="3"), ready_timeout=20)
"""


def _process_gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state in {"Z", "X"}  # a zombie waiting for an init that does not reap


def test_rl_worker_waits_for_ready_reports_logs_and_kills_every_process(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = pytester.mkdir("fake")
    (fake / "relier").mkdir()
    (fake / "relier" / "__init__.py").write_text("")
    (fake / "relier" / "__main__.py").write_text(FAKE_WORKER)
    pids_file = pytester.path / "pids.txt"
    monkeypatch.setenv("FAKE_DIR", str(fake))
    monkeypatch.setenv("FAKE_PIDS", str(pids_file))
    pytester.makepyfile(INNER_TESTS)

    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")

    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [
            "*- Captured log of worker w1@* -*",
            "*[[]INFO[]] Relier worker ready*",
            "*- Captured log of worker w2@* -*",
        ]
    )
    result.stdout.fnmatch_lines(["*worker w1@* exited with code 3 before logging*"])
    children = [int(pid) for pid in pids_file.read_text().split()]
    assert len(children) == 4
    assert all(_process_gone(pid) for pid in children)

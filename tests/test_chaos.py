"""The pieces of ``rl chaos``: the TCP proxy, the ledger, the redis-restart plan, the CLI.

The scenarios themselves run against real workers in tests/chaos/test_rl_chaos.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
from collections.abc import Iterator

import pytest

from relier import Relier
from relier.chaos.base import NotApplicable
from relier.chaos.ledger import Expect, Ledger, summary
from relier.chaos.proxy import TcpProxy
from relier.chaos.redis_faults import _is_local, _is_redis_process, restart_plan
from relier.chaos.runner import ChaosRun, ScenarioResult
from relier.cli.main import main
from relier.config import load_settings
from relier.testing import RedisServer


@pytest.fixture
def echo_server() -> Iterator[int]:
    """A TCP server on 127.0.0.1 that sends back what it receives; its port."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve(conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(4096):
                conn.sendall(data)

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def roundtrip(port: int, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        sock.sendall(payload)
        return sock.recv(4096)


def test_proxy_forwards_cuts_and_restores(echo_server: int) -> None:
    proxy = TcpProxy("127.0.0.1", echo_server).start()
    try:
        assert roundtrip(proxy.port, b"hello") == b"hello"
        held = socket.create_connection(("127.0.0.1", proxy.port), timeout=2)
        held.sendall(b"x")
        assert held.recv(16) == b"x"

        assert proxy.cut() == 2  # the held connection: client side and upstream side
        with pytest.raises(OSError):  # reset, or a read of nothing
            held.sendall(b"y")
            if not held.recv(16):
                raise ConnectionResetError("closed")
        held.close()
        with (
            socket.create_connection(("127.0.0.1", proxy.port), timeout=2) as sock,
            contextlib.suppress(ConnectionResetError),  # closed, or reset
        ):
            assert sock.recv(16) == b"", "a connection made during the cut is closed"
        assert proxy.refused == 1

        proxy.restore()
        assert roundtrip(proxy.port, b"again") == b"again"
        assert proxy.accepted == 3
    finally:
        proxy.close()


@pytest.fixture
def hub(rl_redis_url: str) -> Iterator[Relier]:
    relier = Relier(load_settings(redis_url=rl_redis_url))
    yield relier
    relier.close()


def journal(hub: Relier, task_id: str, state: str | None, *events: str, **fields: str) -> None:
    keys = hub.keys.task(task_id)
    if state is not None:
        hub.redis.hset(keys.job, mapping={"state": state, **fields})
    for n, name in enumerate(events):
        hub.redis.rpush(keys.hist, json.dumps({"t": n, "e": name}))


def test_ledger_names_lost_unexpected_and_double_commits(hub: Relier) -> None:
    journal(hub, "ok", "SUCCEEDED", "dispatched", "started", "succeeded")
    journal(hub, "pill", "DEAD", "dispatched", "dead", reason="poison_pill")
    journal(hub, "stuck", "RUNNING", "dispatched", "started")
    journal(hub, "twice", "SUCCEEDED", "started", "succeeded", "started", "succeeded")
    journal(hub, "wrong", "DEAD", "dead", reason="failed")
    journal(hub, "zombie", "SUCCEEDED", "started", "stale_commit", "succeeded")
    ledger = Ledger(hub)
    for task_id in ("ok", "stuck", "twice", "wrong", "zombie", "missing"):
        ledger.add(task_id)
    ledger.add("pill", Expect("DEAD", "poison_pill"))
    hub.redis.sadd(hub.keys.chaos_exec("ok"), "a", "b")

    assert not ledger.wait_final(0.1)
    verdict = ledger.verdict()
    assert verdict.lost == ["stuck", "missing"]
    assert verdict.wrong == ["wrong"]
    assert verdict.double_commits == ["twice"]
    assert verdict.stale_commits == 1
    assert verdict.runs["ok"] == 2 and verdict.executions == 2
    assert not verdict.ok
    assert "2 lost, 1 unexpected, 1 double commits, 1 stale commits refused" in verdict.line()


def test_summary() -> None:
    assert summary([]) == {"n": 0}
    assert summary([3.0, 1.0, 2.0]) == {"n": 3, "p50": 2.0, "max": 3.0}


def chaos_run(url: str) -> ChaosRun:
    relier = Relier(load_settings(redis_url=url))
    return ChaosRun(relier, ScenarioResult("redis-restart"), None, 5.0, None, False)


def test_redis_restart_does_not_apply_to_a_remote_redis() -> None:
    run = chaos_run("redis://redis.invalid:6379/0")  # .invalid never resolves (RFC 2606)
    with pytest.raises(NotApplicable, match=r"redis\.invalid is not on this host"):
        restart_plan(run)  # decided from the URL alone: nothing is sent to Redis


def test_redis_restart_does_not_apply_without_aof(rl_redis: RedisServer) -> None:
    plain = rl_redis.start_extra("--appendonly", "no")
    run = chaos_run(plain.url)
    try:
        with pytest.raises(NotApplicable, match="appendonly no: a restart would lose its data"):
            restart_plan(run)
    finally:
        run.relier.close()
        plain.stop()


def test_redis_restart_plan_rebuilds_the_command(rl_redis: RedisServer) -> None:
    run = chaos_run(rl_redis.url)
    try:
        pid, executable, command, cwd = restart_plan(run)
    finally:
        run.relier.close()
    assert rl_redis.proc is not None and pid == rl_redis.proc.pid
    assert executable.endswith(("redis-server", "redis-check-rdb"))
    assert command[0] == "redis-server"
    options = dict(zip(command[1::2], command[2::2], strict=False))
    assert options["--port"] == str(rl_redis.port)
    assert options["--dir"] == str(rl_redis.dir)
    assert options["--appendonly"] == "yes"
    assert options["--maxmemory-policy"] == "noeviction"
    assert command[-2:] == ["--daemonize", "no"]
    assert cwd == str(rl_redis.dir)


def test_a_pid_is_signalled_only_if_it_is_this_redis(rl_redis: RedisServer) -> None:
    assert rl_redis.proc is not None
    assert _is_redis_process(rl_redis.proc.pid, f":{rl_redis.port}")
    assert not _is_redis_process(rl_redis.proc.pid, f":{rl_redis.port + 1}")
    assert not _is_redis_process(os.getpid(), f":{rl_redis.port}")  # not a redis binary
    assert _is_local("localhost") and _is_local("127.0.0.1") and _is_local("127.1")
    assert not _is_local("redis.invalid")


def test_unknown_scenario_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["chaos", "meteor-strike"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'meteor-strike'" in capsys.readouterr().err

"""``rl chaos`` scenarios that take Redis away: ``redis-restart`` and ``partition``.

``redis-restart`` stops the settings' Redis with SIGTERM (it flushes its
AOF) and starts it again with its own binary and running configuration
(read with ``CONFIG GET``), when that Redis is a process on this host that
this user may signal, with AOF on and no password or TLS; otherwise it is
not applicable. ``partition`` starts a worker of its own whose Redis
connections go through a :class:`relier._tcp_proxy.TcpProxy`, and cuts them.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import redis.exceptions

from relier.chaos import probes
from relier.chaos.base import (
    CannotRun,
    ChaosRun,
    NotApplicable,
    ProbeWorker,
    lease_s,
    process_alive,
    restart_latency,
    task_state,
    wait_for,
)
from relier.chaos.ledger import after, summary
from relier.chaos.proxy import TcpProxy
from relier.clock import now_ms
from relier.errors import RedisUnavailableError
from relier.localredis import die_with_parent
from relier.ops.dlq import read_history

__all__ = ["partition", "redis_restart", "restart_plan"]

# Servers restarted by redis-restart outlive `rl chaos`; kept so their Popen
# objects are never collected while the server runs.
_restarted: list[subprocess.Popen[bytes]] = []


# -- redis-restart --------------------------------------------------------

_LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1"}
_RESTART_PARAMS = (
    "port", "bind", "unixsocket", "unixsocketperm", "dir", "dbfilename", "appendonly",
    "appendfsync", "appendfilename", "appenddirname", "save", "maxmemory",
    "maxmemory-policy", "logfile", "protected-mode", "databases",
)  # fmt: skip


def _is_local(host: str) -> bool:
    """Whether ``host`` names this machine: every address it resolves to is loopback or ours."""
    if host in _LOCAL_HOSTS:
        return True
    try:
        addresses = {str(a[4][0]) for a in socket.getaddrinfo(host, None)}
        ours = {str(a[4][0]) for a in socket.getaddrinfo(socket.gethostname(), None)}
    except OSError:
        return False
    return all(ipaddress.ip_address(a).is_loopback or a in ours for a in addresses)


def _is_redis_process(pid: int, listen: str) -> bool:
    """Whether ``pid`` runs a redis binary whose process title names ``listen``."""
    try:
        exe = Path(os.readlink(f"/proc/{pid}/exe")).name
        title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return False
    return "redis" in exe and listen in title


def restart_plan(run: ChaosRun) -> tuple[int, str, list[str], str]:
    """(pid, executable, command, working directory) to restart the settings' Redis with.

    Raises:
        NotApplicable: it is not on this host, not a process this user may
            signal, has AOF off (a restart would lose data), needs a password
            or TLS, or hides its configuration (managed Redis).
    """
    parts = urlsplit(run.settings.redis_url)
    if parts.scheme != "unix" and not _is_local(parts.hostname or "localhost"):
        raise NotApplicable(
            f"Redis at {parts.hostname} is not on this host (only a Redis at a loopback "
            "address, at one of this host's addresses, or on a unix socket can be restarted)"
        )
    client = run.relier.redis
    info = client.info("server")
    pid = int(info.get("process_id", 0))
    listen = parts.path if parts.scheme == "unix" else f":{info.get('tcp_port', parts.port)}"
    if pid and not _is_redis_process(pid, listen):
        # Redis in a container reports the pid of its own namespace: here that pid may be
        # some other process, which must never be signalled.
        raise NotApplicable(
            f"process {pid} here is not this Redis (no redis binary listening on {listen}); "
            "it runs in another container or machine"
        )
    # INFO's executable is argv[0] joined to the cwd: wrong after a PATH lookup. The binary
    # may be a multi-call one (Debian's redis-server -> redis-check-rdb) that needs argv[0].
    argv0 = Path(str(info.get("executable", "") or "redis-server")).name
    executable = str(info.get("executable", ""))
    if not Path(executable).exists():
        try:
            executable = os.readlink(f"/proc/{pid}/exe")
        except OSError:
            executable = ""
    config_file = str(info.get("config_file", ""))
    if not pid or not Path(f"/proc/{pid}").exists():
        raise NotApplicable(
            f"Redis's process {pid} is not visible from here (another container or machine)"
        )
    try:
        os.kill(pid, 0)
    except PermissionError:
        raise NotApplicable(
            f"Redis's process {pid} belongs to another user; restart it with its supervisor "
            "(systemctl restart redis) and watch `rl status`"
        ) from None
    if not executable or not Path(executable).exists():
        raise NotApplicable(f"Redis's executable {executable!r} is not readable here")
    try:
        config = {p: str(client.config_get(p).get(p, "")) for p in _RESTART_PARAMS}
        password = client.config_get("requirepass").get("requirepass", "")
        tls_port = int(client.config_get("tls-port").get("tls-port", 0) or 0)
    except redis.exceptions.ResponseError as exc:
        raise NotApplicable(
            f"Redis refuses CONFIG GET ({exc}), so its command is unknown"
        ) from None
    if config["appendonly"] != "yes":
        raise NotApplicable("Redis runs with appendonly no: a restart would lose its data")
    if password or tls_port:
        raise NotApplicable(
            "Redis needs a password or TLS; rl chaos will not put them on a command line"
        )
    command = [argv0, *([config_file] if config_file else [])]
    for name, value in config.items():
        if name in ("unixsocket", "unixsocketperm") and not config["unixsocket"]:
            continue
        if name == "appenddirname" and not value:
            continue
        command += [f"--{name}", *(value.split() if name == "bind" else [value])]
    command += ["--daemonize", "no"]
    try:
        cwd = str(Path(f"/proc/{pid}/cwd").resolve(strict=True))
    except OSError:
        cwd = config["dir"]
    return pid, executable, command, cwd


def _answers(run: ChaosRun) -> bool:
    try:
        return bool(run.relier.redis.ping())
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
        return False
    except redis.exceptions.ResponseError:  # loading the AOF
        return False


def redis_restart(run: ChaosRun) -> None:
    """Stop Redis (SIGTERM, AOF flushed), keep it down 1 s, start it again with its command."""
    run.require()
    pid, executable, command, cwd = restart_plan(run)
    for _ in range(4):
        run.push(probes.hold, "", 0.0, 0.5)
    for _ in range(run.tasks or 20):
        run.push(probes.ping)
    refused = [0]
    stop = threading.Event()

    def produce() -> None:
        while not stop.is_set():
            try:
                run.push(probes.ping)
            except RedisUnavailableError:
                refused[0] += 1  # refused while Redis is down; the next push tries again
            time.sleep(0.05)

    producer = threading.Thread(target=produce, daemon=True)
    producer.start()

    def stop_producer() -> None:
        stop.set()
        producer.join(10)

    run.cleanups.append(stop_producer)
    time.sleep(0.3)
    down_at = now_ms()
    os.kill(pid, signal.SIGTERM)
    gone = wait_for(lambda: not process_alive(pid), 20)
    if not gone:
        run.check(False, f"Redis (pid {pid}) stopped within 20 s of SIGTERM")
        return
    run.did(f"stopped Redis (SIGTERM to pid {pid}); it flushed its AOF and exited")
    time.sleep(1.0)
    with Path(os.devnull).open("wb") as devnull:
        proc = subprocess.Popen(
            command, executable=executable, cwd=cwd, stdin=subprocess.DEVNULL, stdout=devnull,
            stderr=devnull,
            start_new_session=True,
        )  # fmt: skip
    _restarted.append(proc)
    back = wait_for(lambda: _answers(run), 30, 0.05)
    up_at = now_ms()
    if not back:
        code = proc.poll()
        run.check(
            False,
            f"Redis came back: `{' '.join(command)}` (in {cwd}) "
            + (f"exited with code {code}" if code is not None else "does not answer PING")
            + "; start Redis again by hand",
        )
        return
    run.did(
        f"started it again after {(up_at - down_at) / 1000:.1f} s with {Path(command[0]).name} "
        f"and its running configuration (pid {proc.pid})"
    )
    run.check(True, f"Redis came back (pid {proc.pid}) and answers PING")
    time.sleep(1.0)
    stop.set()
    producer.join(10)
    drained = wait_for(lambda: run.ledger.wait_final(0), run.timeout, 0.1)
    drained_ms = now_ms() - up_at
    run.finish()
    verdict = run.ledger.verdict()
    resurrected = sum(1 for h in verdict.histories.values() for e in h if e["e"] == "resurrected")
    run.check(bool(drained), "every probe pushed before, during and after the outage ended")
    run.figure("outage_seconds", round((up_at - down_at) / 1000, 2))
    run.figure("pushes_refused", refused[0])
    run.figure("drained_after_restart_ms", drained_ms)
    run.figure("resurrections", resurrected)


# -- partition ------------------------------------------------------------


def _proxy_url(url: str, port: int) -> str:
    parts = urlsplit(url)
    auth = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
    return urlunsplit(parts._replace(netloc=f"{auth}127.0.0.1:{port}"))


class _PartitionWorker:
    """The dedicated worker ``partition`` starts, connected to Redis through the proxy."""

    def __init__(self, app: str, url: str) -> None:
        self.node = f"chaos-partition-{uuid.uuid4().hex[:6]}"
        self.dir = Path(tempfile.mkdtemp(prefix="rl-chaos-"))
        self.log = self.dir / "worker.log"
        env = {
            **os.environ, "RELIER_REDIS_URL": url, "RELIER_BROKER_URL": url,
            "RELIER_CHAOS": "1", "PYTHONUNBUFFERED": "1",
        }  # fmt: skip
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable, "-m", "relier", "worker", "-A", app, "--concurrency", "2",
                    "--loglevel", "INFO", "--hostname", f"{self.node}@%h", "--without-mingle",
                    "--without-gossip", "-Q", probes.QUEUE,
                ],
                env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=die_with_parent(),
            )  # fmt: skip

    def tail(self) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-15:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(15)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def partition(run: ChaosRun) -> None:
    """Cut a dedicated worker off Redis for longer than its lease, then restore it."""
    run.require()
    parts = urlsplit(run.settings.redis_url)
    if parts.scheme == "unix":
        raise CannotRun("partition needs Redis on TCP (a redis:// URL), not a unix socket")
    proxy = TcpProxy(parts.hostname or "localhost", parts.port or 6379).start()
    run.cleanups.append(proxy.close)
    app = run.app or "relier.chaos.probes"
    worker = _PartitionWorker(app, _proxy_url(run.settings.redis_url, proxy.port))
    run.cleanups.append(worker.stop)

    def listed() -> ProbeWorker | None:
        return next((w for w in run.workers() if w.node.startswith(worker.node)), None)

    target = wait_for(lambda: worker.proc.poll() is None and listed(), 60, 0.1)
    if target is None:
        raise CannotRun(
            f"the partition worker (rl worker -A {run.app or 'relier.chaos.probes'}) did not "
            f"start within 60 s; its log ends with:\n{worker.tail()}"
        )
    run.did(
        f"started worker {target.worker_id} connected to Redis through a TCP proxy on "
        f"127.0.0.1:{proxy.port}"
    )
    lease = lease_s(run)
    min_cut = lease * 2 + run.settings.scan_interval_ms / 1000 + 1.0
    hold_s = min_cut + 10.0
    landed = run.land(target, seconds=hold_s, count=2)
    cut_at = now_ms()
    closed = proxy.cut()
    run.did(f"cut its {closed} proxied connections while it ran probes {', '.join(landed)}")

    def taken_over() -> bool:
        return all(task_state(run, t) == "SUCCEEDED" for t in landed)

    wait_for(lambda: taken_over() and now_ms() - cut_at >= min_cut * 1000, run.timeout, 0.05)
    restore_at = now_ms()
    proxy.restore()
    probes.release(run.relier, landed)  # their holds end as soon as they reach Redis again
    run.did(
        f"restored the connections after {(restore_at - cut_at) / 1000:.1f} s (lease "
        f"{lease:.1f} s); {proxy.refused} reconnection attempts were refused meanwhile"
    )
    run.check(taken_over(), "its probes were taken over and succeeded on other workers")
    stale = wait_for(
        lambda: all(after(read_history(run.relier, t), "stale_commit", restore_at) for t in landed),
        hold_s + run.timeout / 2,
        0.05,
    )
    run.check(
        bool(stale),
        f"the cut-off worker's late commits of {len(landed)} probes were refused by the fence",
    )
    awake = wait_for(listed, 20, 0.1)
    run.check(bool(awake), f"worker {target.worker_id} renewed its lease after the restore")

    def ran_there() -> bool:
        task_id = run.push(probes.ping)
        wait_for(lambda: task_state(run, task_id) == "SUCCEEDED", 5)
        result = json.loads(run.job(task_id, "result")[0] or "{}")
        return bool(result.get("worker") == target.worker_id)

    recovered = wait_for(ran_there, 20, 0)
    run.check(bool(recovered), "it ran new probes after the restore")
    run.finish()
    if stale:
        refusals = [after(read_history(run.relier, t), "stale_commit", restore_at) for t in landed]
        first = min(int(r["t"]) for r in refusals if r is not None)
        run.figure("restore_to_stale_commit_refused_ms", first - restore_at)
    run.figure("cut_seconds", round((restore_at - cut_at) / 1000, 2))
    taken = [restart_latency(run, t, cut_at, "resurrected")[1] for t in landed]
    run.figure("cut_to_restarted_elsewhere_ms", summary([float(v) for v in taken if v is not None]))

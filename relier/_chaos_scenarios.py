"""The scenarios of ``rl chaos``: each does one kind of damage and checks the ledger.

Every function takes a :class:`relier.chaos.ChaosRun`, records what it
did, verified and measured on it, and ends with ``run.finish()`` (the
ledger's claims: nothing lost, nothing unexpected, nothing committed twice).
Signals go only to worker processes on this host (``/proc`` lists their
pool processes); the workers' lease timing is read from this process's
settings, so run ``rl chaos`` with the workers' ``RELIER_*`` settings.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis.exceptions

from . import chaos_probes as probes
from ._chaos_ledger import Expect, after, summary
from ._tcp_proxy import TcpProxy
from .admission import parse_rate
from .chaos import CannotRun, ChaosRun, NotApplicable, ProbeWorker
from .clock import now_ms
from .errors import AdmissionRejectedError, RedisUnavailableError

__all__ = [
    "load_spike",
    "partition",
    "poison_pill",
    "redis_restart",
    "sigterm",
    "worker_kill",
    "zombie",
]

# Servers restarted by redis-restart outlive `rl chaos`; kept so their Popen
# objects are never collected while the server runs.
_restarted: list[subprocess.Popen[bytes]] = []


# -- processes on this host -----------------------------------------------


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _alive(pid: int) -> bool:
    """The process exists and is not a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def _wait(predicate: Callable[[], Any], timeout: float, interval: float = 0.02) -> Any:
    """Poll ``predicate`` until it is truthy (its value) or ``timeout`` s pass (None)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            return None
        time.sleep(interval)


def _history(run: ChaosRun, task_id: str) -> list[dict[str, Any]]:
    raw = run.relier.redis.lrange(run.relier.keys.task(task_id).hist, 0, -1)
    return [json.loads(e) for e in raw]


def _state(run: ChaosRun, task_id: str) -> str | None:
    return run.job(task_id, "state")[0]


def _lease_s(run: ChaosRun) -> float:
    return run.settings.lease_ttl_ms / 1000


def _restart_latency(
    run: ChaosRun, task_id: str, at_ms: int, cause: str
) -> tuple[int | None, int | None]:
    """(ms from ``at_ms`` to the ``cause`` event, to the next start after it)."""
    history = _history(run, task_id)
    event = after(history, cause, at_ms)
    if event is None:
        return None, None
    started = after(history, "started", int(event["t"]))
    return int(event["t"]) - at_ms, (int(started["t"]) - at_ms if started else None)


def _pick_local(workers: list[ProbeWorker]) -> ProbeWorker:
    return next(w for w in workers if w.local)


# -- worker-kill ----------------------------------------------------------


def worker_kill(run: ChaosRun) -> None:
    """SIGKILL the pool process running a probe (an OOM kill), twice; the probe re-runs."""
    target = _pick_local(run.require(local=1))
    for _ in range(run.tasks or 10):
        run.push(probes.ping)
    requeued: list[float] = []
    restarted: list[float] = []
    killed: list[str] = []
    for _ in range(2):
        (task_id,) = run.land(target, seconds=30.0)
        pid = int(run.job(task_id, "pid")[0] or 0)
        if pid not in _children(target.pid):
            run.check(False, f"probe {task_id} runs in pid {pid}, a pool process of {target.pid}")
            return
        at = now_ms()
        os.kill(pid, signal.SIGKILL)
        killed.append(task_id)
        run.did(
            f"SIGKILLed pool process {pid} of worker {target.worker_id} while it ran probe "
            f"{task_id}"
        )
        _wait(lambda: _state(run, task_id) in ("SUCCEEDED", "DEAD"), run.timeout)  # noqa: B023
        back, again = _restart_latency(run, task_id, at, "resurrected")
        if back is not None:
            requeued.append(back)
        if again is not None:
            restarted.append(again)
    run.finish()
    verdict = run.ledger.verdict()
    for task_id in killed:
        job, history = verdict.jobs[task_id], verdict.histories[task_id]
        kinds = [e.get("kind") for e in history if e["e"] == "resurrected"]
        run.check(
            job.get("state") == "SUCCEEDED" and kinds == ["child"] and job.get("res") == "1",
            f"probe {task_id} was re-queued once as a pool-process crash (resurrected kinds "
            f"{kinds}, res {job.get('res')}) and succeeded on attempt {job.get('attempt')}",
        )
        run.check(
            verdict.runs[task_id] == 2,
            f"probe {task_id}'s body ran twice (killed, then the re-run): {verdict.runs[task_id]}",
        )
    alive = any(w.worker_id == target.worker_id for w in run.workers())
    run.check(alive, f"worker {target.worker_id} is still alive (it replaced its pool process)")
    run.figure("kill_to_requeued_ms", summary(requeued))
    run.figure("kill_to_restarted_ms", summary(restarted))


# -- zombie ---------------------------------------------------------------


def zombie(run: ChaosRun) -> None:
    """SIGSTOP a worker past its lease; its probe runs elsewhere; SIGCONT: its commit is refused."""
    target = _pick_local(run.require(count=2, local=1))
    (task_id,) = run.land(target, seconds=1.0)
    pids = [target.pid, *_children(target.pid)]
    at = now_ms()
    _signal_all(pids, signal.SIGSTOP)
    run.cleanups.append(lambda: _signal_all(pids, signal.SIGCONT))
    run.did(
        f"SIGSTOPped worker {target.worker_id} (main process {target.pid} and "
        f"{len(pids) - 1} pool processes) while it ran probe {task_id}"
    )
    ran = _wait(lambda: _state(run, task_id) == "SUCCEEDED", _lease_s(run) * 3 + run.timeout)
    frozen_s = (now_ms() - at) / 1000
    cont_at = now_ms()
    _signal_all(pids, signal.SIGCONT)
    run.did(f"SIGCONTed it after {frozen_s:.1f} s (the lease is {_lease_s(run):.1f} s)")
    if not run.check(bool(ran), f"probe {task_id} succeeded elsewhere while the worker was frozen"):
        run.finish()
        return
    stale = _wait(lambda: after(_history(run, task_id), "stale_commit", cont_at), 15)
    awake = _wait(lambda: any(w.worker_id == target.worker_id for w in run.workers()), 15)
    run.finish()
    job = run.ledger.verdict().jobs[task_id]
    result = json.loads(job.get("result", "{}"))
    run.check(
        result.get("worker") != target.worker_id and int(job.get("fence", 0)) >= 2,
        f"the committed result is the survivor's ({result.get('worker')}, fence "
        f"{result.get('fence')}), not the frozen worker's",
    )
    run.check(
        bool(stale),
        f"the woken worker's late commit was refused by the fence (stale_commit, fence "
        f"{stale.get('fence') if stale else '?'})",
    )
    run.check(bool(awake), f"worker {target.worker_id} renewed its lease again after SIGCONT")
    back, again = _restart_latency(run, task_id, at, "resurrected")
    run.figure("stop_to_requeued_ms", back)
    run.figure("stop_to_restarted_elsewhere_ms", again)
    if stale:
        run.figure("cont_to_stale_commit_refused_ms", int(stale["t"]) - cont_at)


# -- sigterm --------------------------------------------------------------


def sigterm(run: ChaosRun) -> None:
    """SIGTERM a worker holding probes: it hands back what it did not start and exits."""
    target = _pick_local(run.require(count=2, local=1))
    run.land(target, seconds=1.0)
    for _ in range(run.tasks or 10):
        run.push(probes.ping)
    at = now_ms()
    os.kill(target.pid, signal.SIGTERM)
    run.did(f"SIGTERMed worker {target.worker_id} (pid {target.pid}) while it ran a probe")
    grace = run.settings.shutdown_grace
    exited = _wait(lambda: not _alive(target.pid), grace + run.timeout, 0.01)
    exit_ms = now_ms() - at
    run.check(bool(exited), f"worker {target.worker_id} exited ({exit_ms} ms after SIGTERM)")
    run.finish()
    verdict = run.ledger.verdict()
    handbacks = [
        (task_id, e)
        for task_id, history in verdict.histories.items()
        for e in history
        if e["e"] == "handoff" and e.get("from") == target.worker_id and e["t"] >= at
    ]
    later = [
        int(s["t"]) - int(e["t"])
        for task_id, e in handbacks
        if (s := after(verdict.histories[task_id], "started", int(e["t"]))) is not None
    ]
    run.did(f"the worker handed {len(handbacks)} probes back; it stays stopped (restart it)")
    listed = any(w.worker_id == target.worker_id for w in run.workers())
    run.check(not listed, "the stopped worker is no longer listed as alive")
    run.figure("sigterm_to_exit_ms", exit_ms)
    run.figure("handed_back", len(handbacks))
    if handbacks:
        run.figure("sigterm_to_handback_ms", min(int(e["t"]) for _, e in handbacks) - at)
        run.figure("handback_to_restarted_ms", summary([float(v) for v in later]))


# -- poison-pill ----------------------------------------------------------


def poison_pill(run: ChaosRun) -> None:
    """One probe that ends its own process every time, among normal ones."""
    run.require()
    pill = run.push(probes.crash, expect=Expect("DEAD", "poison_pill"))
    for _ in range(run.tasks or 20):
        run.push(probes.ping)
    run.did(f"pushed poison pill {pill} (os._exit in its body) among {run.tasks or 20} probes")
    run.finish()
    verdict = run.ledger.verdict()
    job, runs = verdict.jobs[pill], verdict.runs[pill]
    in_dlq = run.relier.redis.zscore(run.relier.keys.dlq, pill) is not None
    run.check(
        job.get("state") == "DEAD" and job.get("reason") == "poison_pill" and in_dlq,
        f"the pill is in the DLQ with reason poison_pill (state {job.get('state')}, reason "
        f"{job.get('reason')}, in rl:dlq: {in_dlq})",
    )
    run.check(
        runs >= 1 and job.get("res") == str(runs),
        f"each of its {runs} runs killed its process and was counted once (res {job.get('res')})",
    )
    innocent = [i for i, j in verdict.jobs.items() if i != pill and j.get("res", "0") != "0"]
    run.check(not innocent, f"no neighbour was counted as a crash ({len(innocent)} were)")
    run.figure("pill_executions", runs)
    if job.get("finished") and job.get("created"):
        run.figure("push_to_dlq_ms", int(float(job["finished"])) - int(float(job["created"])))


# -- load-spike -----------------------------------------------------------


def _used_memory(run: ChaosRun) -> int:
    return int(run.relier.redis.info("memory")["used_memory"])


def load_spike(run: ChaosRun) -> None:
    """A burst far above a rate-limited probe's limit: rejections carry an exact retry-after."""
    run.require()
    interval_ms = parse_rate(probes.LIMITED_RATE)
    burst = probes.LIMITED_BURST
    n = run.tasks or 300
    queue = run.relier.keys.queue(probes.QUEUE)
    memory_before = _used_memory(run)
    admitted: list[str] = []
    rejected: list[AdmissionRejectedError] = []
    depth_max = 0
    started = time.monotonic()
    for i in range(n):
        try:
            admitted.append(run.push(probes.limited, i))
        except AdmissionRejectedError as exc:
            rejected.append(exc)
        if i % 25 == 0:
            depth_max = max(depth_max, int(run.relier.redis.llen(queue)))
    elapsed = time.monotonic() - started
    depth_max = max(depth_max, int(run.relier.redis.llen(queue)))
    memory_after = _used_memory(run)
    run.did(
        f"pushed {n} calls of relier.chaos.limited ({probes.LIMITED_RATE}, burst {burst}) in "
        f"{elapsed:.2f} s: {len(admitted)} admitted, {len(rejected)} rejected"
    )
    allowed = burst + elapsed * 1000 / interval_ms + 1
    run.check(
        len(admitted) <= allowed and len(rejected) > 0,
        f"admitted at most burst + rate x time ({len(admitted)} <= {allowed:.0f}), the rest "
        "rejected",
    )
    waits = [e.retry_after for e in rejected]
    bound = burst * interval_ms / 1000
    run.check(
        all(e.reason == "rate" and 0 < e.retry_after <= bound + 1e-3 for e in rejected),
        f"every rejection is a rate rejection with 0 < retry_after <= {bound:.2f} s",
    )
    # Honour one retry_after: the same push must then be admitted.
    try:
        run.push(probes.limited, -1)
        honoured = "was admitted at once"
        ok = True
    except AdmissionRejectedError as exc:
        time.sleep(exc.retry_after + 0.002)
        try:
            run.push(probes.limited, -1)
            honoured, ok = (
                f"was admitted after waiting its retry_after ({exc.retry_after * 1000:.0f} ms)",
                True,
            )
        except AdmissionRejectedError as again:
            honoured = (
                f"was rejected again after waiting its retry_after "
                f"({exc.retry_after * 1000:.0f} ms; now {again.retry_after * 1000:.0f} ms)"
            )
            ok = False
    run.check(ok, f"a rejected call retried after its retry_after {honoured}")
    run.check(
        depth_max <= len(admitted) + 1,
        f"the probe queue never held more than the admitted calls (max depth {depth_max})",
    )
    growth = memory_after - memory_before
    limit = (len(admitted) + 1) * 16_384 + 1_048_576
    run.check(
        growth <= limit,
        f"Redis memory grew by {growth} bytes, within {limit} (rejected calls store nothing)",
    )
    run.finish()
    run.figure("admitted", len(admitted))
    run.figure("rejected", len(rejected))
    run.figure("burst_seconds", round(elapsed, 3))
    run.figure(
        "retry_after_ms",
        summary([w * 1000 for w in waits]) | {"min": round(min(waits) * 1000, 1) if waits else 0},
    )
    run.figure("queue_depth_max", depth_max)
    run.figure("redis_memory_growth_bytes", growth)


# -- redis-restart --------------------------------------------------------

_LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1"}
_RESTART_PARAMS = (
    "port", "bind", "unixsocket", "unixsocketperm", "dir", "dbfilename", "appendonly",
    "appendfsync", "appendfilename", "appenddirname", "save", "maxmemory",
    "maxmemory-policy", "logfile", "protected-mode", "databases",
)  # fmt: skip


def restart_plan(run: ChaosRun) -> tuple[int, list[str], str]:
    """(pid, command, working directory) to restart the settings' Redis with.

    Raises:
        NotApplicable: it is not on this host, not a process this user may
            signal, has AOF off (a restart would lose data), needs a password
            or TLS, or hides its configuration (managed Redis).
    """
    parts = urlsplit(run.settings.redis_url)
    if parts.scheme != "unix" and (parts.hostname or "localhost") not in _LOCAL_HOSTS:
        raise NotApplicable(
            f"Redis at {parts.hostname} is not on this host (only a Redis at localhost, "
            "127.0.0.1 or a unix socket can be restarted)"
        )
    client = run.relier.redis
    info = client.info("server")
    pid = int(info.get("process_id", 0))
    executable = str(info.get("executable", ""))
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
    command = [executable, *([config_file] if config_file else [])]
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
    return pid, command, cwd


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
    pid, command, cwd = restart_plan(run)
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
                refused[0] += 1  # a producer retries a refused push, as apps should
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
    gone = _wait(lambda: not _alive(pid), 20)
    if not gone:
        run.check(False, f"Redis (pid {pid}) stopped within 20 s of SIGTERM")
        return
    run.did(f"stopped Redis (SIGTERM to pid {pid}); it flushed its AOF and exited")
    time.sleep(1.0)
    with Path(os.devnull).open("wb") as devnull:
        proc = subprocess.Popen(
            command, cwd=cwd, stdin=subprocess.DEVNULL, stdout=devnull, stderr=devnull,
            start_new_session=True,
        )  # fmt: skip
    _restarted.append(proc)
    back = _wait(lambda: _answers(run), 30, 0.05)
    up_at = now_ms()
    if not run.check(bool(back), f"Redis came back (pid {proc.pid}) and answers PING"):
        return
    run.did(
        f"started it again after {(up_at - down_at) / 1000:.1f} s with {Path(command[0]).name} "
        f"and its running configuration (pid {proc.pid})"
    )
    time.sleep(1.0)
    stop.set()
    producer.join(10)
    drained = _wait(lambda: run.ledger.wait_final(0), run.timeout, 0.1)
    drained_ms = now_ms() - up_at
    run.finish()
    verdict = run.ledger.verdict()
    resurrected = sum(1 for h in verdict.histories.values() for e in h if e["e"] == "resurrected")
    run.check(bool(drained), "every probe pushed before, during and after the outage ended")
    run.figure("outage_seconds", round((up_at - down_at) / 1000, 2))
    run.figure("pushes_refused_and_retried", refused[0])
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
                start_new_session=True,
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
    app = run.app or "relier.chaos_probes"
    worker = _PartitionWorker(app, _proxy_url(run.settings.redis_url, proxy.port))
    run.cleanups.append(worker.stop)

    def listed() -> ProbeWorker | None:
        return next((w for w in run.workers() if w.node.startswith(worker.node)), None)

    target = _wait(lambda: worker.proc.poll() is None and listed(), 60, 0.1)
    if target is None:
        raise CannotRun(
            f"the partition worker (rl worker -A {run.app or 'relier.chaos_probes'}) did not "
            f"start within 60 s; its log ends with:\n{worker.tail()}"
        )
    run.did(
        f"started worker {target.worker_id} connected to Redis through a TCP proxy on "
        f"127.0.0.1:{proxy.port}"
    )
    lease = _lease_s(run)
    min_cut = lease * 2 + run.settings.scan_interval_ms / 1000 + 1.0
    hold_s = min_cut + 3.0
    landed = run.land(target, seconds=hold_s, count=2)
    cut_at = now_ms()
    closed = proxy.cut()
    run.did(f"cut its {closed} proxied connections while it ran probes {', '.join(landed)}")

    def taken_over() -> bool:
        return all(_state(run, t) == "SUCCEEDED" for t in landed)

    _wait(lambda: taken_over() and now_ms() - cut_at >= min_cut * 1000, run.timeout, 0.05)
    restore_at = now_ms()
    proxy.restore()
    run.did(
        f"restored the connections after {(restore_at - cut_at) / 1000:.1f} s (lease "
        f"{lease:.1f} s); {proxy.refused} reconnection attempts were refused meanwhile"
    )
    run.check(taken_over(), "its probes were taken over and succeeded on other workers")
    stale = _wait(
        lambda: all(after(_history(run, t), "stale_commit", restore_at) for t in landed),
        hold_s + run.timeout / 2,
        0.05,
    )
    run.check(
        bool(stale),
        f"the cut-off worker's late commits of {len(landed)} probes were refused by the fence",
    )
    awake = _wait(listed, 20, 0.1)
    run.check(bool(awake), f"worker {target.worker_id} renewed its lease after the restore")

    def ran_there() -> bool:
        task_id = run.push(probes.ping)
        _wait(lambda: _state(run, task_id) == "SUCCEEDED", 5)
        result = json.loads(run.job(task_id, "result")[0] or "{}")
        return bool(result.get("worker") == target.worker_id)

    recovered = _wait(ran_there, 20, 0)
    run.check(bool(recovered), "it ran new probes after the restore")
    run.finish()
    if stale:
        first = min(int(after(_history(run, t), "stale_commit", restore_at)["t"]) for t in landed)  # type: ignore[index]
        run.figure("restore_to_stale_commit_refused_ms", first - restore_at)
    run.figure("cut_seconds", round((restore_at - cut_at) / 1000, 2))
    taken = [_restart_latency(run, t, cut_at, "resurrected")[1] for t in landed]
    run.figure("cut_to_restarted_elsewhere_ms", summary([float(v) for v in taken if v is not None]))

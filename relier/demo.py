"""``rl demo``: a live run on a private Redis and a real worker.

Starts a redis-server (AOF on, noeviction) in a local folder unless
``RELIER_REDIS_URL`` names one, starts ``rl worker`` on the demo tasks,
pushes a mix of async, sync, flaky and broken tasks, shows progress, and
ends with a ledger: every pushed id must be SUCCEEDED or DEAD (lost = 0).
Every process it starts is stopped on the way out, even on Ctrl-C.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from .app import Relier
from .config import load_settings
from .handle import TERMINAL_STATES, TaskHandle
from .localredis import LocalRedis

__all__ = ["run_demo"]


def _say(text: str) -> None:
    print(text, flush=True)


def _start_worker(env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    command = [
        sys.executable, "-m", "relier", "worker", "-A", "relier._demo_tasks",
        "--concurrency", "2", "--loglevel", "INFO", "--hostname", "demo1@%h",
        "--without-mingle", "--without-gossip", "-Q", "relier-demo",
    ]  # fmt: skip
    with log_path.open("wb") as log:
        return subprocess.Popen(
            command, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip


def _wait_ready(worker: subprocess.Popen[bytes], log_path: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while "Relier worker ready" not in log_path.read_text(errors="replace"):
        if worker.poll() is not None or time.monotonic() > deadline:
            tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-30:])
            raise SystemExit(f"rl demo: the worker did not start; its log ends with:\n{tail}")
        time.sleep(0.1)


def _stop_worker(worker: subprocess.Popen[bytes]) -> None:
    if worker.poll() is None:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()


def _states(relier: Relier, handles: list[TaskHandle]) -> list[str]:
    with relier.redis.pipeline(transaction=False) as pipe:
        for h in handles:
            pipe.hget(relier.keys.task(h.id).job, "state")
        return [s.decode() if s else "MISSING" for s in pipe.execute()]


def run_demo(workdir: str = ".relier-demo", tasks: int = 200) -> int:
    """Run the demo; returns 0 when nothing was lost."""
    from . import _demo_tasks as demo

    root = Path(workdir).resolve()
    root.mkdir(parents=True, exist_ok=True)
    own_redis: LocalRedis | None = None
    url = os.environ.get("RELIER_REDIS_URL")
    worker: subprocess.Popen[bytes] | None = None
    try:
        if url is None:
            own_redis = LocalRedis(root / "redis")
            own_redis.start()
            url = own_redis.url
            _say(f"redis-server started at {url} (AOF on, noeviction), data in {own_redis.dir}")
        else:
            _say(f"using RELIER_REDIS_URL={url}")
        env = {**os.environ, "RELIER_REDIS_URL": url, "PYTHONUNBUFFERED": "1"}
        log_path = root / "worker.log"
        worker = _start_worker(env, log_path)
        _wait_ready(worker, log_path)
        _say(f"worker started (pid {worker.pid}, 2 pool processes), log in {log_path}")

        relier = Relier(load_settings(redis_url=url))
        for task in (demo.fetch_quote, demo.make_invoice, demo.charge_card, demo.broken_export):
            task.relier = relier
        started = time.monotonic()
        third = max(1, tasks // 3)
        handles = (
            demo.fetch_quote.push_many([(i,) for i in range(third)])
            + demo.make_invoice.push_many([(i,) for i in range(third)])
            + demo.charge_card.push_many([(i,) for i in range(tasks - 2 * third)])
            + [demo.broken_export.push(1)]
        )
        _say(
            f"pushed {len(handles)} tasks: async quotes, sync invoices, flaky card charges "
            "(every tenth fails once and is retried), one broken export"
        )
        states = _states(relier, handles)
        deadline = time.monotonic() + 120
        while sum(s in TERMINAL_STATES for s in states) < len(handles):
            if time.monotonic() > deadline:
                break
            done = Counter(states)
            print(
                f"\r  succeeded {done['SUCCEEDED']:5d}   dead {done['DEAD']:3d}   "
                f"retrying {done['RETRYING']:3d}   pending/running "
                f"{done['PENDING'] + done['RUNNING']:5d}",
                end="",
                flush=True,
            )
            time.sleep(0.2)
            states = _states(relier, handles)
        elapsed = time.monotonic() - started
        print()
        return _report(relier, handles, states, elapsed)
    finally:
        if worker is not None:
            _stop_worker(worker)
        if own_redis is not None:
            own_redis.stop()
        _say("stopped every process the demo started")


def _report(relier: Relier, handles: list[TaskHandle], states: list[str], elapsed: float) -> int:
    from .dlq import get_dead

    tally = Counter(states)
    dead_reasons: Counter[str] = Counter()
    for h, s in zip(handles, states, strict=True):
        if s == "DEAD":
            dead_reasons[get_dead(relier, h.id).reason] += 1
    lost = len(handles) - tally["SUCCEEDED"] - tally["DEAD"]
    sample: dict[str, Any] = {h.task_name: h.result(timeout=1) for h in handles[:1]}
    with relier.redis.pipeline(transaction=False) as pipe:
        for h in handles:
            pipe.hget(relier.keys.task(h.id).job, "attempt")
        attempts = [int(a or 0) for a in pipe.execute()]
    retried = sum(1 for a, s in zip(attempts, states, strict=True) if a > 1 and s == "SUCCEEDED")
    _say("")
    _say(f"  pushed        {len(handles)}")
    _say(f"  succeeded     {tally['SUCCEEDED']}   ({retried} of them after a retry)")
    for reason, n in sorted(dead_reasons.items()):
        _say(f"  in DLQ        {n}   reason {reason}")
    _say(f"  lost          {lost}")
    _say(f"  elapsed       {elapsed:.2f} s   ({len(handles) / elapsed:.0f} tasks/s end to end)")
    _say(f"  first result  {sample}")
    _say(
        "PASS: every pushed task succeeded or is in the DLQ with a reason"
        if lost == 0
        else f"FAIL: {lost} tasks neither succeeded nor reached the DLQ"
    )
    return 0 if lost == 0 else 1

"""``rl demo``: a live run on a private Redis, two workers and the resurrector.

Starts a redis-server (AOF on, ``noeviction``) in a local folder unless
``RELIER_REDIS_URL`` names one, two ``rl worker`` processes and ``rl
resurrector``; pushes a mix of idempotent payments (some pushed twice), slow
checkpointing reports, async, sync, flaky and broken tasks and one poison
pill; SIGKILLs one worker and SIGTERMs the other mid-run (starting a
replacement for each); and ends with the journal's ledger: lost and double
commits must both be 0 (:mod:`relier.demo.tally`). Every process it starts
is stopped on the way out, even on Ctrl-C.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from relier.clock import now_ms
from relier.config import load_settings
from relier.demo.tally import Kill, read_states, render, tally
from relier.hub import Relier
from relier.localredis import LocalRedis, die_with_parent
from relier.tasks.decorator import RlTask
from relier.tasks.handle import TERMINAL_STATES, TaskHandle

__all__ = ["run_demo"]

DEFAULT_TASKS = 6000  # about 45 s on two cores
WAIT_LIMIT = 180.0  # seconds for the whole mix before the unfinished count as lost
SIGKILL_AT = 0.25  # share of tasks finished when one worker is SIGKILLed...
SIGTERM_AT = 0.55  # ...and when the other is SIGTERMed
SHUTDOWN_GRACE = 0.3  # seconds, unless RELIER_SHUTDOWN_GRACE says otherwise


def _say(text: str) -> None:
    print(text, flush=True)


class _Processes:
    """The workers and the resurrector the demo started, by name."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root = root
        self.env = env
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def log(self, name: str) -> Path:
        return self.root / f"{name}.log"

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        with self.log(name).open("wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "relier", *args], env=self.env, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=die_with_parent(),
            )  # fmt: skip
        self.procs[name] = proc
        return proc

    def start_worker(self, name: str) -> subprocess.Popen[bytes]:
        return self.start(
            name, "worker", "-A", "relier.demo.tasks", "--concurrency", "2",
            "--loglevel", "INFO", "--hostname", f"{name}@%h", "--without-mingle",
            "--without-gossip", "-Q", "relier-demo",
        )  # fmt: skip

    def wait_ready(self, name: str, timeout: float = 60) -> None:
        proc, path = self.procs[name], self.log(name)
        deadline = time.monotonic() + timeout
        while "Relier worker ready" not in path.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = "\n".join(path.read_text(errors="replace").splitlines()[-30:])
                raise SystemExit(
                    f"rl demo: worker {name} did not start; its log ends with:\n{tail}"
                )
            time.sleep(0.1)

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + 30
        for proc in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(max(0.1, deadline - time.monotonic()))
            # The session may hold pool processes that outlive their parent.
            _signal_group(proc, signal.SIGKILL)
            proc.wait()


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)


def _push(n: int, run: str) -> tuple[list[TaskHandle], int, dict[str, str], list[TaskHandle]]:
    """Push the mix for ``n`` tasks, interleaved in ten rounds so every kind is in
    flight all along: (distinct handles, pushes, task id -> payment id, reports)."""
    from relier.demo import tasks as demo

    payments = max(1, n * 3 // 10)
    reports = max(2, n // 100)
    rest = max(3, n - payments - reports - 2)
    third = rest // 3
    payment_calls = [(f"pay-{run}-{i}", 500 + i % 4500) for i in range(payments)]
    # Every twentieth payment is pushed again (a client retrying after a timeout).
    again = payment_calls[::20]
    mix: list[tuple[RlTask[..., Any], list[tuple[Any, ...]]]] = [
        (demo.charge_payment, list(payment_calls)),
        (demo.fetch_quote, [(i,) for i in range(third)]),
        (demo.make_invoice, [(i,) for i in range(third)]),
        (demo.build_report, [(i,) for i in range(reports)]),
        (demo.charge_card, [(i,) for i in range(rest - 2 * third)]),
        (demo.charge_payment, list(again)),
    ]
    handles: list[TaskHandle] = []
    pushes, payment_of, report_handles = 0, {}, []
    rounds = 10
    for r in range(rounds):
        for task, calls in mix:
            part = calls[r * len(calls) // rounds : (r + 1) * len(calls) // rounds]
            if not part:
                continue
            pushed = task.push_many(part)
            pushes += len(pushed)
            handles += pushed
            if task is demo.charge_payment:
                payment_of.update({h.id: c[0] for h, c in zip(pushed, part, strict=True)})
            if task is demo.build_report:
                report_handles += pushed
        if r == rounds // 2:
            handles.append(demo.resize_image.push(7))
            handles.append(demo.broken_export.push(1))
            pushes += 2
    distinct = list({h.id: h for h in handles}.values())
    _say(
        f"pushed {pushes} tasks: {payments} idempotent payments ({len(again)} of them pushed "
        f"twice), {reports} slow reports that checkpoint, {third} async quotes, {third} sync "
        f"invoices, {rest - 2 * third} flaky card charges, one poison pill that kills its "
        "process, one broken export"
    )
    return distinct, pushes, payment_of, report_handles


def _runs_report(relier: Relier, reports: list[TaskHandle], node: str) -> bool:
    """Whether worker ``node`` is running one of the slow reports right now."""
    with relier.redis.pipeline(transaction=False) as pipe:
        for h in reports:
            pipe.hmget(relier.keys.task(h.id).job, "state", "owner")
        rows = pipe.execute()
    return any(
        state == b"RUNNING" and owner and owner.decode().startswith(f"{node}@")
        for state, owner in rows
    )


def _progress(counts: Counter[str], total: int, note: str, tty: bool) -> None:
    done = counts["SUCCEEDED"] + counts["DEAD"]
    line = (
        f"  {done:5d}/{total} done   succeeded {counts['SUCCEEDED']:5d}   dead "
        f"{counts['DEAD']:2d}   retrying {counts['RETRYING']:3d}   running/queued "
        f"{total - done - counts['RETRYING']:5d}   {note}"
    )
    if tty:
        print(f"\r{line:<120}", end="", flush=True)
    else:
        _say(line.rstrip())


def run_demo(workdir: str = ".relier-demo", tasks: int = DEFAULT_TASKS) -> int:
    """Run the demo; returns 0 when nothing was lost or committed twice."""
    from relier.demo import tasks as demo

    root = Path(workdir).resolve()
    root.mkdir(parents=True, exist_ok=True)
    own_redis: LocalRedis | None = None
    url = os.environ.get("RELIER_REDIS_URL")
    procs: _Processes | None = None
    # SIGTERM (a closed terminal, `kill`) cleans up as Ctrl-C does; so does a
    # Ctrl-C when the shell started the demo with SIGINT ignored.
    previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        if url is None:
            own_redis = LocalRedis(root / "redis")
            own_redis.start()
            url = own_redis.url
            _say(f"redis-server started at {url} (AOF on, noeviction), data in {own_redis.dir}")
        else:
            _say(f"using RELIER_REDIS_URL={url}")
        # A short shutdown grace: the SIGTERMed worker hands its running tasks
        # back (to resume from their checkpoints) instead of finishing them.
        env = {
            "RELIER_SHUTDOWN_GRACE": str(SHUTDOWN_GRACE),
            **os.environ,
            "RELIER_REDIS_URL": url,
            "PYTHONUNBUFFERED": "1",
        }
        procs = _Processes(root, env)
        for name in ("demo1", "demo2"):
            procs.start_worker(name)
        procs.start("resurrector", "resurrector", "-A", "relier.demo.tasks")
        for name in ("demo1", "demo2"):
            procs.wait_ready(name)
        _say(
            f"workers demo1 and demo2 (2 pool processes each) and the resurrector started; "
            f"logs in {root}"
        )

        relier = Relier(load_settings(redis_url=url))
        for task in (
            demo.fetch_quote, demo.make_invoice, demo.charge_card, demo.charge_payment,
            demo.build_report, demo.resize_image, demo.broken_export,
        ):  # fmt: skip
            task.relier = relier
        run = uuid.uuid4().hex[:8]
        started = time.monotonic()
        handles, pushes, payment_of, reports = _push(tasks, run)
        kills: list[Kill] = []
        tty = sys.stdout.isatty()
        note, last_line = "", 0.0
        deadline = time.monotonic() + WAIT_LIMIT
        while True:
            states = read_states(relier, handles)
            counts = Counter(states)
            done = sum(s in TERMINAL_STATES for s in states)
            total = len(handles)
            if not kills and _due(relier, reports, "demo1", done, total, SIGKILL_AT):
                _signal_group(procs.procs["demo1"], signal.SIGKILL)
                kills.append(Kill("SIGKILL", "demo1", now_ms()))
                procs.procs["demo1"].wait()
                procs.start_worker("demo3")
                note = "SIGKILLed demo1, started demo3"
                _say_event("SIGKILLed worker demo1 (and its pool); started demo3", tty)
            elif len(kills) == 1 and _due(relier, reports, "demo2", done, total, SIGTERM_AT):
                procs.procs["demo2"].send_signal(signal.SIGTERM)
                kills.append(Kill("SIGTERM", "demo2", now_ms()))
                procs.start_worker("demo4")
                note = "SIGTERMed demo2, started demo4"
                _say_event("SIGTERMed worker demo2 (it hands its work back); started demo4", tty)
            if done == len(handles) or time.monotonic() > deadline:
                break
            if tty or time.monotonic() - last_line >= 2:
                _progress(counts, len(handles), note, tty)
                last_line = time.monotonic()
            time.sleep(0.2)
        _progress(counts, len(handles), note, tty)
        if tty:
            print()
        elapsed = time.monotonic() - started
        ids = sorted(set(payment_of.values()))
        runs = relier.redis.hmget(demo.CHARGE_RUNS, ids) if ids else []
        charge_runs = {i: int(n or 0) for i, n in zip(ids, runs, strict=True)}
        result = tally(relier, handles, pushes, payment_of, charge_runs, kills)
        _say("")
        for line in render(result):
            _say(line)
        _say(f"  elapsed           {elapsed:.1f} s   ({len(handles) / elapsed:.0f} tasks/s)")
        if len(kills) < 2:
            _say("FAIL: the run ended before both workers were signalled")
            return 1
        if result.ok:
            _say("PASS: every task succeeded or is in the DLQ with a reason; none committed twice")
            return 0
        _say(f"FAIL: {result.lost} lost, {result.double_commits} double commits")
        return 1
    except KeyboardInterrupt:
        _say("\ninterrupted; stopping")
        return 130
    finally:
        # A second Ctrl-C must not cut the clean-up short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if procs is not None:
            procs.stop_all()
        if own_redis is not None:
            own_redis.stop()
        _say("stopped every process the demo started")
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _due(
    relier: Relier, reports: list[TaskHandle], node: str, done: int, total: int, share: float
) -> bool:
    """Time to signal ``node``: past ``share`` of the tasks, once it runs a slow
    report (so the run shows one resuming from its checkpoint), or 15 points later."""
    if done < share * total:
        return False
    return done >= (share + 0.15) * total or _runs_report(relier, reports, node)


def _say_event(text: str, tty: bool) -> None:
    _say(("\n" if tty else "") + text)

"""What the benchmarks share: a private Redis, worker subprocesses, timing, statistics, tables.

:class:`Stack` owns every process a benchmark starts (one ``redis-server`` via
:class:`relier.localredis.LocalRedis` in a temporary directory, and each worker in its
own process group) and stops them all on exit, whatever happened. :func:`time_calls`
times calls made one at a time, for the latency benchmarks that need no worker.
"""

from __future__ import annotations

import contextlib
import gc
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from relier.localredis import LocalRedis, die_with_parent, tail

ROOT = Path(__file__).resolve().parents[2]
RELIER_APP = "tests.bench.relier_app"
PLAIN_APP = "tests.bench.plain_app"
RELIER_READY = "Relier worker ready"
# Celery's own banner line once the consumer runs: "celery@host ready."
CELERY_READY = re.compile(r"@\S+ ready\.")
READY_TIMEOUT = 60.0


class BenchError(RuntimeError):
    """A benchmark could not run (a worker did not start, a task never ran...)."""


class Worker:
    """A worker subprocess, leader of its own process group, logging to a file."""

    def __init__(self, name: str, proc: subprocess.Popen[bytes], log_path: Path) -> None:
        self.name = name
        self.proc = proc
        self.pid = proc.pid
        self.log_path = log_path
        self._reaped = False  # once the group is gone, its id may be reused: never signal it

    def __repr__(self) -> str:
        return f"<Worker {self.name} pid={self.pid}>"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill_group(self) -> None:
        """SIGKILL the main process and its pool at once, like an OOM kill of the container."""
        self.signal_group(signal.SIGKILL)
        self.proc.wait()
        self._reaped = True

    def signal_group(self, sig: int) -> None:
        if not self._reaped:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, sig)

    def stop(self, grace: float = 3.0) -> None:
        """SIGTERM the group, SIGKILL it after ``grace`` s (and any orphaned pool process)."""
        if self.alive():
            self.signal_group(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(grace)
        self.signal_group(signal.SIGKILL)
        self.proc.wait()
        self._reaped = True


class Stack:
    """A private Redis plus the workers started on it; a context manager."""

    def __init__(self, label: str) -> None:
        self.label = label
        self._tmp = tempfile.TemporaryDirectory(prefix=f"relier-bench-{label}-")
        self.dir = Path(self._tmp.name)
        self.redis = LocalRedis(self.dir / "redis")
        self.workers: list[Worker] = []
        self._client: Any = None

    def __enter__(self) -> Stack:
        try:
            self.redis.start()
        except BaseException:
            self._tmp.cleanup()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # A second Ctrl-C or SIGTERM must not cut the cleanup short: hold them until it is done.
        held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        try:
            if exc is not None and not isinstance(exc, KeyboardInterrupt | SystemExit):
                for worker in self.workers:
                    print(f"--- last lines of {worker.name}'s log ---", file=sys.stderr)
                    print(tail(worker.log_path, 25), file=sys.stderr)
            self.stop_workers()
            if self._client is not None:
                self._client.close()
        finally:
            try:
                self.redis.stop()
            finally:
                self._tmp.cleanup()
                signal.pthread_sigmask(signal.SIG_SETMASK, held)

    def stop_workers(self) -> None:
        """Stop every worker started so far (SIGTERM, then SIGKILL after 3 s)."""
        for worker in self.workers:
            if worker.alive():
                worker.signal_group(signal.SIGTERM)
        for worker in self.workers:
            worker.stop(grace=3.0)

    @property
    def url(self) -> str:
        return self.redis.url

    @property
    def client(self) -> Any:
        """The benchmark's own Redis client (named ``bench``, so it can be told apart)."""
        if self._client is None:
            self._client = self.redis.client(client_name="bench")
        return self._client

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RELIER_")}
        env.update(RELIER_REDIS_URL=self.url, BENCH_REDIS_URL=self.url, PYTHONUNBUFFERED="1")
        return env

    def _spawn(self, name: str, command: Sequence[str]) -> Worker:
        log_path = self.dir / f"{name}.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                list(command),
                env=self.env(),
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent(),
            )
        worker = Worker(name, proc, log_path)
        self.workers.append(worker)
        return worker

    def _wait_ready(self, worker: Worker, ready: str | re.Pattern[str]) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            text = worker.log()
            if (ready in text) if isinstance(ready, str) else ready.search(text):
                return
            if not worker.alive() or time.monotonic() > deadline:
                why = "exited" if not worker.alive() else f"was not ready in {READY_TIMEOUT:.0f} s"
                raise BenchError(f"worker {worker.name} {why}; log:\n{tail(worker.log_path, 40)}")
            time.sleep(0.05)

    def relier_worker(
        self, name: str, concurrency: int = 2, pool: str = "prefork", *extra: str
    ) -> Worker:
        """Start ``python -m relier worker`` on the benchmark tasks; wait until it is ready."""
        worker = self._spawn(
            name,
            [
                sys.executable, "-m", "relier", "worker", "-A", RELIER_APP,
                "--concurrency", str(concurrency), "--pool", pool,
                "--loglevel", "INFO", "--hostname", f"{name}@%h",
                "--without-mingle", "--without-gossip", *extra,
            ],
        )  # fmt: skip
        self._wait_ready(worker, RELIER_READY)
        return worker

    def plain_worker(self, name: str, concurrency: int = 2) -> Worker:
        """Start plain ``celery worker`` on :mod:`tests.bench.plain_app`; wait until ready."""
        worker = self._spawn(
            name,
            [
                sys.executable, "-m", "celery", "-A", PLAIN_APP, "worker",
                "--concurrency", str(concurrency), "--pool", "prefork",
                "--loglevel", "INFO", "--hostname", f"{name}@%h",
                "--without-mingle", "--without-gossip",
            ],
        )  # fmt: skip
        self._wait_ready(worker, CELERY_READY)
        return worker


def exit_cleanly_on_sigterm() -> None:
    """Make SIGTERM unwind like Ctrl-C, so every :class:`Stack` stops what it started."""

    def stop(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    # A shell starts background jobs with SIGINT ignored; Ctrl-C must still clean up.
    signal.signal(signal.SIGINT, signal.default_int_handler)


def wait_for(what: str, check: Any, timeout: float, interval: float = 0.005) -> Any:
    """Poll ``check()`` until it returns something truthy; BenchError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


@contextlib.contextmanager
def bound(relier: Any, *tasks: Any) -> Iterator[None]:
    """Point ``tasks`` at ``relier`` (their ``.relier``) for the block; then unset it."""
    for task in tasks:
        task.relier = relier
    try:
        yield
    finally:
        for task in tasks:
            task.relier = None


# --- timing of calls made one at a time ------------------------------------------------


@dataclass(frozen=True, slots=True)
class Timing:
    """One case of :func:`time_calls`: each call's latency (µs) and the time they all took."""

    latencies_us: list[float]
    wall_s: float

    @property
    def per_s(self) -> float:
        """Calls per second, one at a time (the loop's own overhead included)."""
        return len(self.latencies_us) / self.wall_s


def time_calls(
    cases: Mapping[str, Callable[[int], object]], n: int, block: int = 500, warmup: int = 200
) -> dict[str, Timing]:
    """Call each case ``fn(i)`` for ``i`` in ``range(n)``, one call at a time, and time each.

    The cases take turns in blocks of ``block`` calls, in an order rotated every
    round, so a machine busy with something else slows every case alike instead of
    whichever ran at that moment. Each case first makes ``warmup`` unmeasured calls
    with the indexes ``-warmup`` to ``-1`` (connections open, scripts load).
    """
    for fn in cases.values():
        for i in range(-warmup, 0):
            fn(i)
    names = list(cases)
    latencies: dict[str, list[float]] = {name: [] for name in names}
    wall = dict.fromkeys(names, 0.0)
    clock = time.perf_counter_ns
    gc.collect()
    for turn, start in enumerate(range(0, n, block)):
        shift = turn % len(names)
        for name in names[shift:] + names[:shift]:
            fn, out = cases[name], latencies[name]
            began = clock()
            for i in range(start, min(start + block, n)):
                t0 = clock()
                fn(i)
                out.append((clock() - t0) / 1000)
            wall[name] += (clock() - began) / 1e9
    return {name: Timing(latencies[name], wall[name]) for name in names}


def print_timings(timings: Mapping[str, Timing]) -> None:
    """One progress line per case on stderr: p50, p99, calls/s."""
    width = max(map(len, timings))
    for name, timing in timings.items():
        stats = summary(timing.latencies_us)
        print(
            f"  {name:{width}s}  p50 {stats['p50']:7.1f} µs  p99 {stats['p99']:7.1f} µs  "
            f"{timing.per_s:8,.0f}/s",
            file=sys.stderr,
        )


# --- statistics and tables ---------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile, linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def summary(values: Sequence[float]) -> dict[str, float]:
    """n, p50, p95, p99, max of ``values``."""
    return {
        "n": len(values),
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "p99": percentile(values, 99),
        "max": max(values) if values else float("nan"),
    }


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], markdown: bool = False) -> str:
    """A plain-text (aligned) or Markdown table."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    if markdown:
        lines = ["| " + " | ".join(cells[0]) + " |", "|" + "|".join("---" for _ in headers) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in cells[1:]]
        return "\n".join(lines)
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    out = ["  ".join(c.ljust(w) for c, w in zip(cells[0], widths, strict=True)).rstrip()]
    out.append("  ".join("-" * w for w in widths))
    out += [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in cells[1:]
    ]
    return "\n".join(out)


def ratio(value: float, base: float) -> str:
    """``value / base`` as ``"1.23x"``."""
    return f"{value / base:.2f}x"


def latency_table(
    timings: Mapping[str, Timing], baseline: str, short: str, markdown: bool = False
) -> str:
    """One row per case of :func:`time_calls`: p50, p99 and calls/s, each also as a
    ratio to case ``baseline`` (named ``short`` in the headers)."""
    base = summary(timings[baseline].latencies_us)
    headers = ["case", "calls", "p50 µs", "p99 µs", "calls/s"]
    headers += [f"p50 / {short}", f"p99 / {short}", f"calls/s / {short}"]
    rows = []
    for name, timing in timings.items():
        stats = summary(timing.latencies_us)
        rows.append([
            name, str(stats["n"]), f"{stats['p50']:.1f}", f"{stats['p99']:.1f}",
            f"{timing.per_s:,.0f}", ratio(stats["p50"], base["p50"]),
            ratio(stats["p99"], base["p99"]), ratio(timing.per_s, timings[baseline].per_s),
        ])  # fmt: skip
    return table(headers, rows, markdown)


def machine() -> dict[str, str]:
    """CPU model, cores, RAM, Python, redis-server, Celery and kombu versions."""
    import celery
    import kombu

    from relier.localredis import find_redis_server

    cpu = "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    ram = "unknown"
    with contextlib.suppress(OSError), open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                ram = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    out = subprocess.run(
        [find_redis_server(), "--version"], capture_output=True, text=True, check=False
    ).stdout
    match = re.search(r"v=(\S+)", out)
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "ram": ram,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "redis-server": match.group(1) if match else "unknown",
        "celery": celery.__version__,
        "kombu": kombu.__version__,
    }

"""What the benchmarks share: a private Redis, worker subprocesses, timing, statistics, tables.

:class:`Stack` owns every process a benchmark starts (one ``redis-server`` via
:class:`relier.localredis.LocalRedis` in a temporary directory, and each worker in its
own process group) and stops them all on exit, whatever happened. :func:`time_calls`
and :func:`time_blocks` time calls made one at a time, for the latency benchmarks that
need no worker; :class:`CommandCounter` counts the commands Redis runs meanwhile; the
``/proc`` readers find a worker's pool processes and their memory.
"""

from __future__ import annotations

import asyncio
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
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
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
UNACKED = "unacked"  # kombu's hash of delivered, unacknowledged messages (no key prefix set)


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
        self._relier: set[str] = set()  # names of the Relier workers
        self._client: Any = None
        # Added to every worker's environment (e.g. ``BENCH_QUIET_TASKS=1``).
        self.extra_env: dict[str, str] = {}

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
        env.update(self.extra_env)
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

    def wait_ready(self, worker: Worker) -> None:
        """Wait for a worker started with ``wait=False`` to be ready (BenchError if not)."""
        self._wait_ready(worker, RELIER_READY if worker.name in self._relier else CELERY_READY)

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
        self,
        name: str,
        concurrency: int = 2,
        pool: str = "prefork",
        *extra: str,
        wait: bool = True,
    ) -> Worker:
        """Start ``python -m relier worker`` on the benchmark tasks; wait until it is ready
        (unless ``wait`` is false: then :meth:`wait_ready`)."""
        self._relier.add(name)
        worker = self._spawn(
            name,
            [
                sys.executable, "-m", "relier", "worker", "-A", RELIER_APP,
                "--concurrency", str(concurrency), "--pool", pool,
                "--loglevel", "INFO", "--hostname", f"{name}@%h",
                "--without-mingle", "--without-gossip", *extra,
            ],
        )  # fmt: skip
        if wait:
            self._wait_ready(worker, RELIER_READY)
        return worker

    def plain_worker(
        self, name: str, concurrency: int = 2, pool: str = "prefork", *, wait: bool = True
    ) -> Worker:
        """Start plain ``celery worker`` on :mod:`tests.bench.plain_app`; wait until ready
        (unless ``wait`` is false: then :meth:`wait_ready`)."""
        worker = self._spawn(
            name,
            [
                sys.executable, "-m", "celery", "-A", PLAIN_APP, "worker",
                "--concurrency", str(concurrency), "--pool", pool,
                "--loglevel", "INFO", "--hostname", f"{name}@%h",
                "--without-mingle", "--without-gossip",
            ],
        )  # fmt: skip
        if wait:
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


# --- queues, processes and memory -----------------------------------------------------


def unfinished(client: Any, queue: str) -> int:
    """Messages still in ``queue`` plus those delivered but not yet acknowledged.

    Both systems acknowledge late (after the task ran), so 0 means every message
    pushed to ``queue`` has been run and acknowledged: the end of a batch, seen
    from Redis without the tasks doing anything to say so.
    """
    with client.pipeline(transaction=False) as pipe:
        pipe.llen(queue)
        pipe.hlen(UNACKED)
        waiting, unacked = pipe.execute()
    return int(waiting) + int(unacked)


def wait_finished(client: Any, queue: str, timeout: float, interval: float = 0.01) -> float:
    """Wait until :func:`unfinished` is 0; the ``time.monotonic()`` it was first seen 0.

    Two readings ``interval`` apart must agree: kombu pops a message and records it
    in ``unacked`` in two steps, and a reading in between would see neither.
    """
    deadline = time.monotonic() + timeout
    while True:
        now = time.monotonic()
        if unfinished(client, queue) == 0:
            time.sleep(interval)
            if unfinished(client, queue) == 0:
                return now
        if now > deadline:
            raise BenchError(
                f"{unfinished(client, queue)} messages of {queue!r} not done after {timeout:.0f} s"
            )
        time.sleep(interval)


def child_pids(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (a worker's pool processes), from ``/proc``."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            out.append(int(entry))
    return sorted(out)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time ``pid`` has used so far, from ``/proc/<pid>/stat``."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # After "pid (comm)": state is field 0, utime and stime are fields 11 and 12.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory_kib(pid: int) -> dict[str, int]:
    """RSS, PSS and USS (private clean + dirty) of ``pid`` in KiB, from ``smaps_rollup``."""
    fields: dict[str, int] = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 2 and parts[0].endswith(":") and parts[1].isdigit():
                fields[parts[0][:-1]] = int(parts[1])
    return {
        "rss": fields["Rss"],
        "pss": fields["Pss"],
        "uss": fields["Private_Clean"] + fields["Private_Dirty"],
    }


# --- counting Redis commands -------------------------------------------------------------

# 1715712345.123456 [0 127.0.0.1:40000] "SET" "rl:worker:..."   (or [0 lua] inside a script)
MONITOR_LINE = re.compile(r'^(?P<t>\d+\.\d+) \[\d+ (?P<src>[^\]]+)\] "(?P<cmd>[^"]+)"')


def commandstats(client: Any) -> Counter[str]:
    """``INFO commandstats``: calls so far, by lower-case command name."""
    stats = client.info("commandstats")
    return Counter({k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()})


def client_names(client: Any) -> dict[str, str]:
    """Connection address -> ``CLIENT SETNAME`` name ('' when unnamed)."""
    return {c["addr"]: c.get("name", "") for c in client.client_list()}


@dataclass(frozen=True, slots=True)
class CommandCount:
    """What Redis ran between :meth:`CommandCounter.start` and :meth:`~CommandCounter.stop`.

    Attributes:
        elapsed_s: the window's length.
        commands: ``INFO commandstats`` calls by command, every client, commands run
            inside Lua scripts included, the benchmark's own connection left out.
        sent: MONITOR lines by client name (``relier``, ``''`` for kombu's unnamed
            connections...): the commands clients sent, one round trip each (or a
            pipeline's share of one), the benchmark's own left out.
        sent_commands: the same, by (client name, command).
        in_lua: MONITOR lines of commands run inside Lua scripts.
    """

    elapsed_s: float
    commands: Counter[str]
    sent: Counter[str]
    sent_commands: Counter[tuple[str, str]]
    in_lua: int


class CommandCounter:
    """Counts the commands Redis runs in a window, with ``INFO commandstats`` and MONITOR.

    The benchmark's own connection (``stack.client``, named ``bench``) is left out of
    both counts, so it may poll Redis inside the window.
    """

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self._log = stack.dir / f"monitor-{time.monotonic_ns()}.log"
        self._monitor: subprocess.Popen[bytes] | None = None
        self._names: dict[str, str] = {}
        self._before: Counter[str] = Counter()
        self._wall0 = self._t0 = 0.0

    def start(self) -> None:
        redis = self.stack.redis
        with self._log.open("wb") as out:
            self._monitor = subprocess.Popen(
                ["redis-cli", "-h", redis.host, "-p", str(redis.port), "monitor"],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        wait_for("MONITOR to start", lambda: self._log.read_bytes().startswith(b"OK"), 10, 0.01)
        client = self.stack.client
        self._names = client_names(client)
        self._before = commandstats(client)
        self._wall0, self._t0 = time.time(), time.monotonic()

    def stop(self) -> CommandCount:
        assert self._monitor is not None, "start() first"
        client = self.stack.client
        wall1, t1 = time.time(), time.monotonic()
        after = commandstats(client)
        try:
            self._names.update(client_names(client))
            time.sleep(0.3)  # let redis-cli write out the window's last lines
        finally:
            self._monitor.terminate()
            self._monitor.wait(5)
            self._monitor = None
        # Redis counts a command after running it: the delta holds the first INFO (not
        # the second), and the CLIENT LIST calls fall outside the window.
        commands = after - self._before
        commands["info"] -= 1
        sent: Counter[str] = Counter()
        sent_commands: Counter[tuple[str, str]] = Counter()
        in_lua = 0
        with self._log.open(errors="replace") as lines:
            for line in lines:
                match = MONITOR_LINE.match(line)
                if match is None or not self._wall0 <= float(match["t"]) <= wall1:
                    continue
                src, cmd = match["src"], match["cmd"].lower()
                if src == "lua":
                    in_lua += 1
                    continue
                name = self._names.get(src, "?")
                if name == "bench":
                    commands[cmd] -= 1
                    continue
                sent[name] += 1
                sent_commands[name, cmd] += 1
        self._log.unlink(missing_ok=True)
        return CommandCount(t1 - self._t0, +commands, sent, sent_commands, in_lua)


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


# Times the calls of ``indexes`` one at a time: each call's latency (µs), and the wall
# time (s) of the whole block.
BlockRunner = Callable[[range], tuple[list[float], float]]


def sync_block(fn: Callable[[int], object]) -> BlockRunner:
    """A :data:`BlockRunner` calling ``fn(i)`` for each index."""

    def run(indexes: range) -> tuple[list[float], float]:
        clock = time.perf_counter_ns
        out: list[float] = []
        began = clock()
        for i in indexes:
            t0 = clock()
            fn(i)
            out.append((clock() - t0) / 1000)
        return out, (clock() - began) / 1e9

    return run


def async_block(
    loop: asyncio.AbstractEventLoop, fn: Callable[[int], Awaitable[object]]
) -> BlockRunner:
    """A :data:`BlockRunner` awaiting ``fn(i)`` for each index, inside one coroutine on
    ``loop`` (so the loop's start and stop are not counted in any call)."""

    async def timed(indexes: range) -> tuple[list[float], float]:
        clock = time.perf_counter_ns
        out: list[float] = []
        began = clock()
        for i in indexes:
            t0 = clock()
            await fn(i)
            out.append((clock() - t0) / 1000)
        return out, (clock() - began) / 1e9

    def run(indexes: range) -> tuple[list[float], float]:
        return loop.run_until_complete(timed(indexes))

    return run


def time_blocks(
    cases: Mapping[str, BlockRunner], n: int, block: int = 500, warmup: int = 200
) -> dict[str, Timing]:
    """Run each case on the indexes ``range(n)``, one call at a time, and time each call.

    The cases take turns in blocks of ``block`` calls, in an order rotated every
    round, so a machine busy with something else slows every case alike instead of
    whichever ran at that moment. Each case first makes ``warmup`` unmeasured calls
    with the indexes ``-warmup`` to ``-1`` (connections open, scripts load).
    """
    for run in cases.values():
        run(range(-warmup, 0))
    names = list(cases)
    latencies: dict[str, list[float]] = {name: [] for name in names}
    wall = dict.fromkeys(names, 0.0)
    gc.collect()
    for turn, start in enumerate(range(0, n, block)):
        shift = turn % len(names)
        for name in names[shift:] + names[:shift]:
            out, seconds = cases[name](range(start, min(start + block, n)))
            latencies[name] += out
            wall[name] += seconds
    return {name: Timing(latencies[name], wall[name]) for name in names}


def time_calls(
    cases: Mapping[str, Callable[[int], object]], n: int, block: int = 500, warmup: int = 200
) -> dict[str, Timing]:
    """:func:`time_blocks` of sync calls: each case is ``fn(i)``."""
    return time_blocks({name: sync_block(fn) for name, fn in cases.items()}, n, block, warmup)


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

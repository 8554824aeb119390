"""Redis load of Relier's background machinery: it must not grow with tasks in flight.

One worker (``--pool threads --concurrency 50``) runs ``bench.sleep`` tasks, which
never touch Redis while they sleep. For 0 (idle), 1 and 50 tasks in flight, once
every task is RUNNING and has run for 20 s (``--settle``: long-running tasks, past
the 10 s age at which the resurrector's sweep of kombu's ``unacked`` looks at each
message once, so the window measures the steady state), the benchmark counts the
commands Redis executes over a 10 s window, two ways:

* ``INFO commandstats`` before and after: every command of every client
  (including those run inside Lua scripts), minus the sampler's own;
* ``MONITOR`` (``redis-cli monitor``) over the same window, each command
  attributed to its connection: connections named ``relier`` (Relier's lease,
  resurrector and journal client) versus the rest (Celery/kombu: broker polling,
  heartbeats). Commands run inside Lua scripts are counted apart.

PASS when Relier's rate with 50 in flight is at most 1.2x its rate with 1.

Run: ``python -m tests.bench.redis_load [--window 10]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from typing import Any

from relier import Relier, load_settings

from . import relier_app
from ._harness import BenchError, CommandCounter, Stack, exit_cleanly_on_sigterm, table, wait_for

IN_FLIGHT = (0, 1, 50)
CONCURRENCY = 50
MAX_RATIO = 1.2
# Sample long-running tasks in their steady state: past Relier's orphan age (10 s), after
# which the resurrector's sweep of kombu's ``unacked`` starts looking at their messages.
SETTLE_S = 20.0


def sample(stack: Stack, window: float) -> dict[str, Any]:
    """Commands executed during ``window`` seconds, by source and by command."""
    counter = CommandCounter(stack)
    counter.start()
    time.sleep(window)
    counted = counter.stop()
    elapsed = counted.elapsed_s
    relier = counted.sent["relier"]
    relier_cmds = Counter(
        {cmd.upper(): n for (name, cmd), n in counted.sent_commands.items() if name == "relier"}
    )
    return {
        "elapsed_s": elapsed,
        "relier_per_s": relier / elapsed,
        "celery_per_s": (sum(counted.sent.values()) - relier) / elapsed,
        "lua_per_s": counted.in_lua / elapsed,
        "all_per_s": sum(counted.commands.values()) / elapsed,
        "relier_commands_per_s": {k: v / elapsed for k, v in relier_cmds.most_common()},
    }


def _states(relier: Relier, ids: list[str]) -> list[bytes | None]:
    with relier.redis.pipeline(transaction=False) as pipe:
        for task_id in ids:
            pipe.hget(relier.keys.task(task_id).job, "state")
        return list(pipe.execute())


def phase(
    stack: Stack, relier: Relier, in_flight: int, window: float, settle: float
) -> dict[str, Any]:
    """Put ``in_flight`` tasks to sleep, sample once all run, wait for them to finish."""
    seconds = settle + window + 4.0
    handles = relier_app.sleep.push_many([(seconds,)] * in_flight) if in_flight else []
    ids = [h.id for h in handles]
    wait_for(
        f"{in_flight} tasks to be RUNNING",
        lambda: all(s == b"RUNNING" for s in _states(relier, ids)),
        30,
        0.05,
    )
    time.sleep(settle)
    measured = sample(stack, window)
    if any(s != b"RUNNING" for s in _states(relier, ids)):
        raise BenchError("a task finished during the sampling window; raise its sleep")
    measured["in_flight"] = in_flight
    wait_for(
        "the tasks to succeed",
        lambda: all(s == b"SUCCEEDED" for s in _states(relier, ids)),
        seconds + 30,
        0.1,
    )
    _progress(measured)
    return measured


def _progress(m: dict[str, Any]) -> None:
    print(
        f"  {m['in_flight']:2d} in flight: relier {m['relier_per_s']:.1f}/s, celery "
        f"{m['celery_per_s']:.1f}/s, all {m['all_per_s']:.1f}/s",
        file=sys.stderr,
    )


def run(window: float = 10.0, settle: float = SETTLE_S) -> dict[str, Any]:
    """Sample each in-flight level; returns rates (commands/s) and the verdict."""
    started = time.monotonic()
    with Stack("redis-load") as stack:
        relier = Relier(load_settings(redis_url=stack.url))
        relier_app.sleep.relier = relier
        try:
            stack.relier_worker("load", CONCURRENCY, "threads")
            phases = [phase(stack, relier, n, window, settle) for n in IN_FLIGHT]
        finally:
            relier_app.sleep.relier = None
            relier.close()
    by_n = {p["in_flight"]: p for p in phases}
    ratio = by_n[50]["relier_per_s"] / by_n[1]["relier_per_s"]
    all_ratio = by_n[50]["all_per_s"] / by_n[1]["all_per_s"]
    return {
        "benchmark": "redis_load",
        "window_s": window,
        "phases": phases,
        "ratio": ratio,
        "all_ratio": all_ratio,
        "verdict": "PASS" if ratio <= MAX_RATIO else "FAIL",
        "elapsed_s": time.monotonic() - started,
    }


def rows(result: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """The detail table: one row per in-flight level."""
    headers = [
        "tasks in flight",
        "Relier cmds/s",
        "Celery/kombu cmds/s",
        "inside Lua /s",
        "all clients cmds/s (INFO)",
    ]
    out = [
        [
            str(p["in_flight"]),
            f"{p['relier_per_s']:.1f}",
            f"{p['celery_per_s']:.1f}",
            f"{p['lua_per_s']:.1f}",
            f"{p['all_per_s']:.1f}",
        ]
        for p in result["phases"]
    ]
    return headers, out


def checks(result: dict[str, Any]) -> list[list[str]]:
    """Summary rows: benchmark, check, measured, target, result."""
    by_n = {p["in_flight"]: p for p in result["phases"]}
    measured = (
        f"{by_n[50]['relier_per_s']:.1f} vs {by_n[1]['relier_per_s']:.1f} cmds/s "
        f"(ratio {result['ratio']:.2f}; all clients {result['all_ratio']:.2f})"
    )
    check = "Relier Redis commands/s, 50 vs 1 in flight"
    return [["redis_load", check, measured, f"<= {MAX_RATIO}x", result["verdict"]]]


def report(result: dict[str, Any], markdown: bool = False) -> str:
    headers, body = rows(result)
    by_n = {p["in_flight"]: p for p in result["phases"]}
    mix = ", ".join(f"{k} {v:.1f}" for k, v in by_n[50]["relier_commands_per_s"].items())
    return (
        f"{table(headers, body, markdown)}\n\n"
        f"Relier's commands at 50 in flight, per second: {mix}.\n"
        f"Ratio 50/1 in flight: Relier {result['ratio']:.2f} (target <= {MAX_RATIO}), "
        f"all clients {result['all_ratio']:.2f}: {result['verdict']}."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.redis_load", description=__doc__)
    parser.add_argument("--window", type=float, default=10.0, help="sampling window, s")
    parser.add_argument(
        "--settle", type=float, default=SETTLE_S, help="wait after all tasks run, s"
    )
    parser.add_argument("--markdown", action="store_true", help="print the table in Markdown")
    args = parser.parse_args(argv)
    exit_cleanly_on_sigterm()
    result = run(args.window, args.settle)
    print(report(result, args.markdown))
    return 0 if result["verdict"] == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())

"""Telemetry overhead with no OpenTelemetry SDK configured: what the hooks cost a push.

Relier calls its telemetry hooks on every push (a PRODUCER span when an SDK is set, the
trace context for the envelope, the dispatch metrics). Without an SDK, the span is skipped
and every instrument is the API's no-op proxy. One process times calls made one at a time
on one Redis client, the cases interleaved (see :func:`._harness.time_calls`):

* **push, telemetry off**: ``bench.noop`` with the hooks switched off
  (:func:`relier.telemetry.set_enabled`), which is the push without telemetry;
* **push, telemetry on, no SDK**: the same push with the hooks on, as every program that
  has not configured OpenTelemetry runs it;
* **hooks alone**: what the hooks do around a push (the ``Dispatch`` span context, the
  trace context lookup, the metrics of one reply) without Redis, in µs per push.

Target: the push with telemetry on has a p50 at most 1.05x the push with it off. No worker
runs: the pushes fill the queue.

Run: ``python -m tests.bench.telemetry [--ops 10000] [--markdown]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from relier import Relier, load_settings, telemetry
from relier.journal.scripts import NewTask

from . import relier_app
from ._harness import (
    Stack,
    Timing,
    bound,
    exit_cleanly_on_sigterm,
    latency_table,
    print_timings,
    ratio,
    summary,
    table,
    time_calls,
)

MAX_RATIO = 1.05  # push p50 with telemetry on (no SDK) / push p50 with telemetry off
WARMUP = 200
NOTE = "bench-telemetry"

OFF = "push, telemetry off"
ON = "push, telemetry on, no SDK"
CHECK_HEADERS = ["check", "measured", "target", "result"]


def _push(on: bool) -> Any:
    def call(i: int) -> None:
        telemetry.set_enabled(on)
        relier_app.noop.push(i, NOTE)

    return call


def _hooks_alone(n: int) -> float:
    """µs per push of the hooks' own work, without Redis (the reply is made up)."""
    telemetry.set_enabled(True)
    item = NewTask("id", "bench.noop", "celery", b"{}", "", "tag", 0, 0)
    reply = [1, b"PENDING"]
    started = time.perf_counter()
    for _ in range(n):
        with telemetry.Dispatch("bench.noop", "push") as tel:
            telemetry.trace_context()
            tel.done([item], [reply])
    return (time.perf_counter() - started) / n * 1e6


def run(ops: int = 10_000) -> dict[str, Any]:
    """Time ``ops`` pushes of each case; returns the timings and verdicts."""
    if telemetry.tracing():
        raise RuntimeError("an OpenTelemetry SDK is configured in this process: nothing to compare")
    started = time.monotonic()
    with Stack("telemetry") as stack:
        relier = Relier(load_settings(redis_url=stack.url))
        try:
            with bound(relier, relier_app.noop):
                timings = time_calls({OFF: _push(False), ON: _push(True)}, ops, warmup=WARMUP)
        finally:
            telemetry.set_enabled(True)
            relier.close()
    hooks_us = _hooks_alone(ops)
    print_timings(timings)
    return {
        "benchmark": "telemetry",
        "ops": ops,
        "timings": timings,
        "hooks_us": hooks_us,
        "checks": _verdicts(timings),
        "elapsed_s": time.monotonic() - started,
    }


def _verdicts(timings: dict[str, Timing]) -> list[list[str]]:
    off, on = summary(timings[OFF].latencies_us), summary(timings[ON].latencies_us)
    measured = (
        f"p50 {on['p50']:.1f} / {off['p50']:.1f} µs = {ratio(on['p50'], off['p50'])} "
        f"(p99 {ratio(on['p99'], off['p99'])})"
    )
    verdict = "PASS" if on["p50"] <= MAX_RATIO * off["p50"] else "FAIL"
    return [[f"{ON} / {OFF}, p50", measured, f"<= {MAX_RATIO}x", verdict]]


def checks(result: dict[str, Any]) -> list[list[str]]:
    """Summary rows: benchmark, check, measured, target, result."""
    return [["telemetry", *row] for row in result["checks"]]


def report(result: dict[str, Any], markdown: bool = False) -> str:
    return (
        f"{latency_table(result['timings'], OFF, 'off', markdown)}\n\n"
        f"{result['ops']:,} calls per case, one at a time, on one client; ratios are to "
        f"the push with telemetry off. The hooks alone (no Redis) take "
        f"{result['hooks_us']:.1f} µs per push.\n\n"
        f"{table(CHECK_HEADERS, result['checks'], markdown)}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.telemetry", description=__doc__)
    parser.add_argument("--ops", type=int, default=10_000, help="timed calls per case")
    parser.add_argument("--markdown", action="store_true", help="print the table in Markdown")
    args = parser.parse_args(argv)
    exit_cleanly_on_sigterm()
    result = run(args.ops)
    print(report(result, args.markdown))
    return 1 if any(row[-1] == "FAIL" for row in result["checks"]) else 0


if __name__ == "__main__":
    sys.exit(main())

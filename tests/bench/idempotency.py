"""Idempotent vs plain push: what ``idempotent=True`` adds to ``task.push(...)``.

An idempotent call's task id derives from its key (by default the canonical JSON of
its arguments, hashed), and ``dispatch.lua``'s "id exists" check is the deduplication:
the same one ``EVALSHA`` as a plain push. One process times calls made one at a time
on one Redis client, the cases interleaved (see :func:`._harness.time_calls`):

* **plain push**: ``bench.noop``, distinct arguments each call;
* **idempotent push, new key**: ``bench.noop_idempotent``, distinct arguments each
  call, so each is a new key: journaled and published;
* **idempotent push, duplicate**: the same task with arguments pushed once before the
  timing starts: each call finds its key and enqueues nothing (``created=False``).

Targets: each idempotent case's p50 is at most 1.5x the plain push's. No worker runs:
the new pushes fill the queue.

Run: ``python -m tests.bench.idempotency [--ops 10000] [--markdown]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from relier import Relier, load_settings

from . import relier_app
from ._harness import (
    BenchError,
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

MAX_RATIO = 1.5  # idempotent push p50 / plain push p50
WARMUP = 200
# Notes of the same length: every case pushes an envelope of the same size.
NOTE = "bench-new"
DUP_NOTE = "bench-dup"

PLAIN = "plain push"
NEW = "idempotent push, new key"
DUPLICATE = "idempotent push, duplicate"
CHECK_HEADERS = ["check", "measured", "target", "result"]


def _push(task: Any, note: str, created: Counter[bool]) -> Callable[[int], object]:
    def call(i: int) -> None:
        created[task.push(i, note).created] += 1

    return call


def run(ops: int = 10_000) -> dict[str, Any]:
    """Time ``ops`` calls of each case; returns the timings and verdicts."""
    started = time.monotonic()
    created: dict[str, Counter[bool]] = {name: Counter() for name in (PLAIN, NEW, DUPLICATE)}
    with Stack("idempotency") as stack:
        relier = Relier(load_settings(redis_url=stack.url))
        try:
            with bound(relier, relier_app.noop, relier_app.noop_idempotent):
                # The keys the duplicate case pushes again, warm-up included.
                relier_app.noop_idempotent.push_many([(i, DUP_NOTE) for i in range(-WARMUP, ops)])
                cases = {
                    PLAIN: _push(relier_app.noop, NOTE, created[PLAIN]),
                    NEW: _push(relier_app.noop_idempotent, NOTE, created[NEW]),
                    DUPLICATE: _push(relier_app.noop_idempotent, DUP_NOTE, created[DUPLICATE]),
                }
                timings = time_calls(cases, ops, warmup=WARMUP)
        finally:
            relier.close()
    calls = ops + WARMUP
    for name, expected in ((PLAIN, True), (NEW, True), (DUPLICATE, False)):
        if created[name] != Counter({expected: calls}):
            raise BenchError(
                f"{name}: expected created={expected} {calls} times, got {created[name]}"
            )
    print_timings(timings)
    return {
        "benchmark": "idempotency",
        "ops": ops,
        "timings": timings,
        "checks": _verdicts(timings),
        "elapsed_s": time.monotonic() - started,
    }


def _verdicts(timings: dict[str, Timing]) -> list[list[str]]:
    stats = {name: summary(t.latencies_us) for name, t in timings.items()}
    plain = stats[PLAIN]
    out = []
    for name in (NEW, DUPLICATE):
        p50 = stats[name]["p50"]
        measured = (
            f"p50 {p50:.1f} / {plain['p50']:.1f} µs = {ratio(p50, plain['p50'])} "
            f"(p99 {ratio(stats[name]['p99'], plain['p99'])})"
        )
        verdict = "PASS" if p50 <= MAX_RATIO * plain["p50"] else "FAIL"
        out.append([f"{name} / plain push, p50", measured, f"<= {MAX_RATIO}x", verdict])
    return out


def checks(result: dict[str, Any]) -> list[list[str]]:
    """Summary rows: benchmark, check, measured, target, result."""
    return [["idempotency", *row] for row in result["checks"]]


def report(result: dict[str, Any], markdown: bool = False) -> str:
    return (
        f"{latency_table(result['timings'], PLAIN, 'plain', markdown)}\n\n"
        f"{result['ops']:,} calls per case, one at a time, on one client; ratios are to "
        f"the plain push.\n\n"
        f"{table(CHECK_HEADERS, result['checks'], markdown)}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.idempotency", description=__doc__)
    parser.add_argument("--ops", type=int, default=10_000, help="timed calls per case")
    parser.add_argument("--markdown", action="store_true", help="print the table in Markdown")
    args = parser.parse_args(argv)
    exit_cleanly_on_sigterm()
    result = run(args.ops)
    print(report(result, args.markdown))
    return 1 if any(row[-1] == "FAIL" for row in result["checks"]) else 0


if __name__ == "__main__":
    sys.exit(main())

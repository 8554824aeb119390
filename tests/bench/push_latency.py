"""Push latency: ``push`` and ``apush`` against plain Celery's ``delay``, and ``push_many``.

One process, one Redis, no worker (the queues fill). Calls are made one at a time
(each waits for its reply), the cases interleaved in blocks of 500 (see
:func:`._harness.time_blocks`):

* **delay (plain Celery)**: ``bench_plain.noop.delay(i, note)`` on
  :mod:`tests.bench.plain_app` (JSON, no result backend): Celery builds its message
  and kombu ``LPUSH``-es it;
* **push (Relier)**: ``bench.noop.push(i, note)``: validation, the envelope, the
  message, then ``dispatch.lua`` (journal + publish in one ``EVALSHA``);
* **apush (Relier)**: ``await bench.noop.apush(i, note)`` on one event loop
  (redis.asyncio), timed inside the loop;
* **delay (Relier)** and **apply_async (Relier)**: Celery's calling API on the same
  ``@rl_task`` (``bench.noop.delay(i, note)``, ``.apply_async((i, note))``), which
  goes journal-first as ``push`` does and returns a Celery ``AsyncResult``.

The overhead of a Relier push is its p50 minus ``delay``'s p50. Before those, on a
Redis that holds nothing yet, ``push_many``: ``--batch`` calls in one ``push_many``
(one pipelined round trip per 1,000), timed whole, ``--batches`` times; tasks/s =
calls / seconds, the median batch reported.

Targets: ``push`` and ``apush`` each add < 0.3 ms at p50 over ``delay``;
Relier's ``delay`` and ``apply_async`` each within 10 % of ``push``'s p50;
``push_many`` >= 10,000 tasks/s from one process.

Run: ``python -m tests.bench.push_latency [--ops 10000] [--batch 10000] [--markdown]``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from typing import Any

from relier import Relier, load_settings

from . import plain_app, relier_app
from ._harness import (
    Stack,
    async_block,
    bound,
    exit_cleanly_on_sigterm,
    latency_table,
    print_timings,
    summary,
    sync_block,
    table,
    time_blocks,
)

MAX_OVERHEAD_US = 300.0  # push / apush p50 minus delay p50
MIN_MANY_PER_S = 10_000.0  # push_many tasks/s
MAX_CELERY_API_RATIO = 1.10  # Relier's delay / apply_async p50 over push p50
WARMUP = 200
NOTE = "bench-push"

DELAY = "delay (plain Celery)"
PUSH = "push (Relier)"
APUSH = "apush (Relier)"
DELAY_RL = "delay (Relier)"
APPLY_RL = "apply_async (Relier)"
CHECK_HEADERS = ["check", "measured", "target", "result"]


def _push_many(relier: Relier, batch: int, batches: int) -> list[float]:
    """Seconds per ``push_many`` of ``batch`` calls, ``batches`` times (after one warm-up)."""
    relier_app.noop.push_many([(i, NOTE) for i in range(100)])
    out = []
    for b in range(batches):
        calls = [(b * batch + i, NOTE) for i in range(batch)]
        t0 = time.perf_counter()
        handles = relier_app.noop.push_many(calls)
        out.append(time.perf_counter() - t0)
        assert len(handles) == batch
        # Keep the queue short, so every batch pushes onto the same Redis state.
        relier.redis.delete(relier.keys.queue(relier.settings.default_queue))
    return out


def run(ops: int = 10_000, batch: int = 10_000, batches: int = 5) -> dict[str, Any]:
    """Time every case; returns the timings, push_many rates and verdicts."""
    started = time.monotonic()
    loop = asyncio.new_event_loop()
    with Stack("push-latency") as stack:
        relier = Relier(load_settings(redis_url=stack.url))
        sender, plain_noop = plain_app.producer(stack.url)
        try:
            with bound(relier, relier_app.noop):
                # push_many first, on an empty Redis: after the 30,000 single pushes below,
                # Redis's AOF has grown (and may be rewriting) and the batches vary more.
                many = _push_many(relier, batch, batches)
                cases = {
                    DELAY: sync_block(lambda i: plain_noop.delay(i, NOTE)),
                    PUSH: sync_block(lambda i: relier_app.noop.push(i, NOTE)),
                    APUSH: async_block(loop, lambda i: relier_app.noop.apush(i, NOTE)),
                    DELAY_RL: sync_block(lambda i: relier_app.noop.delay(i, NOTE)),
                    APPLY_RL: sync_block(lambda i: relier_app.noop.apply_async((i, NOTE))),
                }
                timings = time_blocks(cases, ops, warmup=WARMUP)
                loop.run_until_complete(relier.aclose())
        finally:
            loop.close()
            sender.close()
            relier.close()
    print_timings(timings)
    rates = [batch / s for s in many]
    print(f"  push_many of {batch}: median {statistics.median(rates):,.0f}/s", file=sys.stderr)
    result = {
        "benchmark": "push_latency",
        "ops": ops,
        "timings": timings,
        "batch": batch,
        "many_rates": rates,
        "elapsed_s": time.monotonic() - started,
    }
    result["checks"] = _verdicts(result)
    return result


def _verdicts(result: dict[str, Any]) -> list[list[str]]:
    stats = {name: summary(t.latencies_us) for name, t in result["timings"].items()}
    base = stats[DELAY]["p50"]
    out = []
    for name in (PUSH, APUSH):
        added = stats[name]["p50"] - base
        measured = f"p50 {stats[name]['p50']:.1f} - {base:.1f} µs = {added:+.1f} µs"
        verdict = "PASS" if added < MAX_OVERHEAD_US else "FAIL"
        check = f"{name.split()[0]} p50 - delay p50"
        out.append([check, measured, f"< {MAX_OVERHEAD_US:.0f} µs", verdict])
    push = stats[PUSH]["p50"]
    for name in (DELAY_RL, APPLY_RL):
        ratio = stats[name]["p50"] / push
        measured = f"p50 {stats[name]['p50']:.1f} / {push:.1f} µs = {ratio:.2f}x"
        verdict = "PASS" if ratio <= MAX_CELERY_API_RATIO else "FAIL"
        check = f"Relier's {name.split()[0]} p50 / push p50"
        out.append([check, measured, f"<= {MAX_CELERY_API_RATIO:.2f}x", verdict])
    rate = statistics.median(result["many_rates"])
    verdict = "PASS" if rate >= MIN_MANY_PER_S else "FAIL"
    measured = f"{rate:,.0f} tasks/s (median of {len(result['many_rates'])} batches)"
    out.append([f"push_many of {result['batch']:,}", measured, ">= 10,000/s", verdict])
    return out


def checks(result: dict[str, Any]) -> list[list[str]]:
    """Summary rows: benchmark, check, measured, target, result."""
    return [["push_latency", *row] for row in result["checks"]]


def report(result: dict[str, Any], markdown: bool = False) -> str:
    rates = result["many_rates"]
    many = [
        [
            f"push_many of {result['batch']:,} calls",
            str(len(rates)),
            f"{min(rates):,.0f}",
            f"{statistics.median(rates):,.0f}",
            f"{max(rates):,.0f}",
        ]
    ]
    delay = result["timings"][DELAY]
    many.append(
        [
            "delay, one at a time (plain Celery)",
            "-",
            "-",
            f"{delay.per_s:,.0f}",
            "-",
        ]
    )
    many_headers = ["case", "batches", "min tasks/s", "median tasks/s", "max tasks/s"]
    return (
        f"{latency_table(result['timings'], DELAY, 'delay', markdown)}\n\n"
        f"{result['ops']:,} calls per case, one at a time; ratios are to plain Celery's "
        f"delay.\n\n"
        f"{table(many_headers, many, markdown)}\n\n"
        f"{table(CHECK_HEADERS, result['checks'], markdown)}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.push_latency", description=__doc__)
    parser.add_argument("--ops", type=int, default=10_000, help="timed calls per case")
    parser.add_argument("--batch", type=int, default=10_000, help="calls per push_many")
    parser.add_argument("--batches", type=int, default=5, help="push_many batches timed")
    parser.add_argument("--markdown", action="store_true", help="print the table in Markdown")
    args = parser.parse_args(argv)
    exit_cleanly_on_sigterm()
    result = run(args.ops, args.batch, args.batches)
    print(report(result, args.markdown))
    return 1 if any(row[-1] == "FAIL" for row in result["checks"]) else 0


if __name__ == "__main__":
    sys.exit(main())

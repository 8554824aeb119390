"""Worker memory per process: Relier against plain Celery.

For each system in turn, on one Redis: one worker (prefork, concurrency 2) runs
``--warmup`` no-op tasks (so each pool process has imported, connected and run
tasks), then the benchmark waits a second and reads ``/proc/<pid>/smaps_rollup`` of
the main process and of each pool process:

* **RSS**: resident memory, shared pages counted in full in every process;
* **PSS**: each shared page divided among the processes sharing it (what the
  processes add up to);
* **USS**: private pages only (``Private_Clean + Private_Dirty``): what killing
  the process would free.

The main process holds Celery's consumer plus, under Relier, its lease, resurrector
and pool-watcher thread; a pool process holds the task code plus, under Relier, the
journal client and the scripts. No target: the difference is reported.

Run: ``python -m tests.bench.memory [--warmup 200] [--markdown]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from relier import Relier, load_settings

from . import plain_app, relier_app
from ._harness import (
    BenchError,
    Stack,
    Worker,
    bound,
    child_pids,
    exit_cleanly_on_sigterm,
    memory_kib,
    table,
    wait_finished,
)

CONCURRENCY = 2
RELIER_QUEUE = "celery"
NOTE = "bench-memory"
KINDS = ("rss", "pss", "uss")


def _read(worker: Worker) -> dict[str, dict[str, int]]:
    pool = child_pids(worker.pid)
    if len(pool) != CONCURRENCY:
        raise BenchError(f"{worker.name}: {len(pool)} pool processes, expected {CONCURRENCY}")
    out = {"main": memory_kib(worker.pid)}
    for n, pid in enumerate(pool, 1):
        out[f"pool {n}"] = memory_kib(pid)
    return out


def _measure(stack: Stack, worker: Worker, queue: str) -> dict[str, dict[str, int]]:
    wait_finished(stack.client, queue, 120, 0.05)
    time.sleep(1.0)
    measured = _read(worker)
    stack.stop_workers()
    stack.workers.clear()
    return measured


def run(warmup: int = 200) -> dict[str, Any]:
    """Warm each system's worker up and read its memory; returns KiB per process."""
    started = time.monotonic()
    with Stack("memory") as stack:
        stack.extra_env["BENCH_QUIET_TASKS"] = "1"
        relier = Relier(load_settings(redis_url=stack.url))
        sender, plain_noop = plain_app.producer(stack.url)
        try:
            worker = stack.relier_worker("mem", CONCURRENCY)
            with bound(relier, relier_app.noop):
                relier_app.noop.push_many([(i, NOTE) for i in range(warmup)])
            r = _measure(stack, worker, RELIER_QUEUE)
            worker = stack.plain_worker("memp", CONCURRENCY)
            for i in range(warmup):
                plain_noop.delay(i, NOTE)
            p = _measure(stack, worker, plain_app.QUEUE)
        finally:
            sender.close()
            relier.close()
    for system, m in (("Relier", r), ("plain Celery", p)):
        parts = ", ".join(f"{name} {v['rss'] / 1024:.1f}" for name, v in m.items())
        print(f"  {system:12s} RSS MiB: {parts}", file=sys.stderr)
    return {
        "benchmark": "memory",
        "warmup": warmup,
        "relier": r,
        "plain": p,
        "elapsed_s": time.monotonic() - started,
    }


def _mib(kib: float) -> str:
    return f"{kib / 1024:.1f}"


def _total(m: dict[str, dict[str, int]], kind: str) -> int:
    return sum(v[kind] for v in m.values())


def checks(result: dict[str, Any]) -> list[list[str]]:
    """Summary rows: benchmark, check, measured, target, result."""
    r, p = result["relier"], result["plain"]

    def pool(m: dict[str, dict[str, int]], kind: str) -> float:
        values = [v[kind] for name, v in m.items() if name != "main"]
        return sum(values) / len(values)

    rows = [
        ("main process", r["main"]["uss"], p["main"]["uss"], r["main"]["rss"], p["main"]["rss"]),
        ("pool process (mean)", pool(r, "uss"), pool(p, "uss"), pool(r, "rss"), pool(p, "rss")),
    ]
    out = []
    for name, ru, pu, rr, pr in rows:
        measured = (
            f"USS {_mib(ru)} vs {_mib(pu)} MiB ({(ru - pu) / 1024:+.1f}); "
            f"RSS {_mib(rr)} vs {_mib(pr)} MiB ({(rr - pr) / 1024:+.1f})"
        )
        out.append(["memory", f"{name}, Relier vs plain Celery", measured, "-", "info"])
    measured = (
        f"PSS {_mib(_total(r, 'pss'))} vs {_mib(_total(p, 'pss'))} MiB "
        f"({(_total(r, 'pss') - _total(p, 'pss')) / 1024:+.1f})"
    )
    out.append(["memory", "whole worker, Relier vs plain Celery", measured, "-", "info"])
    return out


def report(result: dict[str, Any], markdown: bool = False) -> str:
    r, p = result["relier"], result["plain"]
    headers = ["process", "Relier RSS", "plain RSS", "Relier PSS", "plain PSS"]
    headers += ["Relier USS", "plain USS", "USS Relier - plain"]
    body = []
    rows = [(name, r[name], p[name]) for name in r]
    rows.append(("all (sum)", {k: _total(r, k) for k in KINDS}, {k: _total(p, k) for k in KINDS}))
    for name, rv, pv in rows:
        body.append([
            name, _mib(rv["rss"]), _mib(pv["rss"]), _mib(rv["pss"]), _mib(pv["pss"]),
            _mib(rv["uss"]), _mib(pv["uss"]), f"{(rv['uss'] - pv['uss']) / 1024:+.1f}",
        ])  # fmt: skip
    return (
        f"{table(headers, body, markdown)}\n\n"
        f"MiB, after {result['warmup']} no-op tasks on one worker per system (prefork, "
        f"concurrency {CONCURRENCY}). The sum's RSS counts shared pages again in every "
        f"process; its PSS and USS do not."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.memory", description=__doc__)
    parser.add_argument("--warmup", type=int, default=200, help="no-op tasks before reading")
    parser.add_argument("--markdown", action="store_true", help="print the table in Markdown")
    args = parser.parse_args(argv)
    exit_cleanly_on_sigterm()
    result = run(args.warmup)
    print(report(result, args.markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Run every benchmark and print a summary: ``python -m tests.bench [--markdown]``.

Progress goes to stderr; the tables go to stdout. ``--markdown`` prints the
machine description and all tables in Markdown, as pasted into docs/benchmarks.md.
Exit code 1 when a benchmark misses its target.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from . import recovery, redis_load
from ._harness import exit_cleanly_on_sigterm, machine, table

SUMMARY_HEADERS = ["benchmark", "check", "measured", "target", "result"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__)
    parser.add_argument("--runs", type=int, default=30, help="pool-child kills (Relier)")
    parser.add_argument("--worker-runs", type=int, default=15, help="whole-worker kills (Relier)")
    parser.add_argument("--plain-runs", type=int, default=15, help="pool-child kills (Celery)")
    parser.add_argument(
        "--plain-worker-runs", type=int, default=2, help="whole-worker kills (plain Celery)"
    )
    parser.add_argument(
        "--plain-wait", type=float, default=20.0, help="how long to wait for plain Celery, s"
    )
    parser.add_argument("--window", type=float, default=10.0, help="redis_load sampling window")
    parser.add_argument("--markdown", action="store_true", help="print Markdown tables")
    args = parser.parse_args(argv)
    exit_cleanly_on_sigterm()

    started = time.monotonic()
    print("recovery: kill -> restart latency ...", file=sys.stderr)
    rec = recovery.run(
        args.runs, args.worker_runs, args.plain_runs, args.plain_worker_runs, args.plain_wait
    )
    print("redis_load: Redis commands/s vs tasks in flight ...", file=sys.stderr)
    load = redis_load.run(args.window)
    elapsed = time.monotonic() - started

    md = args.markdown
    sections: list[tuple[str, str]] = []
    info = machine()
    if md:
        sections.append(("Machine", table(["", "machine"], list(info.items()), md)))
    else:
        sections.append(("Machine", "\n".join(f"  {k:13s} {v}" for k, v in info.items())))
    sections.append(("recovery: kill -> restart", recovery.report(rec, md)))
    sections.append(("redis_load: Redis commands/s", redis_load.report(load, md)))
    summary: list[list[str]] = recovery.checks(rec) + redis_load.checks(load)
    sections.append(("Summary", table(SUMMARY_HEADERS, summary, md)))
    for title, body in sections:
        print(f"\n### {title}\n" if md else f"\n== {title} ==")
        print(body)
    print(f"\n(total time {elapsed:.0f} s)")
    results: list[Any] = [row[-1] for row in summary]
    return 1 if "FAIL" in results else 0


if __name__ == "__main__":
    sys.exit(main())

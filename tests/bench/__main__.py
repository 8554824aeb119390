"""Run the benchmarks and print a summary: ``python -m tests.bench [--markdown]``.

All of them by default; ``--only admission,idempotency`` picks some (in their usual
order). Progress goes to stderr; the tables go to stdout. ``--markdown`` prints the
machine description and all tables in Markdown, as pasted into docs/benchmarks.md.
Exit code 1 when a benchmark misses its target.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import admission, idempotency, recovery, redis_load, telemetry
from ._harness import exit_cleanly_on_sigterm, machine, table

SUMMARY_HEADERS = ["benchmark", "check", "measured", "target", "result"]


@dataclass(frozen=True, slots=True)
class Benchmark:
    """One benchmark module's entry points, with the heading of its section."""

    title: str
    progress: str
    run: Callable[[argparse.Namespace], dict[str, Any]]
    report: Callable[[dict[str, Any], bool], str]
    checks: Callable[[dict[str, Any]], list[list[str]]]


BENCHMARKS = {
    "recovery": Benchmark(
        "recovery: kill -> restart",
        "kill -> restart latency",
        lambda a: recovery.run(
            a.runs, a.worker_runs, a.plain_runs, a.plain_worker_runs, a.plain_wait
        ),
        recovery.report,
        recovery.checks,
    ),
    "redis_load": Benchmark(
        "redis_load: Redis commands/s",
        "Redis commands/s vs tasks in flight",
        lambda a: redis_load.run(a.window),
        redis_load.report,
        redis_load.checks,
    ),
    "admission": Benchmark(
        "admission: decision latency vs raw EVALSHA",
        "rate-limited push latency vs raw EVALSHA",
        lambda a: admission.run(a.ops),
        admission.report,
        admission.checks,
    ),
    "idempotency": Benchmark(
        "idempotency: idempotent vs plain push",
        "idempotent vs plain push latency",
        lambda a: idempotency.run(a.ops),
        idempotency.report,
        idempotency.checks,
    ),
    "telemetry": Benchmark(
        "telemetry: push with telemetry hooks, no SDK, vs hooks off",
        "telemetry overhead on push (no SDK)",
        lambda a: telemetry.run(a.ops),
        telemetry.report,
        telemetry.checks,
    ),
}


def _names(value: str) -> list[str]:
    names = {name.strip() for name in value.split(",") if name.strip()}
    unknown = sorted(names - set(BENCHMARKS))
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown benchmark {', '.join(unknown) or repr(value)}; "
            f"choose from {','.join(BENCHMARKS)}"
        )
    return [name for name in BENCHMARKS if name in names]


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
    parser.add_argument(
        "--ops",
        type=int,
        default=10_000,
        help="timed calls per case (admission, idempotency, telemetry)",
    )
    parser.add_argument(
        "--only",
        type=_names,
        default=list(BENCHMARKS),
        metavar="NAME[,NAME...]",
        help=f"run only these benchmarks (default: all of {','.join(BENCHMARKS)})",
    )
    parser.add_argument("--markdown", action="store_true", help="print Markdown tables")
    args = parser.parse_args(argv)
    exit_cleanly_on_sigterm()

    started = time.monotonic()
    results: dict[str, dict[str, Any]] = {}
    for name in args.only:
        print(f"{name}: {BENCHMARKS[name].progress} ...", file=sys.stderr)
        results[name] = BENCHMARKS[name].run(args)
    elapsed = time.monotonic() - started

    md = args.markdown
    sections: list[tuple[str, str]] = []
    info = machine()
    if md:
        sections.append(("Machine", table(["", "machine"], list(info.items()), md)))
    else:
        sections.append(("Machine", "\n".join(f"  {k:13s} {v}" for k, v in info.items())))
    summary: list[list[str]] = []
    for name, result in results.items():
        bench = BENCHMARKS[name]
        sections.append((bench.title, bench.report(result, md)))
        summary += bench.checks(result)
    sections.append(("Summary", table(SUMMARY_HEADERS, summary, md)))
    for title, body in sections:
        print(f"\n### {title}\n" if md else f"\n== {title} ==")
        print(body)
    print(f"\n(total time {elapsed:.0f} s)")
    return 1 if any(row[-1] == "FAIL" for row in summary) else 0


if __name__ == "__main__":
    sys.exit(main())

"""Run the benchmarks and print a summary: ``python -m tests.bench [--markdown]``.

All of them by default; ``--only throughput,push_latency`` picks some (in their usual
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

from . import (
    admission,
    async_concurrency,
    idempotency,
    kill_storm,
    lifecycle_commands,
    memory,
    push_latency,
    recovery,
    redis_load,
    telemetry,
    throughput,
)
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
    "throughput": Benchmark(
        "throughput: no-op tasks/s, Relier vs plain Celery",
        "end-to-end no-op tasks/s",
        lambda a: throughput.run(a.tasks, a.rounds),
        throughput.report,
        throughput.checks,
    ),
    "push_latency": Benchmark(
        "push_latency: push and apush vs Celery's delay, push_many",
        "push/apush/delay latency, push_many tasks/s",
        lambda a: push_latency.run(a.ops, a.batch, a.batches),
        push_latency.report,
        push_latency.checks,
    ),
    "lifecycle_commands": Benchmark(
        "lifecycle_commands: Redis commands per task, Relier vs plain Celery",
        "Redis commands per task lifecycle",
        lambda a: lifecycle_commands.run(a.lifecycle_tasks, a.idle),
        lifecycle_commands.report,
        lifecycle_commands.checks,
    ),
    "async_concurrency": Benchmark(
        "async_concurrency: 1,000 x await asyncio.sleep(1) on one worker process",
        "async tasks on one worker process",
        lambda a: async_concurrency.run(a.async_tasks, a.async_concurrency),
        async_concurrency.report,
        async_concurrency.checks,
    ),
    "kill_storm": Benchmark(
        "kill_storm: delivery under SIGKILLs, Relier vs plain Celery",
        "delivery under a kill storm",
        lambda a: kill_storm.run(kill_storm.settings(a)),
        kill_storm.report,
        kill_storm.checks,
    ),
    "memory": Benchmark(
        "memory: worker memory per process, Relier vs plain Celery",
        "worker memory per process",
        lambda a: memory.run(a.warmup),
        memory.report,
        memory.checks,
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
        help="timed calls per case (admission, idempotency, telemetry, push_latency)",
    )
    parser.add_argument("--tasks", type=int, default=2000, help="throughput: tasks per round")
    parser.add_argument("--rounds", type=int, default=5, help="throughput: rounds per system")
    parser.add_argument("--batch", type=int, default=10_000, help="push_latency: push_many size")
    parser.add_argument("--batches", type=int, default=5, help="push_latency: push_many batches")
    parser.add_argument(
        "--lifecycle-tasks", type=int, default=500, help="lifecycle_commands: tasks per system"
    )
    parser.add_argument(
        "--idle", type=float, default=5.0, help="lifecycle_commands: idle background window, s"
    )
    parser.add_argument(
        "--async-tasks", type=int, default=1000, help="async_concurrency: tasks per system"
    )
    parser.add_argument(
        "--async-concurrency", type=int, default=1000, help="async_concurrency: pool threads"
    )
    kill_storm.add_arguments(parser)
    parser.add_argument("--warmup", type=int, default=200, help="memory: tasks before reading")
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

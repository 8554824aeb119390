"""``rl``: Relier's command line (also ``python -m relier``).

A thin shell: each command parses its options, calls one library function
and prints a table or ``--json``. The operator commands live in
:mod:`relier.cli.inspect` (status, inflight, task, workers) and
:mod:`relier.cli.dlq` (dlq). Exit codes, the same for every command: 0
success; 1 a check failed, an id was not found or an action was refused; 2
bad usage, bad settings or another Relier error; 3 Redis unreachable.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence

from relier.chaos.runner import SCENARIOS, run_chaos
from relier.cli import dlq as _cli_dlq
from relier.cli import inspect as _cli_inspect
from relier.cli.apps import load_app_module
from relier.cli.format import EXIT_ERROR, EXIT_FAILED, EXIT_OK, EXIT_UNAVAILABLE
from relier.errors import RedisUnavailableError, RelierError, TaskNotFoundError
from relier.hub import current
from relier.journal.preflight import check, require

__all__ = ["EXIT_ERROR", "EXIT_FAILED", "EXIT_OK", "EXIT_UNAVAILABLE", "build_parser", "main"]


def _err(message: str) -> None:
    print(f"rl: {message}", file=sys.stderr)


def cmd_worker(args: argparse.Namespace, rest: list[str]) -> int:
    app = load_app_module(args.app)
    relier = current()
    if relier.settings.chaos:
        # RELIER_CHAOS=1: this worker opts in to the probes of `rl chaos`.
        importlib.import_module("relier.chaos.probes")
    if relier.settings.preflight:
        require(relier.redis, relier.settings.redis_url)
    app.worker_main(["worker", *rest])
    return EXIT_OK


def cmd_preflight(args: argparse.Namespace, rest: list[str]) -> int:
    relier = current()
    report = check(relier.redis, relier.settings.redis_url)
    if args.json:
        print(
            json.dumps(
                {
                    "url": report.url,
                    "ok": report.ok,
                    "version": report.version,
                    "appendonly": report.appendonly,
                    "maxmemory_policy": report.maxmemory_policy,
                    "source": report.source,
                    "problems": report.problems,
                }
            )
        )
    else:
        print(f"Redis {report.url} (read with {report.source})")
        print(f"  version           {report.version}")
        print(f"  appendonly        {'yes' if report.appendonly else 'no'}")
        print(f"  maxmemory-policy  {report.maxmemory_policy}")
        for problem in report.problems:
            print(f"FAIL {problem}")
        if report.ok:
            print("OK: Redis is safe for Relier")
    return EXIT_OK if report.ok else EXIT_FAILED


def cmd_resurrector(args: argparse.Namespace, rest: list[str]) -> int:
    # Imported here, by the one command that runs it: the other commands load
    # no worker module.
    from relier.worker.resurrector import run_standalone

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if args.app:
        load_app_module(args.app)  # its Celery app's key prefixes apply
    relier = current()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    run_standalone(relier, stop)
    return EXIT_OK


def cmd_demo(args: argparse.Namespace, rest: list[str]) -> int:
    # Imported here: only `rl demo` loads the demo's tasks.
    from relier.demo import run_demo

    return run_demo(workdir=args.dir, tasks=args.tasks)


def cmd_chaos(args: argparse.Namespace, rest: list[str]) -> int:
    if args.app:
        load_app_module(args.app)  # its Celery app's key prefixes apply
    return run_chaos(current(), args.scenario, args.tasks, args.timeout, args.app, args.json)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rl", description="Relier: a reliability layer for Celery."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "worker",
        help="run a Celery worker with Relier (other options go to `celery worker`)",
        description="Start a Celery worker for the tasks in MODULE. Options other than -A are "
        "passed to `celery worker` (e.g. --concurrency 4 --pool prefork -Q default).",
    )
    p.add_argument(
        "-A",
        "--app",
        required=True,
        metavar="MODULE",
        help="module[:celery_app] defining the tasks",
    )
    p.set_defaults(func=cmd_worker, passthrough=True)

    p = sub.add_parser(
        "preflight", help="check that Redis is safe for Relier (7+, AOF, noeviction)"
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_preflight)

    p = sub.add_parser(
        "resurrector",
        help="run the resurrector on its own (workers also run it, behind a leader lock)",
        description="Take back the work of dead workers and publish due retries, until "
        "SIGTERM/SIGINT. Safe to run anywhere, any number of times: one holds the lock.",
    )
    p.add_argument(
        "-A",
        "--app",
        metavar="MODULE",
        help="module[:celery_app] whose Celery app (and its broker key prefixes) to use",
    )
    p.set_defaults(func=cmd_resurrector)

    p = sub.add_parser(
        "demo",
        help="run the live demo: its own redis-server, two workers it kills mid-run, a ledger",
    )
    p.add_argument(
        "--dir", default=".relier-demo", help="folder for the demo's Redis data and logs"
    )
    p.add_argument(
        "--tasks",
        type=int,
        default=6000,
        help="how many tasks to push (default 6000, under a minute)",
    )
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser(
        "chaos",
        help="break the running cluster on purpose (kill, stop, cut, restart) and verify",
        description="Run a chaos scenario against RELIER_REDIS_URL and the workers that opted "
        "in with RELIER_CHAOS=1; prints did/verified/measured lines and PASS or FAIL. Exit "
        "codes: 0 PASS, 1 FAIL, 2 cannot run here, 3 Redis unreachable, 4 not applicable.",
    )
    p.add_argument("scenario", choices=[*SCENARIOS, "all"], help="the scenario, or all")
    p.add_argument(
        "-A",
        "--app",
        metavar="MODULE",
        help="module[:celery_app] of your tasks (key prefixes; partition's worker runs it)",
    )
    p.add_argument("--tasks", type=int, default=None, help="probe tasks to push besides")
    p.add_argument(
        "--timeout", type=float, default=30.0, help="seconds to wait for probes (default 30)"
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_chaos)
    _cli_inspect.add_commands(sub)
    _cli_dlq.add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``rl``; returns the exit code."""
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if rest and not getattr(args, "passthrough", False):
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    try:
        return int(args.func(args, rest))
    except RedisUnavailableError as exc:
        _err(f"{type(exc).__name__}: {exc}")
        return EXIT_UNAVAILABLE
    except TaskNotFoundError as exc:
        _err(f"{type(exc).__name__}: {exc}")
        return EXIT_FAILED
    except RelierError as exc:
        _err(f"{type(exc).__name__}: {exc}")
        return EXIT_ERROR
    except ModuleNotFoundError as exc:
        _err(f"cannot import {exc.name!r}: {exc}")
        return EXIT_ERROR
    except BrokenPipeError:
        # The reader went away (`rl dlq list | head`): not an error of ours.
        # Point stdout at /dev/null so the interpreter's final flush is quiet.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())

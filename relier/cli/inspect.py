"""``rl status``, ``rl inflight``, ``rl task`` and ``rl workers``.

Each parses its options, calls one function of :mod:`relier.ops.inspection` and
prints a table, or with ``--json`` one JSON object (``inflight --follow
--json``: one object per line and refresh). No Redis command is issued here.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict
from typing import Any

from relier.cli.apps import load_app_module
from relier.cli.format import (
    EXIT_OK,
    ago,
    duration,
    envelope_data,
    history_table,
    print_json,
    stamp,
    table,
)
from relier.clock import now_ms
from relier.hub import Relier, current
from relier.journal.connection import redact
from relier.ops import inspection
from relier.ops.stats import EVENTS

__all__ = ["add_commands", "read_options", "relier_for"]


def relier_for(args: argparse.Namespace) -> Relier:
    """The process's Relier, after importing ``-A MODULE`` when given."""
    if getattr(args, "app", None):
        load_app_module(args.app)  # its Celery app's queue key prefix applies
    return current()


def read_options() -> list[argparse.ArgumentParser]:
    """The options every operator command shares: ``-A MODULE`` and ``--json``."""
    app = argparse.ArgumentParser(add_help=False)
    app.add_argument(
        "-A",
        "--app",
        metavar="MODULE",
        help="import module[:celery_app] first, so its Celery app's queue key prefix applies",
    )
    app.add_argument("--json", action="store_true", help="print one JSON object")
    return [app]


def cmd_status(args: argparse.Namespace) -> int:
    relier = relier_for(args)
    st = inspection.status(relier, queues=args.queue or ())
    if args.json:
        print_json(asdict(st))
        return EXIT_OK
    dead = f", {st.workers_dead} dead (their tasks not yet taken back)" if st.workers_dead else ""
    partial = "" if st.retrying_exact else f" among the first {inspection.RETRYING_SCAN_MAX}"
    print(f"Relier at {redact(relier.settings.redis_url)}, {stamp(st.now_ms)}")
    print()
    print(f"workers    {st.workers_alive} alive{dead}")
    print(f"in flight  {st.running} running, {st.reserved} reserved")
    print(f"scheduled  {st.scheduled} ({st.retrying} retrying{partial}, {st.overdue} overdue)")
    print(f"dlq        {st.dlq}")
    print()
    print(table(["queue", "depth"], [[q.name, q.depth] for q in st.queues]))
    print()
    print(f"events in the last {round(st.rates.window_ms / 1000)}s")
    rates = st.rates
    rows = [[e, rates.counts[e], f"{rates.per_minute[e]:.1f}"] for e in EVENTS]
    print(table(["event", "count", "per min"], rows))
    return EXIT_OK


def _inflight_table(tasks: list[inspection.InflightTask]) -> str:
    if not tasks:
        return "no task in flight"
    rows = [
        [
            t.id,
            t.task,
            t.state,
            t.worker_id + ("" if t.worker_alive else " (dead)"),
            "-" if t.pid is None else t.pid,
            t.attempt,
            duration(t.elapsed_ms),
            t.queue,
        ]
        for t in tasks
    ]
    running = sum(1 for t in tasks if t.state == "RUNNING")
    return (
        table(["id", "task", "state", "worker", "pid", "attempt", "elapsed", "queue"], rows)
        + f"\n\n{len(tasks)} in flight: {running} running, {len(tasks) - running} reserved"
    )


def cmd_inflight(args: argparse.Namespace) -> int:
    relier = relier_for(args)
    clear = args.follow and sys.stdout.isatty() and not args.json
    try:
        while True:
            now = now_ms()
            tasks = inspection.inflight(relier, queue=args.queue, task=args.task, now_ms=now)
            if args.json:
                print_json({"now_ms": now, "tasks": [asdict(t) for t in tasks]})
            elif args.follow:
                if clear:
                    sys.stdout.write("\x1b[H\x1b[2J")
                print(f"rl inflight at {stamp(now)} (every {args.interval:g}s; Ctrl-C to stop)\n")
                print(_inflight_table(tasks) + "\n", flush=True)
            else:
                print(_inflight_table(tasks))
            if not args.follow:
                return EXIT_OK
            time.sleep(args.interval)
    except KeyboardInterrupt:
        return EXIT_OK


def cmd_task(args: argparse.Namespace) -> int:
    relier = relier_for(args)
    d = inspection.task_detail(relier, args.id)
    if args.json:
        data = asdict(d)
        data["envelope"] = envelope_data(d.envelope)
        print_json(data)
        return EXIT_OK
    now = now_ms()
    counts = (
        f"fence {d.fence}, {d.failures} failed, {d.resurrections} crashes, "
        f"{d.worker_deaths} worker deaths"
    )
    worker = f"{d.owner} (pid {'-' if d.pid is None else d.pid})" if d.owner else "-"
    lines: list[tuple[str, Any]] = [
        ("id", d.id),
        ("task", d.task),
        ("state", d.state),
        ("queue", d.queue),
        ("attempt", f"{d.attempt} ({counts})"),
        ("worker", worker),
        ("created", ago(d.created_ms, now)),
        ("started", ago(d.started_ms, now)),
        ("updated", ago(d.updated_ms, now)),
        ("finished", ago(d.finished_ms, now)),
    ]
    if d.due_ms is not None:
        lines.append(("due", stamp(d.due_ms)))
    optional = [("reason", d.reason), ("error", d.error), ("result", d.result)]
    lines += [(name, value) for name, value in optional if value is not None]
    if d.progress is not None:
        lines.append(("progress", d.progress))
    lines += sorted(d.extra.items())
    lines.append(("envelope", d.envelope))
    for name, value in lines:
        print(f"{name:<10}{value}")
    if d.traceback:
        print(f"\ntraceback of the last failed attempt\n{d.traceback.rstrip()}")
    print(f"\nhistory ({len(d.history)} events, oldest first)\n{history_table(d.history)}")
    return EXIT_OK


def cmd_workers(args: argparse.Namespace) -> int:
    relier = relier_for(args)
    now = now_ms()
    listed = inspection.workers(relier, now_ms=now)
    if args.json:
        print_json({"now_ms": now, "workers": [asdict(w) for w in listed]})
        return EXIT_OK
    if not listed:
        print("no worker is listed")
        return EXIT_OK
    rows = [
        [
            w.worker_id,
            w.host,
            w.pid,
            "alive" if w.alive else "DEAD",
            duration(w.uptime_ms),
            duration(w.lease_age_ms) if w.alive else "expired",
            w.running,
            w.reserved,
        ]
        for w in listed
    ]
    headers = ["worker", "host", "pid", "status", "uptime", "lease age", "running", "reserved"]
    print(table(headers, rows))
    return EXIT_OK


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")
    return value


def add_commands(sub: Any) -> None:
    """Add status, inflight, task and workers to ``rl``'s subparsers."""
    p = sub.add_parser(
        "status",
        parents=read_options(),
        help="workers, queue depths, work in flight, DLQ size, rates",
        description="One screen on the whole cluster: live workers, the depth of every queue "
        "tasks were pushed to, tasks running and reserved, scheduled and retrying tasks, the "
        "DLQ size, and events over the last minute.",
    )
    p.add_argument("--queue", action="append", metavar="Q", help="also show queue Q (repeatable)")
    p.set_defaults(func=lambda a, _: cmd_status(a))

    p = sub.add_parser(
        "inflight",
        parents=read_options(),
        help="what runs right now: task, id, worker, attempt, elapsed",
        description="Every task a worker holds (RUNNING, or RESERVED: received, not started), "
        "longest first.",
    )
    p.add_argument("--follow", "-f", action="store_true", help="refresh until Ctrl-C")
    p.add_argument(
        "--interval",
        type=_positive,
        default=1.0,
        metavar="S",
        help="seconds between refreshes with --follow (default 1)",
    )
    p.add_argument("--queue", metavar="Q", help="only this queue (shell-style pattern)")
    p.add_argument("--task", metavar="NAME", help="only this task name (shell-style pattern)")
    p.set_defaults(func=lambda a, _: cmd_inflight(a))

    p = sub.add_parser(
        "task",
        parents=read_options(),
        help="one task's state, envelope and full history",
        description="Everything the journal holds on one task: state, attempt, fence, worker, "
        "times, error, result, envelope, and its history of events.",
    )
    p.add_argument("id", help="the task id")
    p.set_defaults(func=lambda a, _: cmd_task(a))

    p = sub.add_parser(
        "workers",
        parents=read_options(),
        help="each worker: host, pid, uptime, lease age, tasks held",
        description="Every listed worker incarnation: alive (its lease is held), or dead and "
        "not yet reaped, with the tasks it runs and has reserved.",
    )
    p.set_defaults(func=lambda a, _: cmd_workers(a))

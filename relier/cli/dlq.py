"""``rl dlq list | show | release | purge``.

Each parses its options, calls :mod:`relier.ops.dlq` and prints a table or one
JSON object. Bulk actions (``release --all``, ``purge --older-than``) draw a
progress bar on standard error when it is a terminal. No Redis command is
issued here.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from relier.cli.format import (
    EXIT_ERROR,
    EXIT_FAILED,
    EXIT_OK,
    Progress,
    ago,
    clip,
    duration,
    envelope_data,
    error,
    history_table,
    parse_duration,
    parse_when,
    print_json,
    table,
)
from relier.cli.inspect import read_options, relier_for
from relier.clock import now_ms
from relier.errors import TaskNotFoundError
from relier.journal.states import Reason
from relier.ops import dlq

if TYPE_CHECKING:
    from relier.hub import Relier

__all__ = ["add_commands"]

_ERROR_WIDTH = 60


def _entries_table(entries: list[dlq.DeadSummary], now: int) -> str:
    rows = [
        [
            e.id,
            e.task or "?",
            e.reason or "?",
            f"{duration(max(now - e.died_ms, 0))} ago",
            e.attempts,
            clip(e.error, _ERROR_WIDTH),
        ]
        for e in entries
    ]
    return table(["id", "task", "reason", "died", "attempts", "error"], rows)


def cmd_list(args: argparse.Namespace) -> int:
    relier = relier_for(args)
    now = now_ms()
    limit = args.limit or None
    found = dlq.find_dead(
        relier,
        task=args.task,
        reason=args.reason,
        since_ms=args.since(now) if args.since else None,
        limit=None if limit is None else limit + 1,
    )
    truncated = limit is not None and len(found) > limit
    entries = found[:limit]
    if args.json:
        print_json({"entries": [asdict(e) for e in entries], "truncated": truncated})
    elif not entries:
        print("no matching entry in the dead letter queue")
    else:
        more = " (more match: raise --limit, or 0 for all)" if truncated else ""
        print(f"{_entries_table(entries, now)}\n\n{len(entries)} entries{more}")
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    relier = relier_for(args)
    dead = dlq.get_dead(relier, args.id)
    if args.json:
        data = asdict(dead)
        data["envelope"] = envelope_data(dead.envelope)
        print_json(data)
        return EXIT_OK
    now = now_ms()
    fields = [
        ("id", dead.id),
        ("task", dead.task),
        ("reason", dead.reason),
        ("error", dead.error),
        ("attempts", dead.attempts),
        ("died", ago(dead.died_ms, now)),
        ("envelope", dead.envelope),
    ]
    for name, value in fields:
        print(f"{name:<10}{value}")
    if dead.traceback:
        print(f"\ntraceback of the last failed attempt\n{dead.traceback.rstrip()}")
    print(f"\nhistory ({len(dead.history)} events, oldest first)\n{history_table(dead.history)}")
    return EXIT_OK


def _selection_problem(args: argparse.Namespace, bulk_flag: str, bulk: bool) -> str | None:
    """Why the ids and filters given cannot be used together, or None."""
    filters = [f"--{n}" for n in ("task", "reason", "since") if getattr(args, n, None)]
    if args.ids and bulk:
        return f"give task ids or {bulk_flag}, not both"
    if not args.ids and not bulk:
        return f"give the ids of the tasks to act on, or {bulk_flag}"
    if filters and not bulk:
        return f"{', '.join(filters)} only select entries together with {bulk_flag}"
    return None


def _selected(
    relier: Relier, args: argparse.Namespace, before_ms: int | None
) -> tuple[list[str], list[dlq.DeadSummary] | None]:
    """The ids to act on, and for a bulk selection the entries that matched."""
    if args.ids:
        return list(dict.fromkeys(args.ids)), None
    since = getattr(args, "since", None)
    found = dlq.find_dead(
        relier,
        task=args.task,
        reason=args.reason,
        since_ms=since(now_ms()) if since else None,
        before_ms=before_ms,
    )
    return [e.id for e in found], found


def _dry_run(
    relier: Relier,
    ids: list[str],
    matched: list[dlq.DeadSummary] | None,
    verb: str,
    as_json: bool,
) -> int:
    entries: list[dlq.DeadSummary] = list(matched or [])
    missing: list[str] = []
    for task_id in ids if matched is None else []:
        try:
            d = dlq.get_dead(relier, task_id)
        except TaskNotFoundError:
            missing.append(task_id)
            continue
        entries.append(
            dlq.DeadSummary(task_id, d.task, "", d.reason, d.error, d.attempts, d.died_ms)
        )
    if as_json:
        print_json(
            {"dry_run": True, f"would_{verb}": [e.id for e in entries], "not_in_dlq": missing}
        )
        return EXIT_FAILED if missing else EXIT_OK
    if entries:
        print(_entries_table(entries, now_ms()) + "\n")
    for task_id in missing:
        print(f"not in the dead letter queue: {task_id}")
    print(f"dry run: would {verb} {len(entries)} entries")
    return EXIT_FAILED if missing else EXIT_OK


def _print_refused(verb: str, refused: dict[str, str]) -> None:
    for task_id, state in refused.items():
        if state == "CORRUPT":
            print(
                f"not {verb}: {task_id}'s journal entry is corrupt (its fence is not an "
                "integer); see `rl dlq show`, then purge it or repair the field"
            )
            continue
        why = "no such task" if state == "MISSING" else f"it is {state}"
        print(f"not {verb}: {task_id} is not in the dead letter queue ({why})")


def cmd_release(args: argparse.Namespace) -> int:
    problem = _selection_problem(args, "--all", args.all)
    if problem:
        error(problem)
        return EXIT_ERROR
    relier = relier_for(args)
    ids, matched = _selected(relier, args, None)
    if args.dry_run:
        return _dry_run(relier, ids, matched, "release", args.json)
    progress = Progress(len(ids), "releasing") if args.all else None
    try:
        outcome = dlq.release(relier, ids, progress)
    finally:
        if progress is not None:
            progress.close()
    if args.json:
        print_json(asdict(outcome))
    else:
        for task_id, fence in outcome.released.items():
            print(f"released {task_id} (fence {fence})")
        _print_refused("released", outcome.refused)
        print(f"{len(outcome.released)} released, {len(outcome.refused)} refused")
    return EXIT_FAILED if outcome.refused else EXIT_OK


def _confirm(count: int) -> bool | None:
    """Ask on the terminal; None when standard input is not one."""
    if not sys.stdin.isatty():
        return None
    prompt = f"Delete {count} dead tasks for good (journal, history, DLQ entry)? [y/N] "
    print(prompt, end="", file=sys.stderr, flush=True)
    try:
        answer = input()
    except EOFError:
        answer = ""
    return answer.strip().lower() in ("y", "yes")


def cmd_purge(args: argparse.Namespace) -> int:
    bulk = args.older_than is not None
    problem = _selection_problem(args, "--older-than", bulk)
    if problem:
        error(problem)
        return EXIT_ERROR
    relier = relier_for(args)
    ids, matched = _selected(relier, args, now_ms() - args.older_than if bulk else None)
    if args.dry_run:
        return _dry_run(relier, ids, matched, "purge", args.json)
    if ids and not args.yes:
        answer = _confirm(len(ids))
        if answer is None:
            error("purge deletes for good, and stdin is not a terminal to ask on: pass --yes")
            return EXIT_ERROR
        if not answer:
            error("nothing purged")
            return EXIT_FAILED
    progress = Progress(len(ids), "purging") if bulk else None
    try:
        outcome = dlq.purge(relier, ids, progress)
    finally:
        if progress is not None:
            progress.close()
    if args.json:
        print_json(asdict(outcome))
    else:
        for task_id in outcome.purged:
            print(f"purged {task_id}")
        _print_refused("purged", outcome.refused)
        print(f"{len(outcome.purged)} purged, {len(outcome.refused)} refused")
    return EXIT_FAILED if outcome.refused else EXIT_OK


def _when(text: str) -> Any:
    """argparse type of --since: checked at parse time, resolved at the command's now."""
    try:
        parse_when(text, 0)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return lambda now: parse_when(text, now)


def _duration(text: str) -> int:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_commands(sub: Any) -> None:
    """Add ``dlq`` and its actions to ``rl``'s subparsers."""
    reasons = [r.value for r in Reason]
    p = sub.add_parser(
        "dlq",
        help="list, show, release or purge dead letter queue entries",
        description="The dead letter queue: every task that could not succeed, with its reason.",
    )
    actions = p.add_subparsers(dest="dlq_command", required=True, metavar="ACTION")

    q = actions.add_parser(
        "list",
        parents=read_options(),
        help="DLQ entries, newest first",
        description="DLQ entries, newest first, with their reason and last error.",
    )
    q.add_argument("--task", metavar="NAME", help="only this task name (shell-style pattern)")
    q.add_argument("--reason", choices=reasons, help="only this reason")
    q.add_argument(
        "--since",
        type=_when,
        metavar="WHEN",
        help="only entries that died since WHEN: a duration ago (15m, 2h, 7d) or an ISO date",
    )
    q.add_argument(
        "--limit", type=int, default=100, metavar="N", help="at most N entries (100; 0 = all)"
    )
    q.set_defaults(func=lambda a, _: cmd_list(a))

    q = actions.add_parser(
        "show",
        parents=read_options(),
        help="one DLQ entry: error, traceback, envelope, history",
        description="One DLQ entry in full: reason, error, traceback, envelope and history.",
    )
    q.add_argument("id", help="the task id")
    q.set_defaults(func=lambda a, _: cmd_show(a))

    q = actions.add_parser(
        "release",
        parents=read_options(),
        help="run dead tasks again (original payload, fresh attempts, new fence)",
        description="Publish dead tasks again with their original payload: attempts start "
        "from 0, the fence moves up, and the history records a `released` event. Give task "
        "ids, or --all with optional filters.",
    )
    q.add_argument("ids", nargs="*", metavar="ID", help="ids of the tasks to release")
    q.add_argument("--all", action="store_true", help="every entry that matches the filters")
    q.add_argument("--task", metavar="NAME", help="with --all: only this task name (pattern)")
    q.add_argument("--reason", choices=reasons, help="with --all: only this reason")
    q.add_argument(
        "--since", type=_when, metavar="WHEN", help="with --all: only entries dead since WHEN"
    )
    q.add_argument("--dry-run", action="store_true", help="show what would be released")
    q.set_defaults(func=lambda a, _: cmd_release(a))

    q = actions.add_parser(
        "purge",
        parents=read_options(),
        help="delete dead tasks for good (asks first, unless --yes)",
        description="Delete dead tasks: journal hash, history and DLQ entry, each atomically. "
        "Give task ids, or --older-than with optional filters. Asks for confirmation unless "
        "--yes.",
    )
    q.add_argument("ids", nargs="*", metavar="ID", help="ids of the tasks to purge")
    q.add_argument(
        "--older-than",
        type=_duration,
        metavar="D",
        help="every entry that died more than D ago (90s, 15m, 2h, 7d)",
    )
    q.add_argument("--task", metavar="NAME", help="with --older-than: only this task (pattern)")
    q.add_argument("--reason", choices=reasons, help="with --older-than: only this reason")
    q.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    q.add_argument("--dry-run", action="store_true", help="show what would be purged")
    q.set_defaults(func=lambda a, _: cmd_purge(a))

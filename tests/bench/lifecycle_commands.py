"""Redis commands per task lifecycle: Relier against plain Celery.

For each system in turn, on one Redis, one worker (prefork, concurrency 2): the
benchmark pushes ``--tasks`` no-op tasks one at a time (Relier ``push``, plain Celery
``delay``), waits until every one ran and was acknowledged, and counts what Redis
executed over that window, two ways (:class:`._harness.CommandCounter`):

* **all commands**: ``INFO commandstats`` before and after, every client, the
  commands run inside Lua scripts included (an ``EVALSHA`` counts once, plus each
  command its script runs);
* **sent**: ``MONITOR`` lines of commands clients sent (round trips, or a
  pipeline's share of one), without those run inside Lua.

The benchmark's own polling is left out of both. Each system's background (Relier's
lease, resurrector and sweeps; kombu's polling) is measured with the same worker
idle for ``--idle`` seconds just before, and that rate times the window's length is
subtracted. Per task = what is left / tasks.

Target: Relier sends at most 6 commands per task more than plain Celery. The
difference in all commands (inside Lua included) is reported beside it.

Run: ``python -m tests.bench.lifecycle_commands [--tasks 500] [--idle 5] [--markdown]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from relier import Relier, load_settings

from . import plain_app, relier_app
from ._harness import (
    CommandCount,
    CommandCounter,
    Stack,
    bound,
    exit_cleanly_on_sigterm,
    table,
    wait_finished,
)

MAX_EXTRA_SENT = 6.0
RELIER_QUEUE = "celery"
NOTE = "bench-lifecycle"
SETTLE_S = 1.0
_TIMEOUT_S = 300.0


def _window(stack: Stack, action: Callable[[], None]) -> CommandCount:
    counter = CommandCounter(stack)
    counter.start()
    action()
    return counter.stop()


def _per_task(busy: CommandCount, idle: CommandCount, tasks: int) -> dict[str, Any]:
    """Per task: the busy window's counts minus the idle rate over the same length."""
    scale = busy.elapsed_s / idle.elapsed_s

    def net(b: float, i: float) -> float:
        return (b - i * scale) / tasks

    names = set(busy.commands) | set(idle.commands)
    commands = {c: net(busy.commands[c], idle.commands[c]) for c in names}
    sent_names = {c for _, c in busy.sent_commands} | {c for _, c in idle.sent_commands}
    sent_by: Counter[str] = Counter()
    idle_by: Counter[str] = Counter()
    for (_, c), v in busy.sent_commands.items():
        sent_by[c] += v
    for (_, c), v in idle.sent_commands.items():
        idle_by[c] += v
    return {
        "all": net(sum(busy.commands.values()), sum(idle.commands.values())),
        "sent": net(sum(busy.sent.values()), sum(idle.sent.values())),
        "in_lua": net(busy.in_lua, idle.in_lua),
        "commands": {c: v for c, v in commands.items() if abs(v) >= 0.005},
        "sent_commands": {c: net(sent_by[c], idle_by[c]) for c in sent_names},
        "window_s": busy.elapsed_s,
        "idle_all_per_s": sum(idle.commands.values()) / idle.elapsed_s,
    }


def _measure(
    stack: Stack, queue: str, tasks: int, idle_s: float, push: Callable[[int], object]
) -> dict[str, Any]:
    time.sleep(SETTLE_S)
    idle = _window(stack, lambda: time.sleep(idle_s))

    def busy_action() -> None:
        for i in range(tasks):
            push(i)
        wait_finished(stack.client, queue, _TIMEOUT_S, 0.05)

    busy = _window(stack, busy_action)
    stack.stop_workers()
    stack.workers.clear()
    return _per_task(busy, idle, tasks)


def run(tasks: int = 500, idle_s: float = 5.0) -> dict[str, Any]:
    """Count both systems' commands; returns per-task counts and the verdict."""
    started = time.monotonic()
    with Stack("lifecycle") as stack:
        relier = Relier(load_settings(redis_url=stack.url))
        sender, plain_noop = plain_app.producer(stack.url)
        try:
            with bound(relier, relier_app.noop):
                relier_app.noop.push(-1, NOTE)  # load the scripts, open the connection
                stack.relier_worker("lc", 2)
                wait_finished(stack.client, RELIER_QUEUE, 30, 0.05)
                r = _measure(
                    stack, RELIER_QUEUE, tasks, idle_s, lambda i: relier_app.noop.push(i, NOTE)
                )
            plain_noop.delay(-1, NOTE)
            stack.plain_worker("lcp", 2)
            wait_finished(stack.client, plain_app.QUEUE, 30, 0.05)
            p = _measure(stack, plain_app.QUEUE, tasks, idle_s, lambda i: plain_noop.delay(i, NOTE))
        finally:
            sender.close()
            relier.close()
    extra_sent = r["sent"] - p["sent"]
    _progress("Relier", r)
    _progress("plain Celery", p)
    return {
        "benchmark": "lifecycle_commands",
        "tasks": tasks,
        "relier": r,
        "plain": p,
        "extra_sent": extra_sent,
        "extra_all": r["all"] - p["all"],
        "verdict": "PASS" if extra_sent <= MAX_EXTRA_SENT else "FAIL",
        "elapsed_s": time.monotonic() - started,
    }


def _progress(system: str, m: dict[str, Any]) -> None:
    print(
        f"  {system:12s} per task: {m['sent']:.2f} sent, {m['in_lua']:.2f} inside Lua, "
        f"{m['all']:.2f} in all (window {m['window_s']:.1f} s)",
        file=sys.stderr,
    )


def checks(result: dict[str, Any]) -> list[list[str]]:
    """Summary rows: benchmark, check, measured, target, result."""
    r, p = result["relier"], result["plain"]
    measured = (
        f"{r['sent']:.2f} - {p['sent']:.2f} = {result['extra_sent']:+.2f} sent per task "
        f"(all commands incl. inside Lua: {r['all']:.2f} - {p['all']:.2f} = "
        f"{result['extra_all']:+.2f})"
    )
    check = "Redis commands per task, Relier - plain Celery"
    target = f"<= {MAX_EXTRA_SENT:.0f} sent"
    return [["lifecycle_commands", check, measured, target, result["verdict"]]]


def _f(value: float) -> str:
    return f"{value + 0.0:.2f}" if abs(value) >= 0.005 else "0.00"  # never "-0.00"


def report(result: dict[str, Any], markdown: bool = False) -> str:
    r, p = result["relier"], result["plain"]
    headers = ["per task", "Relier", "plain Celery", "Relier - plain"]
    body = [
        ["commands sent (MONITOR)", _f(r["sent"]), _f(p["sent"]), f"{result['extra_sent']:+.2f}"],
        ["run inside Lua (MONITOR)", _f(r["in_lua"]), _f(p["in_lua"]),
         f"{r['in_lua'] - p['in_lua']:+.2f}"],
        ["all commands (INFO commandstats)", _f(r["all"]), _f(p["all"]),
         f"{result['extra_all']:+.2f}"],
    ]  # fmt: skip
    by_cmd = sorted(
        set(r["commands"]) | set(p["commands"]),
        key=lambda c: -(r["commands"].get(c, 0.0) + p["commands"].get(c, 0.0)),
    )
    detail = []
    for c in by_cmd:
        rv, pv = r["commands"].get(c, 0.0), p["commands"].get(c, 0.0)
        rs, ps = r["sent_commands"].get(c, 0.0), p["sent_commands"].get(c, 0.0)
        if max(abs(rv), abs(pv)) < 0.05:
            continue
        detail.append([c.upper(), _f(rv), _f(rs), _f(pv), _f(ps)])
    detail_headers = ["command", "Relier all", "Relier sent", "plain all", "plain sent"]
    return (
        f"{table(headers, body, markdown)}\n\n"
        f"{table(detail_headers, detail, markdown)}\n\n"
        f"{result['tasks']} no-op tasks pushed one at a time, run by one worker (prefork, "
        f"concurrency 2); per task, after subtracting the idle worker's background "
        f"(Relier {r['idle_all_per_s']:.1f}, plain Celery {p['idle_all_per_s']:.1f} "
        f"commands/s) over the window ({r['window_s']:.1f} s and {p['window_s']:.1f} s). "
        f"Commands under 0.05 per task are left out of the second table."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.bench.lifecycle_commands", description=__doc__
    )
    parser.add_argument("--tasks", type=int, default=500, help="tasks per system")
    parser.add_argument("--idle", type=float, default=5.0, help="idle background window, s")
    parser.add_argument("--markdown", action="store_true", help="print the table in Markdown")
    args = parser.parse_args(argv)
    exit_cleanly_on_sigterm()
    result = run(args.tasks, args.idle)
    print(report(result, args.markdown))
    return 0 if result["verdict"] == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())

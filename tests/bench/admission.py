"""Admission decision latency: a rate-limited push against the cost of any script call.

The rate limit is decided by the GCRA inside ``dispatch.lua``, in the push's one
``EVALSHA``. One process times calls made one at a time (sequential round trips) on
one Redis client, the cases interleaved (see :func:`._harness.time_calls`):

* **raw EVALSHA**: ``EVALSHA`` of ``return 0`` on the same client and Redis. No
  Redis call can cost less: this is the physical limit.
* **Script object**: the same script through redis-py's ``register_script``, the
  wrapper Relier calls its scripts with (``EVALSHA``, reloading on ``NOSCRIPT``).
* **push, rejected**: ``bench.rate_reject`` (``rate_limit="1/h"``) after its one
  admitted call: each push is refused by the GCRA, one ``EVALSHA`` that writes
  nothing, and raises ``AdmissionRejectedError``. This is the admission decision.
* **dispatch.lua alone, rejected**: the same decision through ``relier.journal.scripts``
  with the arguments prepared once: the push minus its Python work (envelope, ids,
  the exception).
* **push, admitted**: ``bench.rate_admit`` (``rate_limit="100000/s"``, never
  reached one call at a time): admitted, journaled and published each time.
* **push, no rate limit**: ``bench.noop``: the same push without admission.

Targets: a rejected push's p50 is at most 3x raw EVALSHA's, and its rate at least
1/3 of raw EVALSHA's; an admitted push's p50 is at most 1.2x a push without a rate
limit's. No worker runs: the admitted pushes fill the queue.

Run: ``python -m tests.bench.admission [--ops 10000] [--markdown]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from relier import AdmissionRejectedError, Relier, load_settings
from relier.tasks.dispatch import Call, _prepare

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

MAX_DECISION_RATIO = 3.0  # rejected push p50 / raw EVALSHA p50
MIN_RATE_RATIO = 1 / 3  # rejected pushes/s / raw EVALSHA/s
MAX_ADMITTED_RATIO = 1.2  # admitted push p50 / push without rate limit p50
WARMUP = 200
NOTE = "bench-admission"

RAW = "raw EVALSHA (return 0)"
SCRIPT = "redis-py Script (return 0)"
REJECTED = f"push, rejected (rate_limit {relier_app.RATE_REJECT})"
LUA_REJECTED = "dispatch.lua alone, rejected"
ADMITTED = f"push, admitted (rate_limit {relier_app.RATE_ADMIT})"
PLAIN = "push, no rate limit"
CHECK_HEADERS = ["check", "measured", "target", "result"]


def _push(task: Any, outcomes: Counter[str]) -> Callable[[int], object]:
    def call(i: int) -> None:
        try:
            task.push(i, NOTE)
        except AdmissionRejectedError:
            outcomes["rejected"] += 1
        else:
            outcomes["admitted"] += 1

    return call


def _cases(relier: Relier, outcomes: dict[str, Counter[str]]) -> dict[str, Callable[[int], object]]:
    client = relier.redis
    sha = client.script_load("return 0")
    script = client.register_script("return 0")
    # Take the one call "1/h" admits, so that every call timed below is refused.
    relier_app.rate_reject.push(-1, NOTE)
    prepared = _prepare(relier, relier_app.rate_reject, Call((0, NOTE)))
    scripts, lua = relier.scripts, outcomes[LUA_REJECTED]

    def lua_rejected(i: int) -> None:
        lua[scripts.dispatch_raw(prepared)[1].decode()] += 1

    return {
        RAW: lambda i: client.evalsha(sha, 0),
        SCRIPT: lambda i: script(),
        REJECTED: _push(relier_app.rate_reject, outcomes[REJECTED]),
        LUA_REJECTED: lua_rejected,
        ADMITTED: _push(relier_app.rate_admit, outcomes[ADMITTED]),
        PLAIN: _push(relier_app.noop, outcomes[PLAIN]),
    }


def _check_outcomes(outcomes: dict[str, Counter[str]], calls: int) -> None:
    expected = {
        REJECTED: "rejected",
        LUA_REJECTED: "REJECTED",
        ADMITTED: "admitted",
        PLAIN: "admitted",
    }
    for name, outcome in expected.items():
        if outcomes[name] != Counter({outcome: calls}):
            raise BenchError(f"{name}: expected {calls} x {outcome}, got {dict(outcomes[name])}")


def run(ops: int = 10_000) -> dict[str, Any]:
    """Time ``ops`` calls of each case; returns the timings and verdicts."""
    started = time.monotonic()
    outcomes: dict[str, Counter[str]] = {
        name: Counter() for name in (REJECTED, LUA_REJECTED, ADMITTED, PLAIN)
    }
    tasks = (relier_app.rate_reject, relier_app.rate_admit, relier_app.noop)
    with Stack("admission") as stack:
        relier = Relier(load_settings(redis_url=stack.url))
        try:
            with bound(relier, *tasks):
                timings = time_calls(_cases(relier, outcomes), ops, warmup=WARMUP)
        finally:
            relier.close()
    _check_outcomes(outcomes, ops + WARMUP)
    print_timings(timings)
    return {
        "benchmark": "admission",
        "ops": ops,
        "timings": timings,
        "checks": _verdicts(timings),
        "elapsed_s": time.monotonic() - started,
    }


def _verdicts(timings: dict[str, Timing]) -> list[list[str]]:
    p50 = {name: summary(t.latencies_us)["p50"] for name, t in timings.items()}
    raw, rejected = timings[RAW], timings[REJECTED]
    rows: list[tuple[str, str, str, bool]] = [
        (
            "rejected push p50 / raw EVALSHA p50",
            f"{p50[REJECTED]:.1f} / {p50[RAW]:.1f} µs = {ratio(p50[REJECTED], p50[RAW])}",
            f"<= {MAX_DECISION_RATIO:.0f}x",
            p50[REJECTED] <= MAX_DECISION_RATIO * p50[RAW],
        ),
        (
            "rejected pushes/s / raw EVALSHA/s",
            f"{rejected.per_s:,.0f} / {raw.per_s:,.0f} = {ratio(rejected.per_s, raw.per_s)}",
            f">= {MIN_RATE_RATIO:.2f}x",
            rejected.per_s >= MIN_RATE_RATIO * raw.per_s,
        ),
        (
            "admitted push p50 / no-rate-limit push p50",
            f"{p50[ADMITTED]:.1f} / {p50[PLAIN]:.1f} µs = {ratio(p50[ADMITTED], p50[PLAIN])}",
            f"<= {MAX_ADMITTED_RATIO}x",
            p50[ADMITTED] <= MAX_ADMITTED_RATIO * p50[PLAIN],
        ),
    ]
    return [
        [check, measured, target, "PASS" if ok else "FAIL"] for check, measured, target, ok in rows
    ]


def checks(result: dict[str, Any]) -> list[list[str]]:
    """Summary rows: benchmark, check, measured, target, result."""
    return [["admission", *row] for row in result["checks"]]


def report(result: dict[str, Any], markdown: bool = False) -> str:
    return (
        f"{latency_table(result['timings'], RAW, 'EVALSHA', markdown)}\n\n"
        f"{result['ops']:,} calls per case, one at a time, on one client; ratios are to "
        f"raw EVALSHA of `return 0`.\n\n"
        f"{table(CHECK_HEADERS, result['checks'], markdown)}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.admission", description=__doc__)
    parser.add_argument("--ops", type=int, default=10_000, help="timed calls per case")
    parser.add_argument("--markdown", action="store_true", help="print the table in Markdown")
    args = parser.parse_args(argv)
    exit_cleanly_on_sigterm()
    result = run(args.ops)
    print(report(result, args.markdown))
    return 1 if any(row[-1] == "FAIL" for row in result["checks"]) else 0


if __name__ == "__main__":
    sys.exit(main())

"""Every script caps a task's history at history_max, dropping the oldest events."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import redis

from relier.journal.scripts import Scripts
from tests.lua.journal import HMAX, KEYS, history, pending


def _claimed(s: Scripts) -> int:
    pending(s)
    return s.claim("t1", "w/1", 2_000).fence


def _retrying(s: Scripts) -> None:
    assert s.fail("t1", _claimed(s), 3_000, 4_000, "", "e", "tb") == 1


STEPS: dict[str, tuple[Callable[[Scripts], Any], Callable[[Scripts], Any], str]] = {
    # name: (setup, the transition under test, the event it appends)
    "dispatch": (lambda s: None, lambda s: pending(s), "dispatched"),
    "claim": (pending, lambda s: s.claim("t1", "w/2", 9_000), "started"),
    "complete": (_claimed, lambda s: s.complete("t1", 1, b"1", 9_000, 60), "succeeded"),
    "complete_stale": (_claimed, lambda s: s.complete("t1", 7, b"1", 9_000, 60), "stale_commit"),
    "fail_retry": (_claimed, lambda s: s.fail("t1", 1, 9_000, 9_500, "", "e", "tb"), "retry"),
    "fail_dead": (_claimed, lambda s: s.fail("t1", 1, 9_000, 0, "max_retries", "e", ""), "dead"),
    "fail_stale": (_claimed, lambda s: s.fail("t1", 7, 9_000, 0, "x", "e", ""), "stale_commit"),
    "dead_letter": (pending, lambda s: s.dead_letter("t1", 9_000, "unknown_task", "e"), "dead"),
    "requeue": (_retrying, lambda s: s.requeue("t1", "q", 9_000, "tag"), "requeued"),
    "checkpoint": (_claimed, lambda s: s.checkpoint("t1", 1, b"1", 9_000), "checkpoint"),
    "soft_timeout": (_claimed, lambda s: s.soft_timeout("t1", 1, 9_000, 1), "soft_timeout"),
    "reserve": (pending, lambda s: s.reserve("t1", "w/2", 9_000), "reserved"),
    "resurrect": (
        _claimed,
        lambda s: s.resurrect("t1", "w/1", "q", 9_000, "tag", "child", 3, 10),
        "resurrected",
    ),
    "resurrect_dead": (
        _claimed,
        lambda s: s.resurrect("t1", "w/1", "q", 9_000, "tag", "child", 1, 10),
        "dead",
    ),
}


@pytest.mark.parametrize("step", sorted(STEPS))
def test_history_is_capped(scripts: Scripts, client: redis.Redis, step: str) -> None:
    setup, transition, event = STEPS[step]
    setup(scripts)
    hist = KEYS.task("t1").hist
    client.rpush(hist, *[json.dumps({"t": i, "e": "filler"}) for i in range(2 * HMAX)])
    transition(scripts)
    events = history(client)
    assert len(events) == HMAX
    assert events[-1]["e"] == event
    # The oldest events were dropped: what is left of the fillers is their newest run.
    fillers = [e["t"] for e in events if e["e"] == "filler"]
    assert fillers == list(range(2 * HMAX - len(fillers), 2 * HMAX))
    assert [e["e"] for e in events[: len(fillers)]] == ["filler"] * len(fillers)
    assert len(fillers) >= HMAX - 2


def test_a_long_life_keeps_the_newest_events(scripts: Scripts, client: redis.Redis) -> None:
    pending(scripts)
    for n in range(1, 8):
        fence = scripts.claim("t1", "w/1", n * 100).fence
        assert scripts.fail("t1", fence, n * 100 + 1, n * 100 + 2, "", f"e{n}", "tb") == 1
        assert scripts.requeue("t1", "q", n * 100 + 3, "tag") == 1
    events = history(client)
    assert len(events) == HMAX
    assert events[-1] == {"t": 703, "e": "requeued"}
    assert all(e["e"] != "dispatched" for e in events)

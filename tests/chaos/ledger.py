"""The chaos tests' ledger: what was pushed, and what became of it.

"Nothing lost" means every pushed id ends SUCCEEDED or DEAD. The journal
(``rl:{<id>}:job`` field ``state``) says which; its history says how many
attempts started, which ones committed (``succeeded``) and which commits were
refused (``stale_commit``); ``chaos:exec:<id>`` (see ``tests.chaos.apps``)
counts how many times the body really ran.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from relier import Relier
from relier.chaos.base import wait_for
from relier.chaos.ledger import summary as stats
from tests.chaos.apps import EXEC_KEY

__all__ = ["Ledger", "count_events", "events", "restarts", "stats", "wait_until"]

FINAL = frozenset({"SUCCEEDED", "DEAD"})
Event = dict[str, Any]


@dataclass
class Ledger:
    """Every id a test pushed, and how to read their fate from Redis."""

    rl: Relier
    ids: list[str] = field(default_factory=list)

    def add(self, *task_ids: str) -> None:
        self.ids.extend(task_ids)

    def states(self, ids: Iterable[str] | None = None) -> dict[str, str]:
        """Journal state of each id (``MISSING`` when there is no journal entry)."""
        ids = list(self.ids if ids is None else ids)
        with self.rl.redis.pipeline(transaction=False) as pipe:
            for task_id in ids:
                pipe.hget(self.rl.keys.task(task_id).job, "state")
            raw = pipe.execute()
        return {i: (s.decode() if s else "MISSING") for i, s in zip(ids, raw, strict=True)}

    def wait_final(self, timeout: float) -> dict[str, str]:
        """Wait until every id is SUCCEEDED or DEAD (or ``timeout``); the states then."""
        deadline = time.monotonic() + timeout
        while True:
            states = self.states()
            if all(s in FINAL for s in states.values()) or time.monotonic() > deadline:
                return states
            time.sleep(0.1)

    def executions(self, ids: Iterable[str] | None = None) -> dict[str, int]:
        """How many times each task's body ran (``chaos:exec:<id>``)."""
        ids = list(self.ids if ids is None else ids)
        with self.rl.redis.pipeline(transaction=False) as pipe:
            for task_id in ids:
                pipe.scard(EXEC_KEY + task_id)
            raw = pipe.execute()
        return {i: int(v or 0) for i, v in zip(ids, raw, strict=True)}

    def histories(self, ids: Iterable[str] | None = None) -> dict[str, list[Event]]:
        ids = list(self.ids if ids is None else ids)
        with self.rl.redis.pipeline(transaction=False) as pipe:
            for task_id in ids:
                pipe.lrange(self.rl.keys.task(task_id).hist, 0, -1)
            raw = pipe.execute()
        return {i: [json.loads(e) for e in h] for i, h in zip(ids, raw, strict=True)}

    def history(self, task_id: str) -> list[Event]:
        return self.histories([task_id])[task_id]

    def job(self, task_id: str) -> dict[str, str]:
        """The journal hash of one task, decoded (result as JSON text)."""
        raw = self.rl.redis.hgetall(self.rl.keys.task(task_id).job)
        return {k.decode(): v.decode(errors="replace") for k, v in raw.items()}

    def unfinished(self, states: dict[str, str], limit: int = 3) -> str:
        """The journal and history of a few tasks not SUCCEEDED or DEAD (for failure messages)."""
        stuck = [i for i, s in states.items() if s not in FINAL]
        lines = [f"{len(stuck)} of {len(states)} tasks did not finish:"]
        r = self.rl.redis
        queued = b"\n".join(r.lrange(self.rl.keys.queue("celery"), 0, -1))
        unacked = b"\n".join(r.hvals("unacked"))
        for task_id in stuck[:limit]:
            job = {k: v for k, v in self.job(task_id).items() if k not in ("env", "msg")}
            where = (
                f"messages in the queue: {queued.count(task_id.encode()) // 4}, "
                f"in kombu's unacked: {unacked.count(task_id.encode()) // 4}"
            )
            lines += [f"  {task_id} {job}", f"    {where}"]
            lines += [f"    {e}" for e in self.history(task_id)]
        return "\n".join(lines)

    def result(self, task_id: str) -> Any:
        return json.loads(self.job(task_id)["result"])


def events(history: list[Event], name: str) -> list[Event]:
    return [e for e in history if e["e"] == name]


def count_events(histories: dict[str, list[Event]], name: str) -> Counter[str]:
    """Per id, how many ``name`` events its history holds."""
    return Counter({i: len(events(h, name)) for i, h in histories.items()})


def restarts(history: list[Event], cause: str, since_ms: int = 0) -> list[tuple[Event, Event]]:
    """Each ``cause`` event (``resurrected``/``handoff``) at or after ``since_ms``,
    paired with the ``started`` event that follows it."""
    pairs = []
    for n, event in enumerate(history):
        if event["e"] != cause or event["t"] < since_ms:
            continue
        nxt = next((e for e in history[n + 1 :] if e["e"] == "started"), None)
        assert nxt is not None, f"no start after {event} in {history}"
        pairs.append((event, nxt))
    return pairs


def wait_until(predicate: Any, timeout: float, what: Any, interval: float = 0.02) -> Any:
    """Poll ``predicate()`` until it returns something truthy; fail with ``what`` otherwise.

    ``what`` is a text, or a function returning one (called on failure).
    """
    value = wait_for(predicate, timeout, interval)
    if not value:
        text = what() if callable(what) else what
        raise AssertionError(f"timed out after {timeout} s waiting for {text}")
    return value

"""Event counters: what the cluster did in the last minute, for ``rl status``.

Each transition script counts its own outcome in the same atomic step that
makes it, so a count never disagrees with the journal: ``dispatch.lua``
counts ``dispatched``, ``complete.lua`` ``succeeded``, ``fail.lua``
``retried`` or ``dead``, ``dead_letter.lua`` and ``defer.lua`` (when it gives
up) ``dead``, ``resurrect.lua`` ``resurrected``, ``handoff`` or ``dead``, and
``dlq_release.lua`` ``released``. Every count is one ``HINCRBY`` (plus an
``EXPIRE`` the first time an event is counted in a bucket): O(1), whatever
the number of tasks.

Keys: ``rl:stats:<start s>``, one hash per :data:`~relier.keys.STATS_BUCKET_MS`
(10 s) bucket, named by its start in epoch seconds, field = event, expiring
:data:`~relier.keys.STATS_TTL_S` after its first count of each event. The
bucket is chosen by the writer's clock (the ``now`` every script already
gets), so hosts whose clocks disagree by a few seconds count a few events
in the neighbouring bucket.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from relier.clock import now_ms as clock_now
from relier.journal.connection import translate_errors
from relier.journal.keys import STATS_BUCKET_MS

if TYPE_CHECKING:
    from relier.hub import Relier

__all__ = ["EVENTS", "WINDOW_BUCKETS", "Rates", "read_rates"]

EVENTS = ("dispatched", "succeeded", "retried", "dead", "resurrected", "handoff", "released")
"""Every event a script counts, in the order ``rl status`` shows them."""

WINDOW_BUCKETS = 6
"""Buckets summed for "the last minute": the current one and the five before it."""


@dataclass(frozen=True, slots=True)
class Rates:
    """Event counts over the last minute.

    Attributes:
        window_ms: the time the counts cover: from the start of the oldest
            bucket summed to now, between 50 and 60 s (the current bucket is
            still filling).
        counts: events in the window, for every name in :data:`EVENTS`.
        per_minute: ``counts`` scaled to one minute (``count * 60 s / window``).
    """

    window_ms: int
    counts: dict[str, int]
    per_minute: dict[str, float]


def read_rates(relier: Relier, now_ms: int | None = None) -> Rates:
    """Sum the last :data:`WINDOW_BUCKETS` buckets (one round trip)."""
    now = clock_now() if now_ms is None else now_ms
    first = now // STATS_BUCKET_MS * STATS_BUCKET_MS - (WINDOW_BUCKETS - 1) * STATS_BUCKET_MS
    names = [relier.keys.stats(first + n * STATS_BUCKET_MS) for n in range(WINDOW_BUCKETS)]
    with translate_errors(relier.settings.redis_url), relier.redis.pipeline(False) as pipe:
        for name in names:
            pipe.hgetall(name)
        buckets = pipe.execute()
    counts = dict.fromkeys(EVENTS, 0)
    for bucket in buckets:
        for field, value in bucket.items():
            event = field.decode()
            counts[event] = counts.get(event, 0) + int(value)
    window = max(now - first, 1)
    per_minute = {e: round(n * 60_000 / window, 1) for e, n in counts.items()}
    return Rates(window_ms=window, counts=counts, per_minute=per_minute)

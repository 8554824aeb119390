"""stats.read_rates: the last minute of event counts, from 10 s buckets."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from relier import Relier, load_settings
from relier.journal.keys import STATS_BUCKET_MS
from relier.ops.stats import EVENTS, WINDOW_BUCKETS, read_rates


@pytest.fixture
def rl(rl_redis_url: str) -> Iterator[Relier]:
    instance = Relier(load_settings(redis_url=rl_redis_url))
    yield instance
    instance.close()


def count(rl: Relier, at_ms: int, event: str, n: int) -> None:
    rl.redis.hincrby(rl.keys.stats(at_ms), event, n)


def test_sums_the_current_bucket_and_the_five_before(rl: Relier) -> None:
    now = 1_000_000_000_000 + 4_000  # 4 s into a bucket
    start = now - 4_000
    count(rl, now, "succeeded", 3)
    count(rl, start - 1, "succeeded", 2)  # the bucket before
    count(rl, start - (WINDOW_BUCKETS - 1) * STATS_BUCKET_MS, "dead", 1)  # oldest summed
    count(rl, start - WINDOW_BUCKETS * STATS_BUCKET_MS, "dead", 100)  # too old
    count(rl, now + STATS_BUCKET_MS, "dead", 100)  # the future (a fast clock elsewhere)
    rates = read_rates(rl, now)
    assert rates.window_ms == 54_000
    assert rates.counts == {**dict.fromkeys(EVENTS, 0), "succeeded": 5, "dead": 1}
    assert rates.per_minute["succeeded"] == round(5 * 60 / 54, 1)
    assert list(rates.counts)[: len(EVENTS)] == list(EVENTS)


def test_unknown_events_are_kept(rl: Relier) -> None:
    count(rl, 10_000, "deferred", 2)
    assert read_rates(rl, 10_000).counts["deferred"] == 2


def test_nothing_counted(rl: Relier) -> None:
    rates = read_rates(rl)
    assert set(rates.counts) == set(EVENTS)
    assert not any(rates.counts.values()) and not any(rates.per_minute.values())
    assert 50_000 <= rates.window_ms <= 60_000

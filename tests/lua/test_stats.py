"""The event counters every transition script keeps for ``rl status`` (relier.ops.stats)."""

from __future__ import annotations

from typing import cast

import redis

from relier.journal.keys import STATS_TTL_S
from relier.journal.scripts import NewTask, Scripts
from tests.lua.journal import KEYS, pending, running


def counts(client: redis.Redis, now: int) -> dict[str, int]:
    counters = cast("dict[bytes, bytes]", client.hgetall(KEYS.stats(now)))  # no decode_responses
    return {k.decode(): int(v) for k, v in counters.items()}


def test_buckets_are_ten_seconds_named_by_their_start() -> None:
    assert KEYS.stats(0) == KEYS.stats(9_999) == "rl:stats:0"
    assert KEYS.stats(25_000) == "rl:stats:20"
    assert KEYS.stats(1_795_690_203_449) == "rl:stats:1795690200"


def test_dispatch_counts_new_tasks_and_records_the_queue(
    scripts: Scripts, client: redis.Redis
) -> None:
    pending(scripts, "t1", queue="q")
    pending(scripts, "t2", queue="emails")
    # A duplicate of an existing id writes nothing, so counts nothing.
    assert not scripts.dispatch(NewTask("t1", "n", "q", b"{}", "tpl", "tag", 1_000, 0))[0]
    assert counts(client, 1_000) == {"dispatched": 2}
    assert 0 < client.ttl(KEYS.stats(1_000)) <= STATS_TTL_S
    assert client.smembers(KEYS.queues) == {b"q", b"emails"}
    assert client.ttl(KEYS.queues) == -1


def test_complete_counts_succeeded(scripts: Scripts, client: redis.Redis) -> None:
    fence = running(scripts)
    assert scripts.complete("t1", fence, b"1", 13_000, 60)
    assert scripts.complete("t1", fence, b"1", 13_001, 60)  # a retried commit: counted once
    assert counts(client, 13_000) == {"succeeded": 1}
    assert 0 < client.ttl(KEYS.stats(13_000)) <= STATS_TTL_S


def test_fail_counts_retried_then_dead(scripts: Scripts, client: redis.Redis) -> None:
    fence = running(scripts)
    assert scripts.fail("t1", fence, 13_000, 14_000, "", "e", "tb") == 1
    assert scripts.requeue("t1", "q", 14_000, "tag1") == 1
    fence = scripts.claim("t1", "w1", 14_100).fence
    assert scripts.fail("t1", fence, 15_000, 0, "max_retries", "e", "tb") == 2
    assert scripts.fail("t1", fence, 15_001, 0, "max_retries", "e", "tb") == 2  # lost reply
    assert counts(client, 13_000) == {"retried": 1, "dead": 1}


def test_dead_letter_counts_dead(scripts: Scripts, client: redis.Redis) -> None:
    pending(scripts)
    assert scripts.dead_letter("t1", 13_000, "unknown_task", "no such task")
    assert not scripts.dead_letter("t1", 13_001, "unknown_task", "no such task")
    assert counts(client, 13_000) == {"dead": 1}


def test_resurrect_counts_by_its_event(scripts: Scripts, client: redis.Redis) -> None:
    pending(scripts)
    for kind, n in (("child", 0), ("handoff", 1), ("child", 2)):
        scripts.claim("t1", "w1", 11_000 + n, 42)
        scripts.resurrect("t1", "w1", "q", 12_000 + n, f"r{n}", kind, 2, 100)
    assert counts(client, 12_000) == {"resurrected": 1, "handoff": 1, "dead": 1}


def test_defer_counts_only_when_it_gives_up(scripts: Scripts, client: redis.Redis) -> None:
    fence = running(scripts)
    assert scripts.defer("t1", fence, 13_000, "w1", (1_000, 4_000), 5_000, (3, 2), "x")[0] == 1
    assert counts(client, 13_000) == {}
    fence = scripts.claim("t1", "w1", 18_500).fence
    assert scripts.defer("t1", fence, 19_000, "w1", (1_000, 4_000), 5_000, (3, 2), "x")[0] == 2
    assert counts(client, 19_000) == {"dead": 1}


def test_refusals_count_nothing(scripts: Scripts, client: redis.Redis) -> None:
    fence = running(scripts)
    assert not scripts.complete("t1", fence + 1, b"1", 13_000, 60)
    assert scripts.fail("t1", fence + 1, 13_000, 0, "", "e", "tb") == 0
    assert not client.exists(KEYS.stats(13_000))

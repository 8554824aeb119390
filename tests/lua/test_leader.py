"""leader.lua: one resurrector at a time; the lock expires if its holder stops."""

from __future__ import annotations

import time

import redis

from relier.journal.scripts import Scripts
from tests.lua.journal import KEYS


def test_first_candidate_takes_the_lock(scripts: Scripts, client: redis.Redis) -> None:
    assert scripts.leader("w1", 5_000) is True
    assert client.get(KEYS.leader) == b"w1"
    assert 4_000 < client.pttl(KEYS.leader) <= 5_000


def test_holder_renews(scripts: Scripts, client: redis.Redis) -> None:
    scripts.leader("w1", 1_000)
    assert scripts.leader("w1", 60_000) is True
    assert client.pttl(KEYS.leader) > 50_000


def test_others_are_refused_while_it_is_held(scripts: Scripts, client: redis.Redis) -> None:
    scripts.leader("w1", 5_000)
    assert scripts.leader("w2", 5_000) is False
    assert client.get(KEYS.leader) == b"w1"


def test_lock_passes_on_once_it_expires(scripts: Scripts, client: redis.Redis) -> None:
    scripts.leader("w1", 100)
    time.sleep(0.2)
    assert scripts.leader("w2", 5_000) is True
    assert scripts.leader("w1", 5_000) is False
    assert client.get(KEYS.leader) == b"w2"

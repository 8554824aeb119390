"""admit.lua: dispatch's GCRA rate limit on its own, nothing journaled or published."""

from __future__ import annotations

import time

import pytest
import redis

from relier import AdmissionRejectedError, ConfigurationError, Relier, load_settings
from relier.journal.scripts import Scripts
from relier.tasks.admission import aadmit, admit
from tests.lua.journal import KEYS


def test_first_call_is_admitted_and_sets_the_arrival_time(
    scripts: Scripts, client: redis.Redis
) -> None:
    assert scripts.admit("http:a", 60_000, 1) == 0
    tat = float(client.get(KEYS.rate("http:a")) or 0)
    assert tat == pytest.approx(time.time() * 1000 + 60_000, abs=2_000)
    # The key lives about one interval: no limit leaves a key behind for long.
    assert 0 < client.pttl(KEYS.rate("http:a")) <= 60_001


def test_a_used_up_limit_refuses_with_the_exact_wait_and_changes_nothing(
    scripts: Scripts, client: redis.Redis
) -> None:
    assert scripts.admit("http:a", 60_000, 1) == 0
    before = client.get(KEYS.rate("http:a"))
    wait = scripts.admit("http:a", 60_000, 1)
    assert 59_000 <= wait <= 60_000
    assert client.get(KEYS.rate("http:a")) == before
    # Only the rate key is ever written.
    assert client.keys("*") == [KEYS.rate("http:a").encode()]


def test_burst_admits_exactly_burst_calls_at_once(scripts: Scripts) -> None:
    waits = [scripts.admit("http:b", 60_000, 3) for _ in range(4)]
    assert waits[:3] == [0, 0, 0]
    assert 59_000 <= waits[3] <= 60_000


def test_a_call_is_admitted_again_after_its_wait(scripts: Scripts) -> None:
    assert scripts.admit("http:c", 100, 1) == 0
    wait = scripts.admit("http:c", 100, 1)
    assert 0 < wait <= 100
    time.sleep(wait / 1000 + 0.01)
    assert scripts.admit("http:c", 100, 1) == 0


def test_limits_are_independent(scripts: Scripts) -> None:
    assert scripts.admit("http:d:alice", 60_000, 1) == 0
    assert scripts.admit("http:d:bob", 60_000, 1) == 0
    assert scripts.admit("http:d:alice", 60_000, 1) > 0


def test_admit_raises_admission_rejected_with_retry_after(rl_redis_url: str) -> None:
    relier = Relier(load_settings(redis_url=rl_redis_url))
    try:
        admit(relier, "http:e", 60_000)
        with pytest.raises(AdmissionRejectedError) as info:
            admit(relier, "http:e", 60_000)
        assert info.value.reason == "rate"
        assert info.value.task_name == "http:e"
        assert 59 <= info.value.retry_after <= 60
    finally:
        relier.close()


async def test_aadmit_shares_the_limit_with_admit(rl_redis_url: str) -> None:
    relier = Relier(load_settings(redis_url=rl_redis_url))
    try:
        await aadmit(relier, "http:f", 60_000, 2)
        admit(relier, "http:f", 60_000, 2)
        with pytest.raises(AdmissionRejectedError) as refused:
            await aadmit(relier, "http:f", 60_000, 2)
        assert 59 <= refused.value.retry_after <= 60
    finally:
        await relier.aclose()
        relier.close()


@pytest.mark.parametrize(
    ("name", "interval", "burst"), [("", 1.0, 1), ("a{b}", 1.0, 1), ("a", 0.0, 1), ("a", 1.0, 0)]
)
def test_admit_refuses_bad_limits_before_redis(name: str, interval: float, burst: int) -> None:
    # An unreachable Redis proves the check happens first.
    relier = Relier(load_settings(redis_url="redis://127.0.0.1:1/0"))
    with pytest.raises(ConfigurationError):
        admit(relier, name, interval, burst)

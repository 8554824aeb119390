"""Retry policy: which failures run again, and after how long."""

from __future__ import annotations

import random

import pytest

from relier.config import RelierSettings, load_settings
from relier.errors import ConfigurationError
from relier.tasks.retry import RetryPolicy


@pytest.fixture
def settings() -> RelierSettings:
    return load_settings(
        redis_url="redis://127.0.0.1:1/0",
        max_retries=3,
        retry_backoff=1.0,
        retry_backoff_max=300.0,
        retry_jitter=False,
    )


def test_defaults_come_from_settings(settings: RelierSettings) -> None:
    policy = RetryPolicy()
    assert policy.retries_allowed(settings) == 3
    assert policy.delay(1, settings, random.Random(0)) == 1.0


def test_should_retry_until_max_retries(settings: RelierSettings) -> None:
    policy = RetryPolicy(max_retries=2)
    exc = ValueError("x")
    assert [policy.should_retry(exc, n, settings) for n in (1, 2, 3, 4)] == [
        True,
        True,
        False,
        False,
    ]


def test_zero_retries_never_retries(settings: RelierSettings) -> None:
    assert not RetryPolicy(max_retries=0).should_retry(ValueError(), 1, settings)


def test_only_retry_on_classes_are_retried(settings: RelierSettings) -> None:
    policy = RetryPolicy(retry_on=(ConnectionError, TimeoutError))
    assert policy.should_retry(ConnectionRefusedError(), 1, settings)  # a subclass
    assert policy.should_retry(TimeoutError(), 1, settings)
    assert not policy.should_retry(ValueError(), 1, settings)
    assert not policy.should_retry(KeyboardInterrupt(), 1, settings)


def test_backoff_doubles_up_to_the_cap(settings: RelierSettings) -> None:
    policy = RetryPolicy(backoff=0.5, backoff_max=3.0, jitter=False)
    rng = random.Random(0)
    assert [policy.delay(n, settings, rng) for n in range(1, 7)] == [0.5, 1, 2, 3, 3, 3]


def test_settings_backoff_is_used_when_unset() -> None:
    s = load_settings(retry_backoff=2.0, retry_backoff_max=5.0, retry_jitter=False)
    assert [RetryPolicy().delay(n, s, random.Random(0)) for n in (1, 2, 3)] == [2, 4, 5]


def test_full_jitter_stays_within_the_backoff(settings: RelierSettings) -> None:
    policy = RetryPolicy(backoff=1.0, backoff_max=8.0, jitter=True)
    rng = random.Random(1234)
    for attempt in range(1, 8):
        cap = min(8.0, 2 ** (attempt - 1))
        delays = [policy.delay(attempt, settings, rng) for _ in range(200)]
        assert all(0 <= d <= cap for d in delays)
        assert max(delays) - min(delays) > cap / 2  # really spread out


def test_jitter_is_reproducible_with_a_seed(settings: RelierSettings) -> None:
    policy = RetryPolicy(jitter=True)
    first = [policy.delay(3, settings, random.Random(7)) for _ in range(3)]
    assert len(set(first)) == 1


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_retries": -1},
        {"backoff": 0},
        {"backoff": -1.0},
        {"backoff_max": 0},
        {"retry_on": (ValueError, "TypeError")},
        {"retry_on": (int,)},
    ],
)
def test_invalid_policy_is_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]

"""Preflight: Redis 7+, AOF on, noeviction, or a refusal that names the fix."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis

from relier import PreflightError, RedisUnavailableError
from relier.journal.preflight import MIN_VERSION, _version_tuple, check, require


@pytest.fixture
def extra(rl_redis: Any) -> Iterator[Any]:
    """Start extra servers with ``extra(*args)``; each is stopped after the test."""
    started: list[Any] = []

    def start(*args: str) -> Any:
        server = rl_redis.start_extra(*args)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def run_check(server: Any, url: str | None = None, **client_options: Any) -> Any:
    client = server.client(**client_options)
    try:
        return check(client, url or server.url)
    finally:
        client.close()


def test_session_server_passes(rl_redis: Any, rl_redis_url: str) -> None:
    report = run_check(rl_redis)
    assert report.ok
    assert report.problems == []
    assert report.appendonly is True
    assert report.maxmemory_policy == "noeviction"
    assert report.source == "CONFIG GET"
    assert _version_tuple(report.version) >= MIN_VERSION
    assert report.url == rl_redis_url


def test_require_returns_the_report_when_fit(rl_redis: Any, rl_redis_url: str) -> None:
    client = rl_redis.client()
    try:
        assert require(client, rl_redis_url).ok
    finally:
        client.close()


def test_aof_off_is_refused_with_the_fix(extra: Any) -> None:
    server = extra("--appendonly", "no")
    report = run_check(server)
    assert not report.ok
    assert report.appendonly is False
    (problem,) = report.problems
    assert "appendonly is off" in problem
    assert f"`redis-cli -u {server.url} CONFIG SET appendonly yes`" in problem
    assert "`appendonly yes` to redis.conf" in problem


def test_evicting_policy_is_refused_with_the_fix(extra: Any) -> None:
    server = extra("--maxmemory-policy", "allkeys-lru")
    report = run_check(server)
    assert report.maxmemory_policy == "allkeys-lru"
    (problem,) = report.problems
    assert "maxmemory-policy is allkeys-lru" in problem
    assert f"`redis-cli -u {server.url} CONFIG SET maxmemory-policy noeviction`" in problem
    assert "`maxmemory-policy noeviction` to redis.conf" in problem


def test_require_raises_listing_every_problem(extra: Any) -> None:
    server = extra("--appendonly", "no", "--maxmemory-policy", "volatile-lru")
    client = server.client()
    try:
        with pytest.raises(PreflightError) as info:
            require(client, server.url)
    finally:
        client.close()
    assert len(info.value.problems) == 2
    message = str(info.value)
    assert message.startswith(f"Redis at {server.url} is not safe for Relier")
    assert "CONFIG SET appendonly yes" in message
    assert "CONFIG SET maxmemory-policy noeviction" in message


def test_info_is_read_when_config_is_disabled(extra: Any) -> None:
    # Managed Redis services often rename or disable CONFIG.
    fit = run_check(extra("--rename-command", "CONFIG", ""))
    assert fit.ok
    assert fit.source == "INFO"
    assert (fit.appendonly, fit.maxmemory_policy) == (True, "noeviction")
    unfit = run_check(
        extra("--rename-command", "CONFIG", "", "--appendonly", "no", "--maxmemory-policy",
              "allkeys-random")
    )  # fmt: skip
    assert unfit.source == "INFO"
    assert (unfit.appendonly, unfit.maxmemory_policy) == (False, "allkeys-random")
    assert len(unfit.problems) == 2


def test_password_is_never_shown(extra: Any) -> None:
    server = extra("--appendonly", "no")
    # Set after start: the fixture waits for a PING that a password would refuse.
    with server.client() as admin:
        admin.config_set("requirepass", "s3cret")
    url = f"redis://:s3cret@{server.host}:{server.port}/0"
    report = run_check(server, url, password="s3cret")
    assert report.url == f"redis://:***@{server.host}:{server.port}/0"
    assert report.problems
    assert all("s3cret" not in p for p in report.problems)


def test_unreachable_redis_raises_redis_unavailable() -> None:
    url = "redis://:pw@127.0.0.1:1/0"
    client = redis.Redis.from_url(url, socket_connect_timeout=1)
    try:
        with pytest.raises(RedisUnavailableError) as info:
            check(client, url)
        with pytest.raises(RedisUnavailableError):
            require(client, url)
    finally:
        client.close()
    assert "127.0.0.1:1" in str(info.value)
    assert ":pw@" not in str(info.value)


@pytest.mark.parametrize(
    ("text", "too_old"),
    [("6.2.14", True), ("5.0.7", True), ("7.0.15", False), ("7.2.4", False), ("8.0.0", False)],
)
def test_version_threshold(text: str, too_old: bool) -> None:
    assert (_version_tuple(text) < MIN_VERSION) is too_old

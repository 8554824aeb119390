"""Fixtures of the Lua script tests: a client on the test's (flushed) Redis, and the scripts."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis

from relier.journal.scripts import Scripts
from tests.lua.journal import HMAX, KEYS


@pytest.fixture
def client(rl_redis_url: str, rl_redis: Any) -> Iterator[redis.Redis]:
    c = rl_redis.client()
    yield c
    c.close()


@pytest.fixture
def scripts(client: redis.Redis) -> Scripts:
    return Scripts(client, KEYS, HMAX)

"""Fixtures of the Lua script tests: a client on the test's (flushed) Redis, and the scripts."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis

from relier.journal.scripts import Scripts
from tests.lua.journal import HMAX, KEYS


@pytest.fixture
def client(redis_url: str, redis_server: Any) -> Iterator[redis.Redis]:
    c = redis_server.client()
    yield c
    c.close()


@pytest.fixture
def scripts(client: redis.Redis) -> Scripts:
    return Scripts(client, KEYS, HMAX)

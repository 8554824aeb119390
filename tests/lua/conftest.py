"""Fixtures of the Lua script tests: a client on the test's (flushed) Redis, and the scripts."""

from __future__ import annotations

import pytest
import redis

from relier.journal.scripts import Scripts
from tests.lua.journal import HMAX, KEYS


@pytest.fixture
def scripts(client: redis.Redis) -> Scripts:
    return Scripts(client, KEYS, HMAX)

"""Shared test configuration.

The fixtures (``rl_redis``, ``rl_redis_url``, ``rl_env``, ``rl_worker``, ``rl_cli``) come
from the ``relier.testing`` plugin, which pytest loads through the ``pytest11`` entry point.
``pytester`` is enabled to test that plugin from the outside.
"""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

import relier
import relier.hub
from relier.testing import RedisServer

pytest_plugins = ["pytester"]

# The slow lane, by where a test lives: real worker processes (integration, chaos),
# live servers and a browser (adapters' *_live, dashboard, schema fuzzing), and
# building the wheel. ``./scripts/test -m "not slow"`` is the fast lane.
_SLOW_FOLDERS = ("integration", "chaos")
_SLOW_FILES = frozenset(
    {
        "test_dashboard_browser.py",
        "test_django_live.py",
        "test_fastapi_live.py",
        "test_flask_live.py",
        "test_fastapi_schemathesis.py",
        "test_packaging.py",
    }
)
_TESTS = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        parts = item.path.resolve().relative_to(_TESTS).parts
        if parts[0] in _SLOW_FOLDERS or item.path.name in _SLOW_FILES:
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def client(rl_redis: RedisServer, rl_redis_url: str) -> Iterator[redis.Redis]:
    """A client of the test's Redis (flushed by ``rl_redis_url``), replies as bytes."""
    c = rl_redis.client()
    yield c
    c.close()


@pytest.fixture
def default_relier(rl_redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[relier.Relier]:
    """The process default Relier (what ``task.push`` uses) on the test's Redis, built
    from a clean environment: no ``RELIER_*`` variable of the shell leaks in."""
    for name in list(os.environ):
        if name.startswith("RELIER_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("RELIER_REDIS_URL", rl_redis_url)
    relier.hub.reset()
    yield relier.hub.current()
    relier.hub.reset()

"""Shared test configuration.

The fixtures (``redis_server``, ``redis_url``, ``relier_env``, ``rl_worker``, ``rl_cli``) come
from the ``relier.testing`` plugin, which pytest loads through the ``pytest11`` entry point.
``pytester`` is enabled to test that plugin from the outside.
"""

import os
from collections.abc import Iterator

import pytest

import relier
import relier.hub

pytest_plugins = ["pytester"]


@pytest.fixture
def default_relier(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[relier.Relier]:
    """The process default Relier (what ``task.push`` uses) on the test's Redis, built
    from a clean environment: no ``RELIER_*`` variable of the shell leaks in."""
    for name in list(os.environ):
        if name.startswith("RELIER_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("RELIER_REDIS_URL", redis_url)
    relier.hub.reset()
    yield relier.hub.current()
    relier.hub.reset()

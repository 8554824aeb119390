from __future__ import annotations

from collections.abc import Iterator

import pytest

import relier
from relier.hub import reset


@pytest.fixture
def rl(rl_redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[relier.Relier]:
    """The process-default Relier, pointed at the test's Redis (what task.push uses)."""
    monkeypatch.setenv("RELIER_REDIS_URL", rl_redis_url)
    reset()
    yield relier.current()
    reset()

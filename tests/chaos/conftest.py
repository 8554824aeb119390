"""Chaos fixtures: the ledger, fast-lease worker settings, and the figures report.

Each scenario reports what it measured (kill → restart latencies, counts)
with ``chaos_report(name, **figures)``: printed (run pytest with ``-s``), and
appended as one JSON line to the file named by ``RELIER_CHAOS_REPORT`` when
it is set (figures for the docs).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import Any

import pytest

from relier import Relier
from tests.chaos.ledger import Ledger
from tests.integration.conftest import rl

__all__ = ["rl"]

APP = "tests.chaos.apps"
# Fast liveness for the scenarios that wait out a lease on purpose (a frozen
# worker, a GIL hog): the defaults' 2 s lease would only make them slower.
FAST = {
    "RELIER_LEASE_TTL_MS": "1000",
    "RELIER_LEASE_RENEW_MS": "200",
    "RELIER_SCAN_INTERVAL_MS": "200",
}

Report = Callable[..., None]


@pytest.fixture
def ledger(rl: Relier) -> Ledger:
    return Ledger(rl)


@pytest.fixture
def fast_env(rl_env: dict[str, str]) -> dict[str, str]:
    """Worker environment with a 1 s lease renewed every 0.2 s, scanned every 0.2 s."""
    return {**rl_env, **FAST}


@pytest.fixture
def chaos_report(request: pytest.FixtureRequest) -> Report:
    """``chaos_report(scenario, **figures)``: print the figures and append them as JSON."""

    def report(scenario: str, **figures: Any) -> None:
        line = {"scenario": scenario, "test": request.node.nodeid, "at": time.time(), **figures}
        print(f"\n[chaos] {scenario}: {json.dumps(figures, sort_keys=True)}")
        path = os.environ.get("RELIER_CHAOS_REPORT")
        if path:
            with open(path, "a", encoding="utf-8") as out:
                out.write(json.dumps(line, sort_keys=True) + "\n")

    return report

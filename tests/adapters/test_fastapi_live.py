"""The FastAPI example (examples/fastapi_app) live: uvicorn in a subprocess and a
real worker, driven over HTTP with httpx.

Push, result, 429 with Retry-After (from a task's rate limit and from a
route limit), a task that dies, its release through the admin API and its
second run on the worker, and the admin API's 401/403.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from relier.localredis import free_port
from relier.testing import WorkerFactory
from tests.adapters._live import assert_429, outcome, serve

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "fastapi_app"
TOKEN = "live-test-admin-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def env(rl_env: dict[str, str]) -> dict[str, str]:
    return {**rl_env, "RELIER_ADMIN_TOKEN": TOKEN, "PYTHONPATH": str(EXAMPLE)}


@pytest.fixture
def server(env: dict[str, str], tmp_path: Path) -> Iterator[httpx.Client]:
    """uvicorn serving the example app; an httpx client on it."""
    port = free_port()
    with serve(
        [sys.executable, "-m", "uvicorn", "app:app", "--app-dir", str(EXAMPLE),
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        port=port, env=env, log=tmp_path / "uvicorn.log",
        ready_path="/relier/health", ready_headers=AUTH,
    ) as client:  # fmt: skip
        yield client


def test_the_example_app_over_http_with_a_real_worker(
    server: httpx.Client, rl_worker: WorkerFactory, env: dict[str, str]
) -> None:
    rl_worker("tasks", env=env)

    # The admin API wants the token.
    assert server.get("/relier/status").status_code == 401
    assert server.get("/relier/status", headers={"Authorization": "Bearer nope"}).status_code == 403
    workers = server.get("/relier/workers", headers=AUTH).json()
    assert [w["alive"] for w in workers] == [True]

    # Push through the dependency; the worker runs it.
    task_id = server.post("/signup", params={"email": "ada@example.com"}).json()["task_id"]
    assert outcome(server, task_id) == {
        "id": task_id, "state": "SUCCEEDED", "result": "welcome mail sent to ada@example.com"
    }  # fmt: skip

    # A task's rate limit (1/s per user): 429 with Retry-After, then admitted again.
    assert server.post("/notify/alice", params={"text": "1"}).status_code == 200
    wait = assert_429(server.post("/notify/alice", params={"text": "2"}))
    assert 0 < wait <= 1
    assert server.post("/notify/bob", params={"text": "1"}).status_code == 200
    time.sleep(wait + 0.05)
    third = server.post("/notify/alice", params={"text": "3"})
    assert third.status_code == 200
    assert outcome(server, third.json()["task_id"])["result"] == "notified alice: 3"

    # A route limit (5/s, burst 5, per client address) refuses before the endpoint.
    codes = [server.get("/quote").status_code for _ in range(10)]
    assert codes[:5] == [200] * 5 and 429 in codes[5:], codes
    refused = next(r for r in (server.get("/quote") for _ in range(10)) if r.status_code == 429)
    assert 0 < assert_429(refused) <= 0.2

    # A task that dies, seen and released through the admin API, runs again.
    dead_id = server.post("/exports/nope").json()["task_id"]
    died = outcome(server, dead_id)
    assert (died["state"], died["reason"]) == ("DEAD", "not_retryable")
    entries = server.get("/relier/dlq", headers=AUTH).json()["entries"]
    assert [(e["id"], e["reason"]) for e in entries] == [(dead_id, "not_retryable")]
    shown = server.get(f"/relier/dlq/{dead_id}", headers=AUTH).json()
    assert "KeyError" in shown["traceback"]
    released = server.post("/relier/dlq/release", json={"ids": [dead_id]}, headers=AUTH)
    assert released.status_code == 200
    assert list(released.json()["released"]) == [dead_id]
    deadline = time.monotonic() + 15
    while True:
        detail = server.get(f"/relier/tasks/{dead_id}", headers=AUTH).json()
        events = [e["e"] for e in detail["history"]]
        if detail["state"] == "DEAD" and "released" in events:
            break
        assert time.monotonic() < deadline, detail
        time.sleep(0.1)
    # It ran again on the worker after the release, and died again.
    assert events.index("released") < len(events) - 1
    assert events.count("started") == 2, events
    # The purge needs the token too, then empties the DLQ.
    assert server.post("/relier/dlq/purge", json={"ids": [dead_id]}).status_code == 401
    purged = server.post("/relier/dlq/purge", json={"ids": [dead_id]}, headers=AUTH).json()
    assert purged == {"purged": [dead_id], "refused": {}}

    status = server.get("/relier/status", headers=AUTH).json()
    assert status["workers_alive"] == 1 and status["dlq"] == 0
    assert status["rates"]["counts"]["succeeded"] >= 3
    assert server.get("/relier/", headers={}).status_code == 200

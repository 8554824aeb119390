"""Helpers for the adapters' live tests: a web server in a subprocess, driven with httpx.

``serve`` starts any server command (uvicorn, ``flask run``, ...) in its own
process group, waits until a URL answers 200, yields an httpx client on it
and stops the server. ``assert_429`` and ``outcome`` check what every
example app answers the same way.
"""

from __future__ import annotations

import contextlib
import math
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import httpx
import pytest

from relier.localredis import die_with_parent


@contextlib.contextmanager
def serve(
    command: Sequence[str],
    *,
    port: int,
    env: Mapping[str, str],
    log: Path,
    cwd: Path | None = None,
    ready_path: str = "/",
    ready_headers: Mapping[str, str] | None = None,
    timeout: float = 20.0,
) -> Iterator[httpx.Client]:
    """Run ``command`` until the ``with`` block ends; an httpx client on ``port``.

    Fails the test (with the server's log) when ``ready_path`` does not
    answer 200 within ``timeout`` seconds or the server exits first.
    """
    with log.open("wb") as out:
        proc = subprocess.Popen(
            list(command), cwd=cwd, env=dict(env), stdin=subprocess.DEVNULL, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=die_with_parent(),
        )  # fmt: skip
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    if client.get(ready_path, headers=ready_headers).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"{command[0]} ... did not start; its log:\n{log.read_text()}")
                time.sleep(0.05)
            yield client
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def outcome(client: httpx.Client, task_id: str) -> dict[str, object]:
    """``GET /tasks/<id>?wait=15`` of an example app: the task's end."""
    response = client.get(f"/tasks/{task_id}", params={"wait": 15})
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


def assert_429(response: httpx.Response) -> float:
    """A 429 problem with a matching integer Retry-After; returns its ``retry_after``."""
    assert response.status_code == 429, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 429 and problem["title"] == "Too Many Requests"
    retry_after: float = problem["retry_after"]
    assert response.headers["Retry-After"] == str(max(1, math.ceil(retry_after)))
    return retry_after

"""The FastAPI dashboard in a real browser: headless Chromium driven by Playwright.

uvicorn serves ``tests/adapters/_dashboard_app.py`` in a subprocess and a real
worker runs its tasks. The test signs in with the admin token through the
page's form, sees slow tasks in "Running now", releases a dead letter with
the row's Release button (the task failed with ``max_retries=0``; a Redis flag
makes its second run succeed), sees the task's detail turn SUCCEEDED, and
takes a screenshot of the page. It goes to the test's temporary directory;
with ``UPDATE_DOCS_SCREENSHOTS=1`` it replaces docs/img/dashboard.png (shown
in docs/integrations.md), so a plain test run never changes a tracked file.

The browser is Debian's ``chromium`` package (``/usr/bin/chromium``, or the
path in ``RELIER_TEST_CHROMIUM``); ``./scripts/test`` installs it when it is
missing and it runs as root. Without it this test fails, never skips.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from relier.localredis import free_port
from relier.testing import WorkerFactory

from ._live import serve

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = ROOT / "docs" / "img" / "dashboard.png"
TOKEN = "browser-test-admin-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
APP = "tests.adapters._dashboard_app"
# The Redis flags its tasks read (not imported: the module builds its app at import).
SLOW_DONE = "dashboard-test:slow-done"
FIXED = "dashboard-test:fixed"
# As root, Chromium needs --no-sandbox; the rest keep it off the (closed) network.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
TIMEOUT_MS = 15_000


def chromium_path() -> str:
    """The Chromium binary; fails the test with what to do when there is none."""
    wanted = os.environ.get("RELIER_TEST_CHROMIUM", "/usr/bin/chromium")
    found = shutil.which(wanted)
    if found is None:
        pytest.fail(
            f"Chromium not found at {wanted}: run ./scripts/test as root (it installs it), or "
            "`sudo apt-get install -y chromium`, or set RELIER_TEST_CHROMIUM to a Chromium binary",
            pytrace=False,
        )
    return found


@pytest.fixture
def env(rl_env: dict[str, str]) -> dict[str, str]:
    return {**rl_env, "RELIER_ADMIN_TOKEN": TOKEN}


@pytest.fixture
def server(env: dict[str, str], tmp_path: Path) -> Iterator[httpx.Client]:
    port = free_port()
    command = [
        sys.executable, "-m", "uvicorn", f"{APP}:app", "--app-dir", str(ROOT),
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
    ]  # fmt: skip
    with serve(
        command, port=port, env=env, log=tmp_path / "uvicorn.log", cwd=ROOT,
        ready_path="/relier/health", ready_headers=AUTH,
    ) as client:  # fmt: skip
        yield client


def push(client: httpx.Client, name: str, arg: object) -> str:
    response = client.post(f"/push/{name}", params={"arg": str(arg)})
    assert response.status_code == 200, response.text
    task_id: str = response.json()["task_id"]
    return task_id


def test_the_dashboard_in_chromium_during_a_live_load(
    server: httpx.Client,
    rl_worker: WorkerFactory,
    env: dict[str, str],
    rl_redis_url: str,
    tmp_path: Path,
) -> None:
    executable = chromium_path()
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        pytest.fail("playwright is not installed: pip install -e '.[dev]'", pytrace=False)

    flags = redis.Redis.from_url(rl_redis_url)
    # Three pool processes: two slow tasks run while the released one gets the third.
    rl_worker(APP, env=env, concurrency=3)

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(TIMEOUT_MS)
        expect.set_options(timeout=TIMEOUT_MS)
        js_errors: list[str] = []
        page.on("pageerror", lambda exc: js_errors.append(str(exc)))
        console_errors: list[str] = []
        page.on(
            "console", lambda msg: console_errors.append(msg.text) if msg.type == "error" else None
        )
        try:
            page.goto(f"{server.base_url}/relier/")

            # The API answers 401 without the token: the page asks for it.
            expect(page.locator("#login")).to_be_visible()
            page.fill("#token", TOKEN)
            page.click("#login button[type=submit]")
            expect(page.locator("#login")).to_be_hidden()
            console_errors.clear()  # the 401s that asked for the token
            expect(page.locator("#workers tbody")).to_contain_text("w1@")
            expect(page.locator("#workers tbody")).to_contain_text("yes")

            # Some finished work for the rates, and two dead letters.
            for n in range(5):
                push(server, "quick", n)
            fixable = push(server, "fragile", "sales")
            broken = push(server, "fragile", "signups")
            dlq_rows = page.locator("#dlq tbody tr").filter(has=page.locator("button"))
            expect(dlq_rows).to_have_count(2)
            expect(dlq_rows.filter(has_text=fixable)).to_contain_text("the sales report")

            # A live load: two slow tasks show up in "Running now".
            slow = [push(server, "slow", n) for n in range(2)]
            inflight = page.locator("#inflight tbody tr")
            for task_id in slow:
                expect(inflight.filter(has_text=task_id)).to_contain_text("RUNNING")
            expect(inflight.filter(has_text=slow[0])).to_contain_text("dashboard.slow")
            expect(page.locator('[data-field="running"]')).to_have_text("2")
            expect(page.locator('[data-field="dlq"]')).to_have_text("2")

            # Open the dead task's history, fix the cause, press Release.
            row = dlq_rows.filter(has_text=fixable)
            row.locator("a.task").click()
            expect(page.locator("#detail")).to_be_visible()
            expect(page.locator("#detail-fields")).to_contain_text("DEAD")
            flags.set(FIXED, "1")
            row.get_by_role("button", name="Release").click()

            # It leaves the DLQ, runs again on the worker, and succeeds.
            expect(dlq_rows).to_have_count(1)
            expect(dlq_rows.filter(has_text=broken)).to_have_count(1)
            expect(page.locator("#detail-fields")).to_contain_text("SUCCEEDED")
            expect(page.locator("#detail-fields")).to_contain_text('"sales exported"')
            expect(page.locator("#detail-history")).to_contain_text("released")
            expect(page.locator('[data-field="dlq"]')).to_have_text("1")
            # The slow tasks still run: the screenshot shows a busy dashboard.
            expect(inflight.filter(has_text=slow[1])).to_contain_text("RUNNING")
            expect(page.locator("#error")).to_be_hidden()
            update_docs = bool(os.environ.get("UPDATE_DOCS_SCREENSHOTS"))
            shot = SCREENSHOT if update_docs else tmp_path / "page.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000, "the screenshot is (nearly) empty"
        except BaseException:
            failed = tmp_path / "failure.png"
            with contextlib.suppress(Exception):
                page.screenshot(path=str(failed), full_page=True)
                print(f"the page when the test failed: {failed}")
            raise
        finally:
            flags.set(SLOW_DONE, "1")
            flags.close()
            browser.close()
        assert js_errors == [], js_errors
        assert console_errors == [], console_errors

    # Let go, the slow tasks end.
    deadline = time.monotonic() + 10
    for task_id in slow:
        while True:
            state = server.get(f"/relier/tasks/{task_id}", headers=AUTH).json()["state"]
            if state == "SUCCEEDED":
                break
            assert time.monotonic() < deadline, (task_id, state)
            time.sleep(0.05)

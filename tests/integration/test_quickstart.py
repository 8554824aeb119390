"""docs/quickstart.md, followed as a new user would: its own code, run for real.

The Python blocks of the page are written out as the files and scripts the page
describes (``myproject/tasks.py``, the push and result scripts, ``myproject/celery.py``)
in a fresh directory; ``rl preflight`` and ``rl worker -A myproject.tasks -c 4 -Q
emails,celery`` run there against a private redis-server, then each script must exit
0 and print what the page says. Nothing is copied into this file: when the page
changes, this test runs the new text.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from relier.testing import CliRunner, WorkerFactory
from tests.test_docs import fenced_blocks

PAGE = "docs/quickstart.md#"
# The broker URL the page's own-Celery-app block names (the default RELIER_REDIS_URL).
PAGE_BROKER = "redis://127.0.0.1:6379/0"


def page_blocks() -> list[str]:
    blocks = [src for name, src in fenced_blocks({"python"}) if name.startswith(PAGE)]
    assert len(blocks) == 5, (
        f"docs/quickstart.md should have 5 python blocks (tasks, push, results, own Celery "
        f"app, DLQ), found {len(blocks)}: update this test with the page"
    )
    return blocks


def run_script(path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, path.name],
        cwd=path.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A fresh directory holding the page's ``myproject/tasks.py`` and its scripts."""
    tasks, push, results, own_app, dlq = page_blocks()
    (tmp_path / "myproject").mkdir()
    (tmp_path / "myproject" / "tasks.py").write_text(tasks)
    (tmp_path / "push.py").write_text(push)
    (tmp_path / "results.py").write_text(results)
    (tmp_path / "dlq.py").write_text(dlq)
    (tmp_path / "own_app.py").write_text(own_app)
    return tmp_path


def test_the_quickstart_runs_start_to_finish(
    project: Path, rl_env: dict[str, str], rl_redis_url: str
) -> None:
    rl = CliRunner(rl_env, project)
    preflight = rl("preflight")
    assert preflight.returncode == 0, preflight.stdout + preflight.stderr
    assert "OK: Redis is safe for Relier" in preflight.stdout

    workers = WorkerFactory(rl_env, project, project / "logs")
    try:
        worker = workers("myproject.tasks", concurrency=4, queues="emails,celery")
        pushed = run_script(project / "push.py", rl_env)
        assert pushed.returncode == 0, pushed.stdout + pushed.stderr
        assert "{'product': 7, 'cents': 1999}" in pushed.stdout

        results = run_script(project / "results.py", rl_env)
        assert results.returncode == 0, results.stdout + results.stderr
        first = results.stdout.split()
        assert first[1] in {"PENDING", "RESERVED", "RUNNING", "SUCCEEDED"}, results.stdout
        assert "in the dead letter queue" not in results.stdout, results.stdout

        dlq = run_script(project / "dlq.py", rl_env)
        assert dlq.returncode == 0, dlq.stdout + dlq.stderr
        assert dlq.stdout.startswith("0 dead tasks"), dlq.stdout
        worker.wait_for_log("sending vip to user 3")
        worker.wait_for_log("{'sku': 'B-2'}")  # print's arguments are logged apart
    finally:
        workers.close()


def test_the_quickstarts_own_celery_app_runs_the_tasks(
    project: Path, rl_env: dict[str, str], rl_redis_url: str
) -> None:
    own_app = (project / "own_app.py").read_text()
    assert PAGE_BROKER in own_app, f"the page's own-app block no longer names {PAGE_BROKER}"
    (project / "myproject" / "celery.py").write_text(own_app.replace(PAGE_BROKER, rl_redis_url))
    workers = WorkerFactory(rl_env, project, project / "logs")
    try:
        workers("myproject.celery:app", concurrency=2, queues="emails,celery")
        script = project / "fetch.py"
        script.write_text(
            "from myproject.tasks import fetch_price\n"
            "print(fetch_price.push(11).result(timeout=30))\n"
        )
        fetched = run_script(script, rl_env)
        assert fetched.returncode == 0, fetched.stdout + fetched.stderr
        assert fetched.stdout.strip() == "{'product': 11, 'cents': 1999}"
    finally:
        workers.close()

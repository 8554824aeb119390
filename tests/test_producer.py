"""A process that only pushes carries no worker machinery.

A web process imports ``relier``, binds its Celery app and pushes. None of that may
import the worker runtime (``relier.worker``), connect Celery worker signals or
patch kombu: each happens in the worker's bootstep, which Celery imports by dotted
path only when it builds a worker. Checked in a fresh interpreter, where nothing
else has imported anything yet.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from relier.hub import WORKER_STEP

_PUSH_THEN_REPORT = textwrap.dedent(
    """
    import json, sys
    from celery import Celery
    from celery.signals import task_received, worker_ready
    from kombu.transport import redis as kombu_redis

    channel_before = dict(vars(kombu_redis.Channel))
    import relier
    from relier import rl_task

    app = Celery("producer", broker=sys.argv[1])
    relier.bind(app)

    @rl_task(name="tests.producer.noop")
    def noop(n: int) -> int:
        return n

    handle = noop.push(1)
    assert handle.state() == "PENDING", handle.state()
    print(json.dumps({
        "worker_modules": sorted(m for m in sys.modules if m.startswith("relier.worker")),
        "receivers": len(task_received.receivers) + len(worker_ready.receivers),
        "patched": sorted(k for k, v in vars(kombu_redis.Channel).items()
                          if channel_before.get(k) is not v),
        "steps": sorted(str(s) for s in app.steps["worker"]),
    }))
    """
)


def _report(rl_redis_url: str) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", _PUSH_THEN_REPORT, rl_redis_url],
        env={k: v for k, v in os.environ.items() if not k.startswith("RELIER_")}
        | {"RELIER_REDIS_URL": rl_redis_url},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    report: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return report


def test_importing_and_pushing_loads_no_worker_module(rl_redis_url: str) -> None:
    assert _report(rl_redis_url)["worker_modules"] == []


def test_importing_and_pushing_connects_no_worker_signal(rl_redis_url: str) -> None:
    assert _report(rl_redis_url)["receivers"] == 0


def test_importing_and_pushing_patches_nothing_in_kombu(rl_redis_url: str) -> None:
    assert _report(rl_redis_url)["patched"] == []


def test_a_bound_app_names_the_worker_step_by_dotted_path(rl_redis_url: str) -> None:
    assert _report(rl_redis_url)["steps"] == [WORKER_STEP]


def test_the_dotted_path_names_the_bootstep() -> None:
    from celery.utils.imports import symbol_by_name

    from relier.worker.bootstep import RelierStep

    assert symbol_by_name(WORKER_STEP) is RelierStep

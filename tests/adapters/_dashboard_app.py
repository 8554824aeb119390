"""The app and tasks of the dashboard's browser test (tests/adapters/test_dashboard_browser.py).

Both uvicorn (``tests.adapters._dashboard_app:app``) and the worker
(``rl worker -A tests.adapters._dashboard_app``) import this module, so the
tasks' names agree. The tasks are steered through Redis flags, which the test
sets: ``slow`` runs until ``SLOW_DONE`` is set, ``fragile`` fails until
``FIXED`` is set (with ``max_retries=0`` its first failure sends it to the
dead letter queue).
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import Depends, FastAPI

import relier
from relier import rl_task
from relier_fastapi import Dispatcher, relier_admin_router, relier_dispatcher, relier_lifespan

SLOW_DONE = "dashboard-test:slow-done"
FIXED = "dashboard-test:fixed"


@rl_task(name="dashboard.slow")
def slow(n: int) -> int:
    """Runs until the test sets ``SLOW_DONE`` (30 s at most)."""
    redis = relier.current().redis
    deadline = time.monotonic() + 30
    while not redis.exists(SLOW_DONE) and time.monotonic() < deadline:
        time.sleep(0.05)
    return n


@rl_task(name="dashboard.fragile", max_retries=0)
def fragile(report: str) -> str:
    """Fails (straight to the DLQ) until the test sets ``FIXED``."""
    if not relier.current().redis.exists(FIXED):
        raise RuntimeError(f"the {report} report is not ready yet")
    return f"{report} exported"


@rl_task(name="dashboard.quick")
def quick(n: int) -> int:
    return n * 2


app = FastAPI(lifespan=relier_lifespan)
# The token comes from RELIER_ADMIN_TOKEN; a fast refresh keeps the test short.
app.include_router(relier_admin_router(refresh_seconds=0.5))

Pusher = Annotated[Dispatcher, Depends(relier_dispatcher)]


@app.post("/push/{name}")
async def push(name: str, arg: str, dispatcher: Pusher) -> dict[str, str]:
    """Push ``slow``, ``fragile`` or ``quick`` with one argument; its id."""
    if name == "slow":
        handle = await dispatcher.push(slow, int(arg))
    elif name == "quick":
        handle = await dispatcher.push(quick, int(arg))
    else:
        handle = await dispatcher.push(fragile, arg)
    return {"task_id": handle.id}

"""Tasks the ``rl demo`` workers run: a realistic little mix.

Payment bodies count their runs in :data:`CHARGE_RUNS` (a hash, payment id ->
runs) so the demo can show runs cut short by a kill apart from commits.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import time

from relier import hub as _app
from relier.context import TaskContext
from relier.tasks.decorator import rl_task

# Its own queue, so a demo pointed at a shared Redis never takes (and
# dead-letters as unknown) another application's tasks.
QUEUE = "relier-demo"
CHARGE_RUNS = "relier-demo:charge-runs"
REPORT_STEPS = 5


@rl_task(name="relier.demo.fetch_quote", queue=QUEUE)
async def fetch_quote(order_id: int) -> dict[str, object]:
    """An async task: waits on "the network", then prices an order."""
    await asyncio.sleep(0.02)
    return {"order": order_id, "price_cents": 1000 + order_id % 97}


@rl_task(name="relier.demo.make_invoice", queue=QUEUE)
def make_invoice(order_id: int) -> str:
    """A sync, CPU-bound task: renders and hashes an invoice."""
    body = f"invoice for order {order_id}".encode() * 200
    return hashlib.sha256(body).hexdigest()[:16]


@rl_task(
    name="relier.demo.charge_card",
    queue=QUEUE,
    max_retries=3,
    retry_backoff=0.05,
    retry_backoff_max=0.2,
)
def charge_card(ctx: TaskContext, order_id: int) -> str:
    """Fails on its first attempt (a flaky payment gateway), then succeeds."""
    if ctx.attempt == 1 and order_id % 10 == 0:
        raise ConnectionError("payment gateway timed out")
    return f"charged order {order_id} on attempt {ctx.attempt}"


@rl_task(
    name="relier.demo.charge_payment",
    queue=QUEUE,
    key=lambda payment_id, cents: payment_id,
    max_retries=3,
    retry_backoff=0.05,
    retry_backoff_max=0.2,
)
def charge_payment(ctx: TaskContext, payment_id: str, cents: int) -> dict[str, object]:
    """An idempotent payment: pushed any number of times, it commits once per id."""
    time.sleep(0.01)  # the payment gateway
    _app.current().redis.hincrby(CHARGE_RUNS, payment_id, 1)
    return {"payment": payment_id, "cents": cents, "fence": ctx.fence}


@rl_task(name="relier.demo.build_report", queue=QUEUE)
def build_report(ctx: TaskContext, report_id: int) -> dict[str, int]:
    """A slow task: checkpoints each step, so a restarted attempt resumes where it was."""
    resumed_at = int(ctx.progress or 0)
    for step in range(resumed_at, REPORT_STEPS):
        time.sleep(0.2)
        ctx.checkpoint(step + 1)
    return {"report": report_id, "resumed_at": resumed_at}


@rl_task(name="relier.demo.resize_image", queue=QUEUE)
def resize_image(image_id: int) -> None:
    """A poison pill: "the image library" kills its own process on this image, every time."""
    os.kill(os.getpid(), signal.SIGKILL)


@rl_task(name="relier.demo.broken_export", queue=QUEUE, max_retries=1, retry_backoff=0.05)
def broken_export(order_id: int) -> None:
    """Always fails: it ends in the dead letter queue, with its traceback."""
    raise RuntimeError(f"export of order {order_id} failed: schema mismatch")

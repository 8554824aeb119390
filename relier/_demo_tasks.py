"""Tasks the ``rl demo`` worker runs: a realistic little mix."""

from __future__ import annotations

import asyncio
import hashlib

from .context import TaskContext
from .task import rl_task

# Its own queue, so a demo pointed at a shared Redis never takes (and
# dead-letters as unknown) another application's tasks.
QUEUE = "relier-demo"


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


@rl_task(name="relier.demo.broken_export", queue=QUEUE, max_retries=1, retry_backoff=0.05)
def broken_export(order_id: int) -> None:
    """Always fails: it ends in the dead letter queue, with its traceback."""
    raise RuntimeError(f"export of order {order_id} failed: schema mismatch")

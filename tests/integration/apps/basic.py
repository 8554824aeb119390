"""Tasks run by real worker subprocesses in the integration tests.

Side effects are counted in Redis (``rl-test:count:<key>``) so a test can
see exactly how many times a body ran, whichever process ran it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from decimal import Decimal

import pydantic

import relier
from relier import TaskContext, rl_task


def bump(key: str) -> int:
    """Count one execution of ``key`` and return the new count."""
    return int(relier.current().redis.incr(f"rl-test:count:{key}"))


@rl_task(name="basic.add")
def add(a: int, b: int) -> int:
    return a + b


@rl_task(name="basic.aadd")
async def aadd(a: int, b: int) -> int:
    await asyncio.sleep(0.01)
    return a + b


@rl_task(name="basic.count")
def count(key: str) -> int:
    return bump(key)


@rl_task(name="basic.flaky", max_retries=3, retry_backoff=0.05, retry_backoff_max=0.2)
def flaky(key: str, failures: int) -> str:
    """Fails ``failures`` times, then succeeds."""
    if bump(key) <= failures:
        raise ConnectionError(f"transient failure of {key}")
    return "ok"


@rl_task(name="basic.afail", max_retries=2, retry_backoff=0.05, retry_backoff_max=0.1)
async def afail(key: str) -> None:
    bump(key)
    raise ValueError(f"{key} always fails")


@rl_task(name="basic.not_retryable", retry_on=(ConnectionError,), max_retries=5)
def not_retryable(key: str) -> None:
    bump(key)
    raise KeyError(key)


@rl_task(name="basic.resume", max_retries=1, retry_backoff=0.05)
def resume(ctx: TaskContext, key: str) -> dict[str, object]:
    """Checkpoints on the first attempt and fails; the retry sees the progress."""
    bump(key)
    if ctx.attempt == 1:
        ctx.checkpoint({"step": 1})
        raise ConnectionError("fail after the checkpoint")
    return {"attempt": ctx.attempt, "progress": ctx.progress, "fence": ctx.fence}


@rl_task(name="basic.bad_result")
def bad_result() -> object:
    return object()


@rl_task(name="basic.kw")
async def kw(*, name: str, times: int = 1) -> str:
    return name * times


@rl_task(name="basic.charge", idempotent=True)
def charge(order: str, cents: int) -> dict[str, object]:
    """An idempotent payment: counts its executions, takes a moment."""
    n = bump(f"charge:{order}")
    time.sleep(0.3)
    return {"order": order, "cents": cents, "execution": n}


@rl_task(name="basic.charge_by_order", key=lambda order, cents: order)
def charge_by_order(order: str, cents: int) -> int:
    bump(f"charge_by_order:{order}")
    return cents


@rl_task(name="basic.flaky_idem", idempotent=True, max_retries=0)
def flaky_idem(key: str) -> str:
    """Fails while the flag ``rl-test:fail:<key>`` is set."""
    bump(f"flaky_idem:{key}")
    if relier.current().redis.get(f"rl-test:fail:{key}"):
        raise ValueError(f"{key} is set to fail")
    return "ok"


class Invoice(pydantic.BaseModel):
    number: str
    total: Decimal
    due: dt.date


@rl_task(name="basic.invoice")
def invoice(number: str, issued: dt.datetime, total: Decimal, lines: list[Decimal]) -> Invoice:
    """Typed arguments arrive as their types; the model result travels as JSON."""
    assert isinstance(issued, dt.datetime) and isinstance(total, Decimal)
    assert total == sum(lines)
    return Invoice(number=number, total=total, due=issued.date() + dt.timedelta(days=30))

"""A FastAPI app that pushes Relier tasks, limits its traffic, and mounts the admin API.

Run it with a worker: ``python run.py`` (see README.md).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from relier import ResultTimeoutError, TaskFailedError, TaskNotFoundError
from relier_fastapi import (
    AdmissionMiddleware,
    Dispatcher,
    rate_limit,
    relier_admin_router,
    relier_dispatcher,
    relier_lifespan,
)

import tasks


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    # Your own startup and shutdown go around (or inside) this block.
    async with relier_lifespan(app):
        yield


app = FastAPI(title="Relier FastAPI example", lifespan=lifespan)
# AdmissionRejectedError, from a push or a route limit, becomes 429 + Retry-After.
app.add_middleware(AdmissionMiddleware)
# /relier: the admin API and dashboard, behind RELIER_ADMIN_TOKEN.
app.include_router(relier_admin_router())

Pusher = Annotated[Dispatcher, Depends(relier_dispatcher)]


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@app.post("/signup")
async def signup(email: str, dispatcher: Pusher) -> dict[str, str]:
    """Push the welcome mail and answer at once; a worker sends it."""
    handle = await dispatcher.push(tasks.send_welcome, email)
    return {"task_id": handle.id}


@app.post("/notify/{user}")
async def notify(user: str, text: str, dispatcher: Pusher) -> dict[str, str]:
    """The task's own rate limit (1/s per user) answers 429 when exceeded."""
    handle = await dispatcher.push(tasks.notify, user, text)
    return {"task_id": handle.id}


@app.post("/exports/{report}")
async def export(report: str, dispatcher: Pusher) -> dict[str, str]:
    """``sales`` and ``signups`` succeed; any other report ends in the DLQ."""
    handle = await dispatcher.push(tasks.export, report)
    return {"task_id": handle.id}


@app.get("/tasks/{task_id}")
async def task_result(task_id: str, dispatcher: Pusher, wait: float = 0) -> dict[str, Any]:
    """A task's outcome, waiting up to ``wait`` seconds for it to end."""
    handle = dispatcher.handle(task_id)
    try:
        result = await handle.aresult(timeout=min(wait, 30))
    except ResultTimeoutError:
        return {"id": task_id, "state": await handle.astate()}
    except TaskFailedError as exc:
        return {"id": task_id, "state": "DEAD", "reason": exc.reason, "error": exc.error}
    except TaskNotFoundError:
        return {"id": task_id, "state": "MISSING"}
    return {"id": task_id, "state": "SUCCEEDED", "result": result}


@app.get("/quote", dependencies=[Depends(rate_limit("5/s", burst=5, key=client_address))])
async def quote() -> dict[str, str]:
    """A route limit without any task: 5 requests per second per client address."""
    return {"quote": "Nothing is lost."}

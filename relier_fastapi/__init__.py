"""Relier for FastAPI applications.

::

    from contextlib import asynccontextmanager

    from fastapi import Depends, FastAPI
    from relier_fastapi import (
        AdmissionMiddleware, Dispatcher, relier_admin_router, relier_dispatcher,
        relier_lifespan,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        async with relier_lifespan(app):
            yield

    app = FastAPI(lifespan=lifespan)
    app.add_middleware(AdmissionMiddleware)
    app.include_router(relier_admin_router())  # needs RELIER_ADMIN_TOKEN

    @app.post("/emails")
    async def send(to: str, dispatcher: Dispatcher = Depends(relier_dispatcher)):
        handle = await dispatcher.push(send_email, to)
        return {"task_id": handle.id}

* :func:`relier_lifespan`: the app's Relier on ``app.state``, Redis opened
  on startup and closed on shutdown.
* :func:`relier_dispatcher`: the dependency giving a :class:`Dispatcher`
  whose ``await dispatcher.push(task, ...)`` returns a ``TaskHandle``.
* :class:`AdmissionMiddleware` / :func:`admission_exception_handler`:
  ``AdmissionRejectedError`` becomes ``429`` with ``Retry-After`` and an
  RFC 9457 problem body; :func:`rate_limit` limits a route cluster-wide.
* :func:`relier_admin_router`: the admin API and dashboard at ``/relier``.
"""

from __future__ import annotations

try:
    import fastapi as _framework  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised by the packaging test's bare venv
    raise ImportError(
        'relier_fastapi needs FastAPI: install it with pip install "relier[fastapi]"'
    ) from exc

from .admin import AdminToken, relier_admin_router
from .admission import (
    AdmissionMiddleware,
    RateLimit,
    admission_exception_handler,
    problem_response,
    rate_limit,
)
from .dispatcher import Dispatcher, relier_dispatcher, relier_lifespan, relier_of

__all__ = [
    "AdminToken",
    "AdmissionMiddleware",
    "Dispatcher",
    "RateLimit",
    "admission_exception_handler",
    "problem_response",
    "rate_limit",
    "relier_admin_router",
    "relier_dispatcher",
    "relier_lifespan",
    "relier_of",
]

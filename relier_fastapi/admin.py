"""The admin API and dashboard: ``relier_admin_router()``, mounted at ``/relier``.

Every JSON endpoint is routing over one method of
:class:`relier.ops.service.AdminService` (shared with the Flask and Django
adapters), run in the thread pool; it returns a response model of
:mod:`relier.ops.admin`, so the OpenAPI schema describes every field of what
is sent, and Flask and Django send the same models' JSON.

Authentication is required: a bearer token (``token=`` or
``RELIER_ADMIN_TOKEN``, compared in constant time and never logged) and/or
the application's own dependencies. A router with neither can only be made
with ``allow_unauthenticated=True``. The dashboard page and its script and
stylesheet are static (they hold no data), so a browser can load them and
then send the token with each request it makes to the JSON endpoints.

Redis keys: none of its own; it reads what those queries read, and release
and purge run ``dlq_release.lua`` and ``dlq_purge.lua``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from enum import Enum
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.params import Depends as DependsParam
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import SecretStr
from starlette.requests import HTTPConnection

from relier import (
    ConfigurationError,
    RedisUnavailableError,
    TaskNotFoundError,
    load_settings,
)
from relier.journal.states import Reason
from relier.ops.admin import (
    MAX_ID_LENGTH,
    MAX_MS,
    MAX_PATTERN_LENGTH,
    TASK_ID_PATTERN,
    DlqQuery,
    TokenDigest,
)
from relier.ops.service import AdminService

from . import dashboard
from .dispatcher import relier_of
from .schemas import (
    RelierDeadTask,
    RelierDlqPage,
    RelierHealth,
    RelierHTTPError,
    RelierInflightTask,
    RelierMetrics,
    RelierPurged,
    RelierReleased,
    RelierStatus,
    RelierTaskDetail,
    RelierTaskIds,
    RelierWorker,
)

__all__ = ["AdminToken", "relier_admin_router"]

_TaskIdPath = Annotated[
    str,
    Path(min_length=1, max_length=MAX_ID_LENGTH, pattern=TASK_ID_PATTERN, description="Task id"),
]
_Pattern = Annotated[
    str | None,
    Query(
        max_length=MAX_PATTERN_LENGTH, description="A name, or a shell-style pattern (`billing.*`)."
    ),
]


class AdminToken(HTTPBearer):
    """The bearer-token check: 401 without credentials, 403 with the wrong token.

    A security dependency (FastAPI lists it in the OpenAPI schema as the
    ``RelierAdminToken`` HTTP bearer scheme). It keeps only a digest of the
    token and compares digests with :func:`hmac.compare_digest`.

    Raises:
        ConfigurationError: the token is shorter than 16 bytes.
    """

    def __init__(self, token: str | SecretStr) -> None:
        super().__init__(
            scheme_name="RelierAdminToken",
            description="The admin token (RELIER_ADMIN_TOKEN), as `Authorization: Bearer <token>`.",
            auto_error=True,
        )
        self._token = TokenDigest(token)

    def __repr__(self) -> str:
        return "<AdminToken ***>"

    async def __call__(self, request: HTTPConnection) -> HTTPAuthorizationCredentials | None:
        credentials = await super().__call__(request)  # 401 when missing: auto_error
        given = "" if credentials is None else credentials.credentials
        if not self._token.matches(given):
            raise HTTPException(status_code=403, detail="the admin token is not valid")
        return credentials


@contextlib.contextmanager
def _http_errors() -> Iterator[None]:
    """Relier's lookup and connection errors as 404 and 503."""
    try:
        yield
    except TaskNotFoundError as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from exc
    except RedisUnavailableError as exc:
        raise HTTPException(status_code=503, detail=str(exc)) from exc


def _auth(
    token: str | SecretStr | None,
    dependencies: Sequence[DependsParam] | None,
    allow_unauthenticated: bool,
) -> list[DependsParam]:
    if token is None and not dependencies:
        token = load_settings().admin_token
    if token is None and not dependencies and not allow_unauthenticated:
        raise ConfigurationError(
            "relier_admin_router needs authentication: pass token=... (or set "
            "RELIER_ADMIN_TOKEN), or dependencies=[Depends(your_auth)]; pass "
            "allow_unauthenticated=True only where nothing but trusted clients reach the app"
        )
    checks = [Depends(AdminToken(token))] if token is not None else []
    return checks + list(dependencies or [])


def relier_admin_router(
    *,
    token: str | SecretStr | None = None,
    dependencies: Sequence[DependsParam] | None = None,
    allow_unauthenticated: bool = False,
    prefix: str = "/relier",
    dashboard_page: bool = True,
    refresh_seconds: float = 2.0,
    tags: list[str | Enum] | None = None,
) -> APIRouter:
    """The admin API (JSON) and dashboard, to ``app.include_router(...)``.

    Endpoints, under ``prefix``: ``GET /`` (the dashboard), ``/health``,
    ``/status``, ``/workers``, ``/inflight``, ``/tasks/{id}``, ``/dlq``,
    ``/dlq/{id}``, ``/metrics``, and ``POST /dlq/release`` and
    ``/dlq/purge`` (body ``{"ids": [...]}``). The app needs
    :func:`relier_lifespan`.

    Args:
        token: the bearer token clients must send; ``RELIER_ADMIN_TOKEN``
            when neither it nor ``dependencies`` is given.
        dependencies: your own authentication (``[Depends(require_admin)]``),
            run for every JSON endpoint; with ``token`` too, both must pass.
        allow_unauthenticated: make a router without any authentication.
        prefix: where the router is mounted.
        dashboard_page: serve the dashboard at ``prefix + "/"``.
        refresh_seconds: how often the dashboard polls.
        tags: OpenAPI tags of the endpoints (``["relier"]``).

    Raises:
        ConfigurationError: no token, no dependency and not
            ``allow_unauthenticated``; a token shorter than 16 bytes.
    """
    if not refresh_seconds >= 0.5:
        raise ConfigurationError(f"refresh_seconds must be >= 0.5, got {refresh_seconds!r}")
    auth = _auth(token, dependencies, allow_unauthenticated)
    errors: dict[int | str, dict[str, Any]] = {503: {"model": RelierHTTPError}}
    if auth:
        errors |= {401: {"model": RelierHTTPError}, 403: {"model": RelierHTTPError}}
    router = APIRouter(prefix=prefix, tags=tags or ["relier"])
    api = APIRouter(dependencies=auth, responses=errors)
    not_found: dict[int | str, dict[str, Any]] = {404: {"model": RelierHTTPError}}
    # FastAPI answers 400 for a body that is not JSON at all (422 for a wrong one).
    bad_body: dict[int | str, dict[str, Any]] = {400: {"model": RelierHTTPError}}

    def service(request: Request) -> AdminService:
        return AdminService(relier_of(request))

    @api.get("/health", name="relier_health")
    def health(request: Request) -> RelierHealth:
        """Redis answers this process (503 otherwise); workers holding a lease."""
        with _http_errors():
            return service(request).health()

    @api.get("/status", name="relier_status")
    def status(
        request: Request,
        queue: Annotated[
            list[Annotated[str, Query(min_length=1, max_length=200)]] | None,
            Query(max_length=50, description="More queues to show the depth of."),
        ] = None,
    ) -> RelierStatus:
        """The cluster at a glance: workers, queues, work in flight, DLQ, rates."""
        with _http_errors():
            return service(request).status(queue or ())

    @api.get("/workers", name="relier_workers")
    def workers(request: Request) -> list[RelierWorker]:
        """Every listed worker incarnation, oldest first, with the tasks it holds."""
        with _http_errors():
            return service(request).workers()

    @api.get("/inflight", name="relier_inflight")
    def inflight(
        request: Request, queue: _Pattern = None, task: _Pattern = None
    ) -> list[RelierInflightTask]:
        """Every task a worker holds (RUNNING or RESERVED), longest-running first."""
        with _http_errors():
            return service(request).inflight(queue=queue, task=task)

    @api.get("/tasks/{task_id}", name="relier_task", responses=not_found)
    def task_detail(request: Request, task_id: _TaskIdPath) -> RelierTaskDetail:
        """One task's journal entry and full history."""
        with _http_errors():
            return service(request).task(task_id)

    @api.get("/dlq", name="relier_dlq_list")
    def dlq_list(
        request: Request,
        task: _Pattern = None,
        reason: Reason | None = None,
        since_ms: Annotated[int | None, Query(ge=0, le=MAX_MS)] = None,
        before_ms: Annotated[int | None, Query(ge=0, le=MAX_MS)] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> RelierDlqPage:
        """Dead letter queue entries, newest first, matching every filter given."""
        query = DlqQuery(
            task=task, reason=reason, since_ms=since_ms, before_ms=before_ms, limit=limit
        )
        with _http_errors():
            return service(request).dlq(query)

    @api.get("/dlq/{task_id}", name="relier_dlq_show", responses=not_found)
    def dlq_show(request: Request, task_id: _TaskIdPath) -> RelierDeadTask:
        """One DLQ entry in full: error, traceback, envelope, history."""
        with _http_errors():
            return service(request).dead(task_id)

    @api.post("/dlq/release", name="relier_dlq_release", responses=bad_body)
    def dlq_release(request: Request, body: RelierTaskIds) -> RelierReleased:
        """Run DLQ entries again: original payload, attempts from 0, a new fence.

        Ids not in the DLQ are listed under ``refused`` (with their state, or
        ``MISSING``); the others are released, each atomically.
        """
        with _http_errors():
            return service(request).release(body.ids)

    @api.post("/dlq/purge", name="relier_dlq_purge", responses=bad_body)
    def dlq_purge(request: Request, body: RelierTaskIds) -> RelierPurged:
        """Delete DLQ entries for good (journal, history, DLQ entry), each atomically."""
        with _http_errors():
            return service(request).purge(body.ids)

    @api.get("/metrics", name="relier_metrics")
    def metrics(request: Request) -> RelierMetrics:
        """Gauges and last-minute event counts, flat (the numbers of ``/status``)."""
        with _http_errors():
            return service(request).metrics()

    router.include_router(api)
    if dashboard_page:
        dashboard.add_routes(router, refresh_ms=round(refresh_seconds * 1000))
    return router

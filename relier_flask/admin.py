"""The admin API: a blueprint mounted at ``/relier``, the FastAPI router's twin.

Every endpoint is a thin shell over one query of :mod:`relier.ops.inspection`,
:mod:`relier.ops.stats` or :mod:`relier.ops.dlq` (the functions ``rl`` prints); its
JSON is the query's result as :func:`dataclasses.asdict` gives it, so paths,
parameters, bodies and shapes are those of ``relier_fastapi``'s router.
Errors are ``{"detail": ...}``: 401 and 403 (authentication), 404, 422 for
invalid parameters or bodies (``detail`` lists what was wrong, as pydantic
and FastAPI word it), 400 for a body that is not JSON, 503 when Redis
cannot be reached.

Authentication is required: a bearer token (:class:`AdminToken`: compared
in constant time, only its digest kept, never logged) and/or the
application's own check, a callable run before every endpoint like a
``before_request`` function. A blueprint with neither can only be made with
``allow_unauthenticated=True``.

Redis keys: none of its own; it reads what those queries read, and release
and purge run ``dlq_release.lua`` and ``dlq_purge.lua``.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from flask import Blueprint, Response, jsonify, request
from flask.typing import ResponseReturnValue
from pydantic import BaseModel, SecretStr
from werkzeug.exceptions import HTTPException

from relier import (
    ConfigurationError,
    RedisUnavailableError,
    TaskNotFoundError,
)
from relier.journal.connection import translate_errors
from relier.ops import dlq, inspection
from relier.ops.admin import (
    MAX_ID_LENGTH,
    MAX_IDS,
    InvalidRequest,
    TokenDigest,
    parse_query,
    parse_task_ids,
)
from relier.ops.admin import DlqQuery as _DlqQuery
from relier.ops.admin import InflightQuery as _InflightQuery
from relier.ops.admin import StatusQuery as _StatusQuery
from relier.ops.admin import parse_task_id as _task_id
from relier.ops.workers import list_workers

from .hub import relier_of

__all__ = ["MAX_IDS", "MAX_ID_LENGTH", "AdminToken", "AuthCallable", "admin_blueprint"]

AuthCallable = Callable[[], ResponseReturnValue | None]
"""Your own check, run before every admin endpoint like a ``before_request``
function: return None to let the request through, or a response (or call
``flask.abort(401)`` / ``abort(403)``) to stop it."""

M = TypeVar("M", bound=BaseModel)


def _detail(message: Any, status: int, headers: Mapping[str, str] | None = None) -> Response:
    response = jsonify(detail=message)
    response.status_code = status
    response.headers.update(headers or {})
    return response


class AdminToken:
    """The bearer-token check: 401 without credentials, 403 with the wrong token.

    A ``before_request`` function (the blueprint runs it before every
    endpoint; add it to your own blueprints with
    ``bp.before_request(AdminToken(token))``). It keeps only a SHA-256
    digest of the token and compares digests with :func:`hmac.compare_digest`.

    Raises:
        ConfigurationError: the token is shorter than 16 bytes.
    """

    def __init__(self, token: str | SecretStr) -> None:
        self._token = TokenDigest(token)

    def __repr__(self) -> str:
        return "<AdminToken ***>"

    def __call__(self) -> Response | None:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        given = given.strip()
        # Another scheme (Basic ...) is no credential at all, as for FastAPI's HTTPBearer.
        if not (scheme and given) or scheme.lower() != "bearer":
            return _detail("Not authenticated", 401, {"WWW-Authenticate": "Bearer"})
        if not self._token.matches(given):
            return _detail("the admin token is not valid", 403)
        return None


def _query(model: type[M], lists: tuple[str, ...] = ()) -> M:
    args = request.args
    return parse_query(model, {k: args.getlist(k) if k in lists else args[k] for k in args})


def _ids() -> list[str]:
    raw = request.get_data(cache=True)
    body: Any = None
    if raw.strip():
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise _NotJson(str(exc)) from None
    return parse_task_ids(body)


class _NotJson(Exception):
    """A body that is not JSON at all: a 400."""


def _json(result: Any) -> Response:
    if isinstance(result, list):
        return jsonify([dataclasses.asdict(item) for item in result])
    return jsonify(dataclasses.asdict(result))


def admin_blueprint(
    *,
    token: str | SecretStr | None = None,
    auth: AuthCallable | None = None,
    allow_unauthenticated: bool = False,
    name: str = "relier",
) -> Blueprint:
    """The admin API as a blueprint (``relier_flask.Relier`` registers it for you).

    Endpoints: ``GET /health``, ``/status``, ``/workers``, ``/inflight``,
    ``/tasks/<id>``, ``/dlq``, ``/dlq/<id>``, ``/metrics``, and ``POST
    /dlq/release`` and ``/dlq/purge`` (body ``{"ids": [...]}``). The app
    needs the extension (the endpoints read its hub with :func:`relier_of`).

    Args:
        token: the bearer token clients must send.
        auth: your own check (see :data:`AuthCallable`); with ``token`` too,
            both must pass, the token first.
        allow_unauthenticated: make a blueprint without any authentication.
        name: the blueprint's name (``url_for("relier.status")``).

    Raises:
        ConfigurationError: no token, no auth and not ``allow_unauthenticated``;
            a token shorter than 16 bytes; an auth that is not callable.
    """
    if token is None and auth is None and not allow_unauthenticated:
        raise ConfigurationError(
            "the Relier admin API needs authentication: pass token=... (or set "
            "RELIER_ADMIN_TOKEN in app.config or the environment), or auth=your_check; pass "
            "allow_unauthenticated=True only where nothing but trusted clients reach the app"
        )
    if auth is not None and not callable(auth):
        raise ConfigurationError(f"auth= must be a callable taking no arguments, got {auth!r}")
    bp = Blueprint(name, __name__)
    if token is not None:
        bp.before_request(AdminToken(token))
    if auth is not None:
        bp.before_request(auth)

    @bp.errorhandler(TaskNotFoundError)
    def not_found(exc: TaskNotFoundError) -> Response:
        return _detail(str(exc), 404)

    @bp.errorhandler(RedisUnavailableError)
    def unavailable(exc: RedisUnavailableError) -> Response:
        return _detail(str(exc), 503)

    @bp.errorhandler(InvalidRequest)
    def invalid(exc: InvalidRequest) -> Response:
        return _detail(exc.detail, 422)

    @bp.errorhandler(_NotJson)
    def not_json(exc: _NotJson) -> Response:
        return _detail(f"the body is not JSON: {exc}", 400)

    @bp.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        # abort(403, "admins only") from an auth check: JSON like the rest.
        headers = {k: v for k, v in exc.get_headers() if k.lower() != "content-type"}
        return _detail(exc.description, exc.code or 500, headers)

    @bp.get("/health")
    def health() -> Response:
        """Redis answers this process (503 otherwise); workers holding a lease."""
        hub = relier_of()
        with translate_errors(hub.settings.redis_url):
            started = time.perf_counter()
            hub.redis.ping()
            elapsed = (time.perf_counter() - started) * 1000
            alive = sum(1 for w in list_workers(hub) if w.alive)
        return jsonify(status="ok", redis_ms=round(elapsed, 3), workers_alive=alive)

    @bp.get("/status")
    def status() -> Response:
        """The cluster at a glance: workers, queues, work in flight, DLQ, rates."""
        query = _query(_StatusQuery, lists=("queue",))
        return _json(inspection.status(relier_of(), queues=query.queue))

    @bp.get("/workers")
    def workers() -> Response:
        """Every listed worker incarnation, oldest first, with the tasks it holds."""
        return _json(inspection.workers(relier_of()))

    @bp.get("/inflight")
    def inflight() -> Response:
        """Every task a worker holds (RUNNING or RESERVED), longest-running first."""
        query = _query(_InflightQuery)
        return _json(inspection.inflight(relier_of(), queue=query.queue, task=query.task))

    @bp.get("/tasks/<task_id>")
    def task(task_id: str) -> Response:
        """One task's journal entry and full history."""
        return _json(inspection.task_detail(relier_of(), _task_id(task_id)))

    @bp.get("/dlq")
    def dlq_list() -> Response:
        """Dead letter queue entries, newest first, matching every filter given."""
        query = _query(_DlqQuery)
        found = dlq.find_dead(
            relier_of(),
            task=query.task,
            reason=None if query.reason is None else query.reason.value,
            since_ms=query.since_ms,
            before_ms=query.before_ms,
            limit=query.limit + 1,
        )
        return jsonify(
            entries=[dataclasses.asdict(e) for e in found[: query.limit]],
            truncated=len(found) > query.limit,
        )

    @bp.get("/dlq/<task_id>")
    def dlq_show(task_id: str) -> Response:
        """One DLQ entry in full: error, traceback, envelope, history."""
        return _json(dlq.get_dead(relier_of(), _task_id(task_id)))

    @bp.post("/dlq/release")
    def dlq_release() -> Response:
        """Run DLQ entries again: original payload, attempts from 0, a new fence."""
        return _json(dlq.release(relier_of(), _ids()))

    @bp.post("/dlq/purge")
    def dlq_purge() -> Response:
        """Delete DLQ entries for good (journal, history, DLQ entry), each atomically."""
        return _json(dlq.purge(relier_of(), _ids()))

    @bp.get("/metrics")
    def metrics() -> Response:
        """Gauges and last-minute event counts, flat (the numbers of ``/status``)."""
        st = inspection.status(relier_of())
        return jsonify(
            now_ms=st.now_ms,
            workers_alive=st.workers_alive,
            workers_dead=st.workers_dead,
            running=st.running,
            reserved=st.reserved,
            scheduled=st.scheduled,
            overdue=st.overdue,
            retrying=st.retrying,
            dlq=st.dlq,
            queue_depth={q.name: q.depth for q in st.queues},
            events_window_ms=st.rates.window_ms,
            events=st.rates.counts,
            events_per_minute=st.rates.per_minute,
        )

    return bp

"""The admin API: a blueprint mounted at ``/relier``, the FastAPI router's twin.

Every endpoint is routing over one method of
:class:`relier.ops.service.AdminService` (shared with the FastAPI and Django
adapters); its JSON is that of the response model it returns, the model
FastAPI's OpenAPI schema describes, so paths, parameters, bodies and shapes
are those of ``relier_fastapi``'s router.
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

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from flask import Blueprint, Response, jsonify, request
from flask.typing import ResponseReturnValue
from pydantic import BaseModel, SecretStr
from werkzeug.exceptions import HTTPException

from relier import (
    ConfigurationError,
    RedisUnavailableError,
    TaskNotFoundError,
)
from relier.ops.admin import MAX_ID_LENGTH, MAX_IDS, InvalidRequest, TokenDigest
from relier.ops.service import AdminService, NotJsonError, QueryArgs, body_ids, to_json

from .hub import relier_of

__all__ = ["MAX_IDS", "MAX_ID_LENGTH", "AdminToken", "AuthCallable", "admin_blueprint"]

AuthCallable = Callable[[], ResponseReturnValue | None]
"""Your own check, run before every admin endpoint like a ``before_request``
function: return None to let the request through, or a response (or call
``flask.abort(401)`` / ``abort(403)``) to stop it."""


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


def _json(result: BaseModel | Sequence[BaseModel]) -> Response:
    return jsonify(to_json(result))


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

    @bp.errorhandler(NotJsonError)
    def not_json(exc: NotJsonError) -> Response:
        return _detail(str(exc), 400)

    @bp.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        # abort(403, "admins only") from an auth check: JSON like the rest.
        headers = {k: v for k, v in exc.get_headers() if k.lower() != "content-type"}
        return _detail(exc.description, exc.code or 500, headers)

    def service() -> AdminService:
        return AdminService(relier_of())

    def args() -> QueryArgs:
        return {k: request.args.getlist(k) for k in request.args}

    def ids() -> list[str]:
        return body_ids(request.get_data(cache=True))

    @bp.get("/health")
    def health() -> Response:
        """Redis answers this process (503 otherwise); workers holding a lease."""
        return _json(service().health())

    @bp.get("/status")
    def status() -> Response:
        """The cluster at a glance: workers, queues, work in flight, DLQ, rates."""
        return _json(service().status_args(args()))

    @bp.get("/workers")
    def workers() -> Response:
        """Every listed worker incarnation, oldest first, with the tasks it holds."""
        return _json(service().workers())

    @bp.get("/inflight")
    def inflight() -> Response:
        """Every task a worker holds (RUNNING or RESERVED), longest-running first."""
        return _json(service().inflight_args(args()))

    @bp.get("/tasks/<task_id>")
    def task(task_id: str) -> Response:
        """One task's journal entry and full history."""
        return _json(service().task(task_id))

    @bp.get("/dlq")
    def dlq_list() -> Response:
        """Dead letter queue entries, newest first, matching every filter given."""
        return _json(service().dlq_args(args()))

    @bp.get("/dlq/<task_id>")
    def dlq_show(task_id: str) -> Response:
        """One DLQ entry in full: error, traceback, envelope, history."""
        return _json(service().dead(task_id))

    @bp.post("/dlq/release")
    def dlq_release() -> Response:
        """Run DLQ entries again: original payload, attempts from 0, a new fence."""
        return _json(service().release(ids()))

    @bp.post("/dlq/purge")
    def dlq_purge() -> Response:
        """Delete DLQ entries for good (journal, history, DLQ entry), each atomically."""
        return _json(service().purge(ids()))

    @bp.get("/metrics")
    def metrics() -> Response:
        """Gauges and last-minute event counts, flat (the numbers of ``/status``)."""
        return _json(service().metrics())

    return bp

"""Admission over HTTP: a refused push (or route) becomes ``429 Too Many Requests``.

:class:`AdmissionMiddleware` (pure ASGI) and :func:`admission_exception_handler`
turn :class:`~relier.AdmissionRejectedError`, raised anywhere while a request
is handled, into a 429 response with an integer ``Retry-After`` header (the
exact wait rounded up, at least 1 s) and an RFC 9457
``application/problem+json`` body. :func:`rate_limit` is a dependency
factory that applies a cluster-wide rate limit to a route before its
endpoint runs, with the same GCRA as task rate limits (``admit.lua``).

The body never names the task or limit that refused: a public client has
no business learning internal task names. The server's logs and the
exception (``AdmissionRejectedError.task_name``) have it.

Redis keys: ``rl:rate:http:<limit>[:<key>]`` through :func:`relier.admission.aadmit`.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from relier import AdmissionRejectedError, ConfigurationError
from relier.ops.admin import PROBLEM_JSON, problem_body, retry_after_seconds
from relier.tasks.admission import aadmit, parse_rate

from .dispatcher import relier_of

__all__ = [
    "PROBLEM_JSON",
    "AdmissionMiddleware",
    "RateLimit",
    "admission_exception_handler",
    "problem_response",
    "rate_limit",
    "retry_after_seconds",
]

KeyFunction = Callable[[Request], str | int | Awaitable[str | int | None] | None]
"""What ``rate_limit(key=...)`` takes: the request in, the limit's key out."""

# A key longer than this, or with braces (Redis Cluster hash tags), is hashed.
_MAX_KEY = 100


def problem_response(exc: AdmissionRejectedError, problem_type: str = "about:blank") -> Response:
    """The 429 response for a refused call.

    Its body is an RFC 9457 problem: ``type``, ``title``, ``status``,
    ``detail``, and the extension members ``retry_after`` (seconds, not
    rounded) and ``reason`` (``rate`` or ``depth``).
    """
    header = retry_after_seconds(exc.retry_after)
    return JSONResponse(
        problem_body(exc, problem_type),
        status_code=429,
        headers={"Retry-After": str(header)},
        media_type=PROBLEM_JSON,
    )


async def admission_exception_handler(request: Request, exc: Exception) -> Response:
    """Exception handler for ``app.add_exception_handler(AdmissionRejectedError, ...)``."""
    if not isinstance(exc, AdmissionRejectedError):
        raise exc
    return problem_response(exc)


def _rejection(exc: BaseException) -> AdmissionRejectedError | None:
    """The AdmissionRejectedError ``exc`` is, or the only kind of error a group holds."""
    if isinstance(exc, AdmissionRejectedError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        matched, rest = exc.split(AdmissionRejectedError)
        if matched is not None and rest is None:
            leaves: list[BaseException] = list(matched.exceptions)
            while leaves and isinstance(leaves[0], BaseExceptionGroup):
                leaves = list(leaves[0].exceptions)
            if leaves and isinstance(leaves[0], AdmissionRejectedError):
                return leaves[0]
    return None


class AdmissionMiddleware:
    """ASGI middleware: :class:`~relier.AdmissionRejectedError` becomes a 429.

    Add it with ``app.add_middleware(AdmissionMiddleware)``. It catches the
    error from the endpoint, its dependencies and any middleware added
    before it (inner ones). Once the response has started (a streaming body)
    it can no longer answer 429 and lets the error through.

    Args:
        app: the wrapped ASGI application.
        problem_type: the ``type`` member of the problem body (a URI; the
            RFC's ``about:blank`` by default).
    """

    def __init__(self, app: ASGIApp, problem_type: str = "about:blank") -> None:
        self.app = app
        self.problem_type = problem_type

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except BaseException as exc:
            rejected = _rejection(exc)
            if rejected is None or started:
                raise
            response = problem_response(rejected, self.problem_type)
            await response(scope, receive, send)


def _safe_key(value: object) -> str:
    text = str(value)
    if len(text) > _MAX_KEY or "{" in text or "}" in text:
        return "h-" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return text


def _route_name(request: Request) -> str:
    route = request.scope.get("route")
    path = getattr(route, "path", None) or request.url.path
    methods = getattr(route, "methods", None) or {request.method}
    # Braces would make a Redis Cluster hash tag of a path parameter's name.
    path = str(path).replace("{", "<").replace("}", ">")
    return f"{','.join(sorted(methods))} {path}"


class RateLimit:
    """The dependency :func:`rate_limit` returns (a callable FastAPI injects the request into)."""

    def __init__(
        self, rate: str, *, burst: int = 1, key: KeyFunction | None = None, name: str | None = None
    ) -> None:
        self.rate = rate
        self.interval_ms = parse_rate(rate)
        if isinstance(burst, bool) or not isinstance(burst, int) or burst < 1:
            raise ConfigurationError(f"rate_limit burst must be an int >= 1, got {burst!r}")
        if key is not None and not callable(key):
            raise ConfigurationError(f"rate_limit key= must be a callable of the request: {key!r}")
        if name is not None and (not name or "{" in name or "}" in name):
            raise ConfigurationError(f"rate_limit name {name!r} must be non-empty, without braces")
        self.burst = burst
        self.key = key
        self.name = name

    def __repr__(self) -> str:
        return f"<RateLimit {self.rate} burst={self.burst} name={self.name!r}>"

    async def limit_name(self, request: Request) -> str:
        """The limit a request counts against: ``http:<name or route>[:<key>]``."""
        name = f"http:{self.name or _route_name(request)}"
        if self.key is None:
            return name
        value: Any = self.key(request)
        if inspect.isawaitable(value):
            value = await value
        return name if value is None else f"{name}:{_safe_key(value)}"

    async def __call__(self, request: Request) -> None:
        await aadmit(
            relier_of(request), await self.limit_name(request), self.interval_ms, self.burst
        )


def rate_limit(
    rate: str, *, burst: int = 1, key: KeyFunction | None = None, name: str | None = None
) -> RateLimit:
    """A dependency that admits a request only within a cluster-wide rate.

    Use it as ``@app.post("/x", dependencies=[Depends(rate_limit("10/s"))])``
    (or on a router). A request over the limit raises
    :class:`~relier.AdmissionRejectedError` before the endpoint runs; with
    :class:`AdmissionMiddleware` (or the exception handler) it is a 429.

    Args:
        rate: ``"N/s"``, ``"N/m"`` or ``"N/h"``.
        burst: requests admitted at once after a quiet spell.
        key: a function of the request (sync or async) whose value splits
            the limit (one per client address, API key, tenant, ...);
            ``None`` from it counts against the shared, unkeyed limit.
        name: the limit's name; routes that give the same name share one
            limit. By default each route has its own, named by its methods
            and path template.

    Raises:
        ConfigurationError: a malformed rate, a burst < 1, a key that is
            not callable or a name with braces.
    """
    return RateLimit(rate, burst=burst, key=key, name=name)

"""The admin API: the FastAPI router's endpoints as Django views.

Every view is routing over one method of
:class:`relier.ops.service.AdminService` (shared with the FastAPI and Flask
adapters); its JSON is that of the response model it returns, the model
FastAPI's OpenAPI schema describes, so paths, parameters, bodies and shapes
are those of ``relier_fastapi`` and ``relier_flask``. Errors are
``{"detail": ...}``: 401 and 403 (authentication), 404, 422 for invalid
parameters or bodies, 400 for a body that is not JSON, 503 when Redis
cannot be reached.

Authentication (:class:`AdminAuth`) is required: a bearer token (compared
in constant time, only its digest kept, never logged), or a staff user's
session. Token requests are exempt from CSRF (a bearer token is no ambient
credential); session POSTs keep Django's CSRF check.

Redis keys: none of its own; release and purge run ``dlq_release.lua`` and
``dlq_purge.lua``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST
from pydantic import BaseModel, SecretStr

from relier import (
    RedisUnavailableError,
    TaskNotFoundError,
)
from relier.ops.admin import MAX_ID_LENGTH, MAX_IDS, InvalidRequest, TokenDigest
from relier.ops.service import AdminService, NotJsonError, QueryArgs, body_ids, to_json

from .hub import relier_of

__all__ = ["MAX_IDS", "MAX_ID_LENGTH", "AdminAuth", "View", "admin_views"]

View = Callable[..., HttpResponse]


def _detail(message: Any, status: int) -> JsonResponse:
    return JsonResponse({"detail": message}, status=status)


class AdminAuth:
    """Who may use the admin API: a bearer token, or a staff user's session.

    A request with ``Authorization: Bearer ...`` is judged by its token
    alone (403 when it is wrong, or when no token is configured); one without
    is let in when its user is staff (403 for another signed-in user), and
    is 401 otherwise. Only a SHA-256 digest of the token is kept.

    Args:
        token: the bearer token, or None for none.
        staff: let staff users in with their session.
        allow_unauthenticated: let every request in (neither token nor staff).

    Raises:
        ConfigurationError: a token shorter than 16 bytes.
    """

    def __init__(
        self, token: str | SecretStr | None, *, staff: bool, allow_unauthenticated: bool = False
    ) -> None:
        self._token = None if token is None else TokenDigest(token)
        self.staff = staff
        self.open = allow_unauthenticated and self._token is None and not staff

    def __repr__(self) -> str:
        return f"<AdminAuth token={'***' if self._token else None} staff={self.staff}>"

    def check(self, request: HttpRequest) -> HttpResponse | None:
        """None to let ``request`` in, or the 401/403 response to end it with."""
        if self.open:
            return None
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        given = given.strip()
        if scheme.lower() == "bearer" and given:
            if self._token is None or not self._token.matches(given):
                return _detail("the admin token is not valid", 403)
            return None
        user = getattr(request, "user", None)
        if self.staff and user is not None and user.is_authenticated:
            if not user.is_staff:
                return _detail("the admin API is for staff users", 403)
            if request.method not in ("GET", "HEAD", "OPTIONS", "TRACE"):
                # A session is an ambient credential: keep Django's CSRF check.
                reason = CsrfViewMiddleware(lambda r: None).process_view(request, None, (), {})
                if reason is not None:
                    return _detail("CSRF verification failed", 403)
            return None
        response = _detail("Not authenticated", 401)
        response["WWW-Authenticate"] = "Bearer"
        return response


def _json(result: BaseModel | Sequence[BaseModel]) -> JsonResponse:
    # safe=False: /workers and /inflight answer a JSON array.
    return JsonResponse(to_json(result), safe=False)


def admin_views(auth: AdminAuth) -> dict[str, View]:
    """The admin API's views by URL name, each behind ``auth``."""

    def guarded(view: View) -> View:
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            refused = auth.check(request)
            if refused is not None:
                return refused
            try:
                return view(request, *args, **kwargs)
            except NotJsonError as exc:
                return _detail(str(exc), 400)
            except InvalidRequest as exc:
                return _detail(exc.detail, 422)
            except TaskNotFoundError as exc:
                return _detail(str(exc), 404)
            except RedisUnavailableError as exc:
                return _detail(str(exc), 503)

        # AdminAuth runs Django's CSRF check itself for session requests.
        return csrf_exempt(wrapper)  # type: ignore[no-any-return]

    def service() -> AdminService:
        return AdminService(relier_of())

    def args(request: HttpRequest) -> QueryArgs:
        return {k: request.GET.getlist(k) for k in request.GET}

    def health(request: HttpRequest) -> HttpResponse:
        return _json(service().health())

    def status(request: HttpRequest) -> HttpResponse:
        return _json(service().status_args(args(request)))

    def workers(request: HttpRequest) -> HttpResponse:
        return _json(service().workers())

    def inflight(request: HttpRequest) -> HttpResponse:
        return _json(service().inflight_args(args(request)))

    def task(request: HttpRequest, task_id: str) -> HttpResponse:
        return _json(service().task(task_id))

    def dlq_list(request: HttpRequest) -> HttpResponse:
        return _json(service().dlq_args(args(request)))

    def dlq_show(request: HttpRequest, task_id: str) -> HttpResponse:
        return _json(service().dead(task_id))

    def dlq_release(request: HttpRequest) -> HttpResponse:
        return _json(service().release(body_ids(request.body)))

    def dlq_purge(request: HttpRequest) -> HttpResponse:
        return _json(service().purge(body_ids(request.body)))

    def metrics(request: HttpRequest) -> HttpResponse:
        return _json(service().metrics())

    get = {
        "health": health, "status": status, "workers": workers, "inflight": inflight,
        "task": task, "dlq": dlq_list, "dlq_show": dlq_show, "metrics": metrics,
    }  # fmt: skip
    post = {"dlq_release": dlq_release, "dlq_purge": dlq_purge}
    views: dict[str, View] = {n: guarded(require_GET(v)) for n, v in get.items()}
    views |= {n: guarded(require_POST(v)) for n, v in post.items()}
    return views

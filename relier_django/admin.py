"""The admin API: the FastAPI router's endpoints as Django views.

Every view is a thin shell over one query of :mod:`relier.ops.inspection` or
:mod:`relier.ops.dlq` (the functions ``rl`` prints); its JSON is the query's
result as :func:`dataclasses.asdict` gives it, so paths, parameters, bodies
and shapes are those of ``relier_fastapi`` and ``relier_flask``. Errors are
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

import dataclasses
import functools
import json
import time
from collections.abc import Callable
from typing import Any, TypeVar

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST
from pydantic import BaseModel, SecretStr

from relier import (
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

__all__ = ["MAX_IDS", "MAX_ID_LENGTH", "AdminAuth", "View", "admin_views"]

View = Callable[..., HttpResponse]


class _Stop(Exception):
    """Ends a view with an error response."""

    def __init__(self, response: HttpResponse) -> None:
        super().__init__(response.status_code)
        self.response = response


M = TypeVar("M", bound=BaseModel)


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


def _query(request: HttpRequest, model: type[M], lists: tuple[str, ...] = ()) -> M:
    args = request.GET
    return parse_query(model, {k: args.getlist(k) if k in lists else args[k] for k in args})


def _ids(request: HttpRequest) -> list[str]:
    body: Any = None
    if request.body.strip():
        try:
            body = json.loads(request.body)
        except ValueError as exc:
            raise _Stop(_detail(f"the body is not JSON: {exc}", 400)) from None
    return parse_task_ids(body)


def _json(result: Any) -> JsonResponse:
    if isinstance(result, list):
        return JsonResponse([dataclasses.asdict(item) for item in result], safe=False)
    return JsonResponse(dataclasses.asdict(result))


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
            except _Stop as stop:
                return stop.response
            except InvalidRequest as exc:
                return _detail(exc.detail, 422)
            except TaskNotFoundError as exc:
                return _detail(str(exc), 404)
            except RedisUnavailableError as exc:
                return _detail(str(exc), 503)

        # AdminAuth runs Django's CSRF check itself for session requests.
        return csrf_exempt(wrapper)  # type: ignore[no-any-return]

    def health(request: HttpRequest) -> HttpResponse:
        hub = relier_of()
        with translate_errors(hub.settings.redis_url):
            started = time.perf_counter()
            hub.redis.ping()
            elapsed = (time.perf_counter() - started) * 1000
            alive = sum(1 for w in list_workers(hub) if w.alive)
        return JsonResponse({"status": "ok", "redis_ms": round(elapsed, 3), "workers_alive": alive})

    def status(request: HttpRequest) -> HttpResponse:
        query = _query(request, _StatusQuery, lists=("queue",))
        return _json(inspection.status(relier_of(), queues=query.queue))

    def workers(request: HttpRequest) -> HttpResponse:
        return _json(inspection.workers(relier_of()))

    def inflight(request: HttpRequest) -> HttpResponse:
        query = _query(request, _InflightQuery)
        return _json(inspection.inflight(relier_of(), queue=query.queue, task=query.task))

    def task(request: HttpRequest, task_id: str) -> HttpResponse:
        return _json(inspection.task_detail(relier_of(), _task_id(task_id)))

    def dlq_list(request: HttpRequest) -> HttpResponse:
        query = _query(request, _DlqQuery)
        found = dlq.find_dead(
            relier_of(),
            task=query.task,
            reason=None if query.reason is None else query.reason.value,
            since_ms=query.since_ms,
            before_ms=query.before_ms,
            limit=query.limit + 1,
        )
        return JsonResponse(
            {
                "entries": [dataclasses.asdict(e) for e in found[: query.limit]],
                "truncated": len(found) > query.limit,
            }
        )

    def dlq_show(request: HttpRequest, task_id: str) -> HttpResponse:
        return _json(dlq.get_dead(relier_of(), _task_id(task_id)))

    def dlq_release(request: HttpRequest) -> HttpResponse:
        return _json(dlq.release(relier_of(), _ids(request)))

    def dlq_purge(request: HttpRequest) -> HttpResponse:
        return _json(dlq.purge(relier_of(), _ids(request)))

    def metrics(request: HttpRequest) -> HttpResponse:
        st = inspection.status(relier_of())
        return JsonResponse(
            {
                "now_ms": st.now_ms,
                "workers_alive": st.workers_alive,
                "workers_dead": st.workers_dead,
                "running": st.running,
                "reserved": st.reserved,
                "scheduled": st.scheduled,
                "overdue": st.overdue,
                "retrying": st.retrying,
                "dlq": st.dlq,
                "queue_depth": {q.name: q.depth for q in st.queues},
                "events_window_ms": st.rates.window_ms,
                "events": st.rates.counts,
                "events_per_minute": st.rates.per_minute,
            }
        )

    get = {
        "health": health, "status": status, "workers": workers, "inflight": inflight,
        "task": task, "dlq": dlq_list, "dlq_show": dlq_show, "metrics": metrics,
    }  # fmt: skip
    post = {"dlq_release": dlq_release, "dlq_purge": dlq_purge}
    views: dict[str, View] = {n: guarded(require_GET(v)) for n, v in get.items()}
    views |= {n: guarded(require_POST(v)) for n, v in post.items()}
    return views

"""The dashboard page: server-rendered HTML, a small script and a stylesheet.

The page holds no data. Its script (vanilla JavaScript, no build step, no
CDN) polls the admin API's JSON endpoints next to it (``status``,
``inflight``, ``workers``, ``dlq``) and redraws the tables; DLQ rows have
release and purge buttons. When an endpoint answers 401 or 403 the page
asks for the admin token, keeps it in the tab's ``sessionStorage`` and
sends it as ``Authorization: Bearer``; applications with their own
authentication (a session cookie) need no token, as the browser sends the
cookie with each request.

Everything the script shows is inserted as text, never as HTML, and the
page is served with a Content-Security-Policy that allows only its own
script and stylesheet.
"""

from __future__ import annotations

import functools
from importlib import resources
from string import Template

from fastapi import APIRouter
from starlette.responses import Response

__all__ = ["CONTENT_SECURITY_POLICY", "add_routes"]

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


@functools.cache
def _asset(name: str) -> str:
    return (resources.files(__package__) / "static" / name).read_text(encoding="utf-8")


def page(refresh_ms: int) -> str:
    """The dashboard's HTML."""
    return Template(_asset("dashboard.html")).substitute(refresh_ms=int(refresh_ms))


def add_routes(router: APIRouter, refresh_ms: int) -> None:
    """Add ``/`` (the page), ``/dashboard.js`` and ``/dashboard.css`` to ``router``."""
    html = page(refresh_ms)

    @router.get("/", include_in_schema=False, name="relier_dashboard")
    def dashboard() -> Response:
        return Response(html, media_type="text/html; charset=utf-8", headers=_HEADERS)

    @router.get("/dashboard.js", include_in_schema=False, name="relier_dashboard_js")
    def script() -> Response:
        return Response(
            _asset("dashboard.js"), media_type="text/javascript; charset=utf-8", headers=_HEADERS
        )

    @router.get("/dashboard.css", include_in_schema=False, name="relier_dashboard_css")
    def stylesheet() -> Response:
        return Response(
            _asset("dashboard.css"), media_type="text/css; charset=utf-8", headers=_HEADERS
        )

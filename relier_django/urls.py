"""The admin API's URLconf: ``path("relier/", include("relier_django.urls"))``.

Endpoints, the FastAPI router's paths: ``GET health``, ``status``,
``workers``, ``inflight``, ``tasks/<id>``, ``dlq``, ``dlq/<id>``,
``metrics``, and ``POST dlq/release`` and ``dlq/purge`` (body
``{"ids": [...]}``). URL names are ``relier:<name>``.

Authentication comes from ``settings.RELIER``: ``admin_token`` (a bearer
token) and/or staff users' sessions (``staff_auth``, on by default when
``django.contrib.auth`` is installed). With neither, importing this module
raises :class:`~django.core.exceptions.ImproperlyConfigured` unless
``settings.RELIER["allow_unauthenticated"]`` is True.
"""

from __future__ import annotations

from django.apps import apps
from django.core.exceptions import ImproperlyConfigured
from django.urls import path

from .admin import AdminAuth, admin_views
from .hub import adapter_options, relier_of

__all__ = ["app_name", "urlpatterns"]

app_name = "relier"


def _auth() -> AdminAuth:
    options = adapter_options()
    token = relier_of().settings.admin_token
    staff = options.get("staff_auth", True) and apps.is_installed("django.contrib.auth")
    allow = options.get("allow_unauthenticated", False)
    if token is None and not staff and not allow:
        raise ImproperlyConfigured(
            'the Relier admin API needs authentication: set RELIER["admin_token"] (or '
            "RELIER_ADMIN_TOKEN), or install django.contrib.auth for staff sessions; set "
            'RELIER["allow_unauthenticated"] = True only where nothing but trusted clients '
            "reach the site"
        )
    return AdminAuth(token, staff=staff, allow_unauthenticated=allow)


_views = admin_views(_auth())
urlpatterns = [
    path("health", _views["health"], name="health"),
    path("status", _views["status"], name="status"),
    path("workers", _views["workers"], name="workers"),
    path("inflight", _views["inflight"], name="inflight"),
    path("tasks/<str:task_id>", _views["task"], name="task"),
    path("dlq", _views["dlq"], name="dlq"),
    path("dlq/release", _views["dlq_release"], name="dlq_release"),
    path("dlq/purge", _views["dlq_purge"], name="dlq_purge"),
    path("dlq/<str:task_id>", _views["dlq_show"], name="dlq_show"),
    path("metrics", _views["metrics"], name="metrics"),
]

"""relier_django with Django's test client: the AppConfig and its settings, a
push from a view, 429 with Retry-After, the admin API's auth (token and staff
sessions, CSRF) and JSON, the system check, and ``manage.py rl``.

Django's settings are process-wide: the ``project`` fixture configures them
once, from ``tests/adapters/django_project``, the first time a test here
needs them; no other test module uses Django. Its ``ready()`` makes the
project's hub Relier's process-wide default, which the fixture resets after
this module.
"""

from __future__ import annotations

import dataclasses
import json
import math
import runpy
from collections.abc import Iterator
from typing import Any

import django
import pytest
from django.apps import apps
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client, override_settings

import relier
import relier.hub
from relier.ops import inspection
from relier.testing import RedisServer
from relier_django import relier_of, settings_from_django
from relier_django.checks import check_middleware
from tests.adapters.django_project import settings as project_settings

TOKEN = "django-admin-token-0123456789abcdef"
AUTH = {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"}
CSRF = "A" * 32


@pytest.fixture(scope="module")
def project(rl_redis: RedisServer) -> Iterator[None]:
    """Django configured with the test project, its database migrated."""
    if not settings.configured:
        names = {k: getattr(project_settings, k) for k in dir(project_settings) if k.isupper()}
        # Keys in either case, as settings.RELIER allows.
        relier_settings = {"REDIS_URL": rl_redis.url, "admin_token": TOKEN}
        settings.configure(**names, RELIER=relier_settings)
        django.setup()
        call_command("migrate", verbosity=0)
    yield
    relier.hub.reset()


@pytest.fixture
def redis(project: None, rl_redis_url: str) -> str:
    """A flushed Redis (``rl_redis_url`` flushes it) for a test on the project."""
    return rl_redis_url


@pytest.fixture
def staff(project: None) -> Iterator[Any]:
    from django.contrib.auth.models import User

    user = User.objects.create_user("ada", password="pw", is_staff=True)
    yield user
    user.delete()


@pytest.fixture
def visitor(project: None) -> Iterator[Any]:
    from django.contrib.auth.models import User

    user = User.objects.create_user("bob", password="pw")
    yield user
    user.delete()


# -- the AppConfig and settings.RELIER ------------------------------------------------------


def test_ready_builds_the_project_hub_and_makes_it_the_default(project: None) -> None:
    hub = relier_of()
    assert hub is apps.get_app_config("relier_django").hub
    assert hub is relier.current()
    assert hub.settings.admin_token is not None
    assert hub.settings.admin_token.get_secret_value() == TOKEN


def test_settings_keys_in_either_case_are_validated_by_relier_settings(project: None) -> None:
    got = settings_from_django({"KEY_PREFIX": "shop", "max_retries": 5, "RELIER_RESULT_TTL": 60})
    assert (got.key_prefix, got.max_retries, got.result_ttl) == ("shop", 5, 60)
    with pytest.raises(ImproperlyConfigured, match="RELIER_REDIS_URL"):
        settings_from_django({"redis_url": "http://example.com"})
    with pytest.raises(ImproperlyConfigured, match="'redis_ulr'"):
        settings_from_django({"redis_ulr": "redis://x"})
    with pytest.raises(ImproperlyConfigured, match="RELIER_ADMIN_TOKEN") as info:
        settings_from_django({"admin_token": "short-secret"})
    assert "short-secret" not in str(info.value)
    with pytest.raises(ImproperlyConfigured, match="twice"):
        settings_from_django({"redis_url": "redis://a", "REDIS_URL": "redis://b"})
    with override_settings(RELIER=["redis_url"]), pytest.raises(ImproperlyConfigured):
        settings_from_django()


def test_a_celery_app_that_cannot_be_used_is_refused_at_ready(project: None) -> None:
    config = apps.get_app_config("relier_django")
    hub = config.hub
    with (
        override_settings(RELIER={"celery_app": "no_such_module:app"}),
        pytest.raises(ImproperlyConfigured, match="no_such_module:app"),
    ):
        config.ready()
    with (
        override_settings(RELIER={"celery_app": "tests.adapters.django_project.settings:DEBUG"}),
        pytest.raises(ImproperlyConfigured, match="not a Celery app"),
    ):
        config.ready()
    assert config.hub is hub and relier.current() is hub


def test_the_system_check_warns_without_the_middleware(project: None) -> None:
    assert check_middleware() == []
    with override_settings(MIDDLEWARE=[]):
        assert [w.id for w in check_middleware()] == ["relier.W001"]


def test_the_admin_urls_refuse_to_exist_without_authentication(
    project: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = apps.get_app_config("relier_django")
    monkeypatch.setattr(config, "hub", relier.Relier(relier.load_settings()))
    with (
        override_settings(RELIER={"staff_auth": False}),
        pytest.raises(ImproperlyConfigured, match="allow_unauthenticated"),
    ):
        runpy.run_module("relier_django.urls")
    with override_settings(RELIER={"staff_auth": False, "allow_unauthenticated": True}):
        module = runpy.run_module("relier_django.urls")
    assert len(module["urlpatterns"]) == 10
    with (
        override_settings(RELIER={"allow_unauthenticated": "yes"}),
        pytest.raises(ImproperlyConfigured, match="must be a bool"),
    ):
        runpy.run_module("relier_django.urls")


# -- views: push, 429 -------------------------------------------------------------------------


def test_a_view_pushes_with_the_project_hub(redis: str) -> None:
    client = Client()
    response = client.post("/signup?email=ada@example.com")
    assert response.status_code == 200
    task_id = response.json()["task_id"]
    detail = client.get(f"/relier/tasks/{task_id}", **AUTH).json()
    assert detail["task"] == "tests.adapters.django_project.tasks.django_welcome"
    assert detail["state"] in ("QUEUED", "PENDING")
    assert "ada@example.com" in detail["envelope"]


def test_a_refused_push_is_a_429_with_retry_after(redis: str) -> None:
    client = Client()
    assert client.post("/limited?n=1").status_code == 200
    refused = client.post("/limited?n=2")
    assert refused.status_code == 429
    assert refused["Content-Type"] == "application/problem+json"
    problem = refused.json()
    assert problem["status"] == 429 and problem["title"] == "Too Many Requests"
    assert problem["reason"] == "rate" and 0 < problem["retry_after"] <= 60
    assert refused["Retry-After"] == str(max(1, math.ceil(problem["retry_after"])))
    assert "django_limited" not in refused.content.decode()


# -- the admin API: auth --------------------------------------------------------------------


def test_the_token_is_required(redis: str) -> None:
    client = Client()
    missing = client.get("/relier/status")
    assert missing.status_code == 401
    assert missing["WWW-Authenticate"] == "Bearer"
    assert missing.json() == {"detail": "Not authenticated"}
    basic = client.get("/relier/status", HTTP_AUTHORIZATION="Basic YWRhOnB3")
    assert basic.status_code == 401
    wrong = client.get("/relier/status", HTTP_AUTHORIZATION="Bearer wrong-token-0123456789")
    assert wrong.status_code == 403
    assert client.get("/relier/status", **AUTH).status_code == 200


def test_token_posts_need_no_csrf_token(redis: str) -> None:
    client = Client(enforce_csrf_checks=True)
    body = json.dumps({"ids": ["nope"]})
    response = client.post("/relier/dlq/release", body, "application/json", **AUTH)
    assert response.status_code == 200
    assert response.json() == {"released": {}, "refused": {"nope": "MISSING"}}
    unauthenticated = client.post("/relier/dlq/release", body, "application/json")
    assert unauthenticated.status_code == 401


def test_staff_sessions_are_let_in_and_keep_csrf(redis: str, staff: Any, visitor: Any) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff)
    assert client.get("/relier/status").status_code == 200
    body = json.dumps({"ids": ["nope"]})
    # A session POST without the CSRF token is refused: the session is an ambient credential.
    forged = client.post("/relier/dlq/purge", body, "application/json")
    assert forged.status_code == 403
    assert forged.json() == {"detail": "CSRF verification failed"}
    client.cookies["csrftoken"] = CSRF
    purged = client.post("/relier/dlq/purge", body, "application/json", HTTP_X_CSRFTOKEN=CSRF)
    assert purged.status_code == 200
    assert purged.json() == {"purged": [], "refused": {"nope": "MISSING"}}
    # A wrong bearer token is judged alone, session or not.
    wrong = client.get("/relier/status", HTTP_AUTHORIZATION="Bearer wrong-token-0123456789")
    assert wrong.status_code == 403

    other = Client()
    other.force_login(visitor)
    refused = other.get("/relier/status")
    assert refused.status_code == 403
    assert refused.json() == {"detail": "the admin API is for staff users"}


# -- the admin API: JSON --------------------------------------------------------------------


def _fields(cls: type[Any]) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def test_the_admin_endpoints_answer_the_core_queries_as_json(redis: str) -> None:
    client = Client()
    task_id = client.post("/signup?email=x@example.com").json()["task_id"]

    def get(path: str, **params: Any) -> Any:
        response = client.get(f"/relier/{path}", params, **AUTH)
        assert response.status_code == 200, response.content
        assert response["Content-Type"] == "application/json"
        return response.json()

    health = get("health")
    assert health["status"] == "ok" and health["workers_alive"] == 0
    status = get("status", queue=["celery"])
    assert set(status) == _fields(inspection.Status)
    assert {"name": "celery", "depth": 1} in status["queues"]
    assert get("workers") == [] and get("inflight") == []
    assert set(get(f"tasks/{task_id}")) == _fields(inspection.TaskDetail)
    assert get("dlq") == {"entries": [], "truncated": False}
    metrics = get("metrics")
    assert metrics["queue_depth"]["celery"] == 1 and metrics["dlq"] == 0

    assert client.get("/relier/tasks/nope", **AUTH).status_code == 404
    assert client.get("/relier/dlq/nope", **AUTH).status_code == 404
    assert client.get("/relier/tasks/a{b}", **AUTH).status_code == 422
    bad = client.get("/relier/dlq", {"limit": 0, "reason": "nope"}, **AUTH)
    assert bad.status_code == 422
    assert {tuple(e["loc"]) for e in bad.json()["detail"]} == {
        ("query", "limit"), ("query", "reason")
    }  # fmt: skip
    assert client.post("/relier/dlq/release", "{", "application/json", **AUTH).status_code == 400
    empty = client.post("/relier/dlq/purge", '{"ids": []}', "application/json", **AUTH)
    assert empty.status_code == 422
    assert client.get("/relier/dlq/release", **AUTH).status_code == 405
    assert client.post("/relier/status", **AUTH).status_code == 405


# -- manage.py rl ---------------------------------------------------------------------------


def test_manage_py_rl_runs_the_cli_on_the_project_settings(
    redis: str, capsys: pytest.CaptureFixture[str]
) -> None:
    Client().post("/signup?email=y@example.com")
    call_command("rl", "status", "--json")
    status = json.loads(capsys.readouterr().out)
    assert {"name": "celery", "depth": 1} in status["queues"]
    with pytest.raises(CommandError) as info:
        call_command("rl", "task", "no-such-task")
    assert info.value.returncode == 1
    assert "no-such-task" in capsys.readouterr().err

"""relier_flask with Flask's test client, on a real Redis.

No worker runs here: pushes stay in their queue, and DLQ entries are made
with the dead-letter script directly. tests/adapters/test_flask_live.py
drives a real server and worker.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from typing import Any, NoReturn

import pytest
from flask import Flask, Response, abort, request
from flask.testing import FlaskClient
from pydantic import BaseModel

import relier
from relier import (
    AdmissionRejectedError,
    ConfigurationError,
    TaskNotFoundError,
    load_settings,
    rl_task,
)
from relier.hub import reset
from relier.ops import admin as schemas
from relier.ops import dlq as core_dlq
from relier.ops import inspection, stats
from relier_flask import AdminToken, Relier, relier_of
from relier_flask.admission import retry_after_seconds
from tests.adapters._dlq import dead_letter

TOKEN = "a-flask-admin-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@rl_task(name="tests.flask.greet")
def greet(name: str) -> str:
    return f"Hello, {name}!"


@rl_task(name="tests.flask.limited", rate_limit="1/m")
def limited(n: int) -> int:
    return n


@rl_task(name="tests.flask.capped", max_queue_depth=1, queue="flask-capped")
def capped(n: int) -> int:
    return n


def make_app(
    rl_redis_url: str | None,
    ext: Relier | None = None,
    *,
    admin: dict[str, Any] | None = None,
    **settings: Any,
) -> Flask:
    """A Flask app whose views push with the extension (``rl.push``)."""
    app = Flask(__name__)
    app.config["TESTING"] = True
    if rl_redis_url is not None:
        app.config["RELIER_REDIS_URL"] = rl_redis_url
    app.config.update({f"RELIER_{k.upper()}": v for k, v in settings.items()})
    rl = ext or Relier(**(admin if admin is not None else {"token": TOKEN}))
    rl.init_app(app)

    @app.post("/greet")
    def push_greet() -> dict[str, str]:
        handle = rl.push(greet, request.args["name"])
        return {"id": handle.id, "task": handle.task_name}

    @app.post("/greet-bare")
    def push_bare() -> dict[str, str]:
        # The documented pattern for settings from the environment: task.push as is.
        handle = greet.push(request.args["name"])
        return {"id": handle.id, "task": handle.task_name}

    @app.post("/later")
    def push_later() -> dict[str, str]:
        handle = rl.push(greet.with_options(countdown=60), request.args["name"])
        return {"id": handle.id}

    @app.post("/many")
    def push_many() -> dict[str, list[str]]:
        handles = rl.push_many(greet, [("a",), ("b",)])
        return {"ids": [h.id for h in handles]}

    @app.get("/state/<task_id>")
    def state(task_id: str) -> dict[str, str]:
        return {"state": rl.handle(task_id).state()}

    @app.post("/limited")
    def push_limited() -> dict[str, str]:
        return {"id": rl.push(limited, 1).id}

    @app.post("/limited-bare")
    def push_limited_bare() -> dict[str, str]:
        return {"id": limited.push(1).id}

    @app.post("/capped")
    def push_capped() -> dict[str, str]:
        return {"id": rl.push(capped, 1).id}

    @app.get("/refused")
    def refused() -> NoReturn:
        raise AdmissionRejectedError("tests.flask.secret_task", 2.25, "rate")

    return app


@pytest.fixture
def apps() -> Iterator[list[Flask]]:
    """Apps made by a test; their hubs' Redis clients are closed at its end."""
    made: list[Flask] = []
    yield made
    for app in made:
        hub = app.extensions.get("relier")
        if hub is not None:
            hub.close()


@pytest.fixture
def app(rl_redis_url: str, apps: list[Flask]) -> Flask:
    made = make_app(rl_redis_url)
    apps.append(made)
    return made


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def env_default(rl_redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The process-wide default hub reads the test Redis from the environment."""
    monkeypatch.setenv("RELIER_REDIS_URL", rl_redis_url)
    reset()
    yield
    reset()


# -- the extension and its hub ----------------------------------------------------------------


def test_push_in_a_view_journals_and_queues_the_task(app: Flask, client: FlaskClient) -> None:
    response = client.post("/greet", query_string={"name": "Ada"})
    assert response.status_code == 200, response.text
    body = response.get_json()
    assert body["task"] == "tests.flask.greet"
    hub = relier_of(app)
    detail = inspection.task_detail(hub, body["id"])
    assert (detail.state, detail.queue) == ("PENDING", "celery")
    assert '"Ada"' in detail.envelope
    assert hub.redis.llen(hub.keys.queue("celery")) == 1
    state = client.get(f"/state/{body['id']}")
    assert state.get_json() == {"state": "PENDING"}


def test_the_hub_is_in_app_extensions_and_uses_app_config(
    rl_redis_url: str, apps: list[Flask]
) -> None:
    app = make_app(rl_redis_url, key_prefix="flaskapp")
    apps.append(app)
    hub = app.extensions["relier"]
    assert isinstance(hub, relier.Relier) and hub is relier_of(app)
    assert hub is not relier.current()
    assert hub.settings.key_prefix == "flaskapp"
    task_id = app.test_client().post("/greet", query_string={"name": "x"}).get_json()["id"]
    assert hub.redis.hget(f"flaskapp:{{{task_id}}}:job", "state") == b"PENDING"
    assert hub.redis.exists(f"rl:{{{task_id}}}:job") == 0


def test_options_and_push_many_go_through_the_apps_hub(app: Flask, client: FlaskClient) -> None:
    hub = relier_of(app)
    later = client.post("/later", query_string={"name": "x"}).get_json()["id"]
    assert hub.redis.zscore(hub.keys.schedule, later) is not None
    assert hub.redis.llen(hub.keys.queue("celery")) == 0
    ids = client.post("/many").get_json()["ids"]
    assert [inspection.task_detail(hub, i).state for i in ids] == ["PENDING", "PENDING"]


def test_bare_task_push_in_a_view_uses_the_default_hub_from_the_environment(
    env_default: None, apps: list[Flask]
) -> None:
    # No RELIER_* in app.config: the app shares relier.current(), so task.push
    # in a view and the admin API see the same Redis and prefix.
    app = make_app(None)
    apps.append(app)
    assert relier_of(app) is relier.current()
    client = app.test_client()
    task_id = client.post("/greet-bare", query_string={"name": "Bo"}).get_json()["id"]
    detail = client.get(f"/relier/tasks/{task_id}", headers=AUTH).get_json()
    assert (detail["state"], detail["task"]) == ("PENDING", "tests.flask.greet")
    assert client.post("/limited-bare").status_code == 200
    assert client.post("/limited-bare").status_code == 429


def test_init_app_registers_one_extension_on_many_apps(
    rl_redis_url: str, apps: list[Flask]
) -> None:
    rl = Relier(token=TOKEN)
    first = make_app(rl_redis_url, rl, key_prefix="one")
    second = make_app(rl_redis_url, rl, key_prefix="two")
    apps += [first, second]
    assert relier_of(first).settings.key_prefix == "one"
    assert relier_of(second).settings.key_prefix == "two"
    one = first.test_client().post("/greet", query_string={"name": "a"}).get_json()["id"]
    two = second.test_client().post("/greet", query_string={"name": "b"}).get_json()["id"]
    assert inspection.task_detail(relier_of(first), one).state == "PENDING"
    assert inspection.task_detail(relier_of(second), two).state == "PENDING"
    with pytest.raises(TaskNotFoundError):
        inspection.task_detail(relier_of(first), two)
    with pytest.raises(ConfigurationError, match="already registered"):
        rl.init_app(first)


def test_a_hub_can_be_passed_in(rl_redis_url: str, apps: list[Flask]) -> None:
    hub = relier.Relier(load_settings(redis_url=rl_redis_url, key_prefix="given"))
    try:
        app = Flask(__name__)
        Relier(app, relier=hub, token=TOKEN)
        assert relier_of(app) is hub
        app2 = Flask(__name__)
        app2.config["RELIER_KEY_PREFIX"] = "ignored"
        with pytest.raises(ConfigurationError, match="RELIER_KEY_PREFIX"):
            Relier(app2, relier=hub, token=TOKEN)
        assert "relier" not in app2.extensions
    finally:
        hub.close()


@pytest.mark.parametrize(
    ("config", "named"),
    [
        ({"RELIER_REDIS_URL": "http://nope"}, "RELIER_REDIS_URL"),
        ({"RELIER_MAX_RETRIES": -1}, "RELIER_MAX_RETRIES"),
        ({"RELIER_LEASE_TTL_MS": "soon"}, "RELIER_LEASE_TTL_MS"),
        ({"RELIER_ADMIN_TOKEN": "short"}, "RELIER_ADMIN_TOKEN"),
        ({"RELIER_REDIS_ULR": "redis://x"}, "RELIER_REDIS_ULR"),
        ({"RELIER_ADMIN_TOKN": "a-secret-token-value-0123456789"}, "RELIER_ADMIN_TOKN"),
    ],
)
def test_invalid_config_is_refused_naming_the_key(config: dict[str, Any], named: str) -> None:
    app = Flask(__name__)
    app.config.update(config)
    with pytest.raises(ConfigurationError, match=named) as caught:
        Relier(app, token=TOKEN)
    message = str(caught.value)
    assert "short" not in message and "a-secret-token-value" not in message
    assert "relier" not in app.extensions
    assert not app.blueprints


def test_relier_of_an_app_without_the_extension_names_the_fix() -> None:
    app = Flask(__name__)
    with pytest.raises(ConfigurationError, match=r"Relier\(app\)"):
        relier_of(app)

    @app.get("/x")
    def x() -> str:
        relier_of()
        return "not reached"

    app.config["TESTING"] = True
    with pytest.raises(ConfigurationError, match="init_app"):
        app.test_client().get("/x")


# -- 429 --------------------------------------------------------------------------------------


def assert_problem(response: Any, reason: str) -> dict[str, Any]:
    assert response.status_code == 429
    assert response.headers["Content-Type"] == "application/problem+json"
    body: dict[str, Any] = response.get_json()
    assert body["type"] == "about:blank"
    assert body["title"] == "Too Many Requests"
    assert body["status"] == 429
    assert body["reason"] == reason
    assert isinstance(body["detail"], str) and "retry after" in body["detail"]
    header = response.headers["Retry-After"]
    assert header.isdigit(), header
    assert int(header) == max(1, math.ceil(body["retry_after"]))
    return body


def test_a_rate_limited_push_is_a_429_with_retry_after(client: FlaskClient) -> None:
    assert client.post("/limited").status_code == 200
    body = assert_problem(client.post("/limited"), "rate")
    assert 59 < body["retry_after"] <= 60
    again = client.post("/limited")
    assert again.headers["Retry-After"] == "60"
    # The problem names no task: clients do not learn internal task names.
    assert "tests.flask" not in again.text


def test_a_queue_depth_cap_is_a_429_with_the_configured_wait(
    rl_redis_url: str, apps: list[Flask]
) -> None:
    app = make_app(rl_redis_url, depth_retry_after=2.5)
    apps.append(app)
    client = app.test_client()
    assert client.post("/capped").status_code == 200
    body = assert_problem(client.post("/capped"), "depth")
    assert body["retry_after"] == 2.5
    assert client.post("/capped").headers["Retry-After"] == "3"


def test_an_error_raised_by_the_view_itself_is_a_429(client: FlaskClient) -> None:
    response = client.get("/refused")
    body = assert_problem(response, "rate")
    assert body["retry_after"] == 2.25 and response.headers["Retry-After"] == "3"
    assert "secret_task" not in response.text


def test_the_problem_type_can_be_set_and_the_handler_left_out(
    rl_redis_url: str, apps: list[Flask]
) -> None:
    typed = make_app(rl_redis_url, admin={"token": TOKEN, "problem_type": "urn:busy"})
    bare = make_app(rl_redis_url, admin={"token": TOKEN, "admission_handler": False})
    apps += [typed, bare]
    assert typed.test_client().get("/refused").get_json()["type"] == "urn:busy"
    with pytest.raises(AdmissionRejectedError):
        bare.test_client().get("/refused")


@pytest.mark.parametrize(
    ("seconds", "header"),
    [(0.0, 1), (0.001, 1), (1.0, 1), (1.001, 2), (59.995, 60), (float("inf"), 1), (-3.0, 1)],
)
def test_retry_after_is_the_wait_rounded_up_and_at_least_one(seconds: float, header: int) -> None:
    assert retry_after_seconds(seconds) == header


# -- the admin API: authentication ------------------------------------------------------------

ADMIN_GETS = ["/relier/health", "/relier/status", "/relier/workers", "/relier/inflight",
              "/relier/tasks/x", "/relier/dlq", "/relier/dlq/x", "/relier/metrics"]  # fmt: skip
ADMIN_POSTS = ["/relier/dlq/release", "/relier/dlq/purge"]


def every_admin_call(client: FlaskClient, headers: dict[str, str]) -> list[Any]:
    return [client.get(p, headers=headers) for p in ADMIN_GETS] + [
        client.post(p, json={"ids": ["x"]}, headers=headers) for p in ADMIN_POSTS
    ]


def test_the_admin_api_needs_the_token(client: FlaskClient) -> None:
    for response in every_admin_call(client, {}):
        assert response.status_code == 401, (response.request.path, response.text)
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert response.get_json() == {"detail": "Not authenticated"}
    for headers in (
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": f"Bearer {TOKEN[:-1]}"},
        {"Authorization": f"bearer  {TOKEN[1:]}"},
    ):
        for response in every_admin_call(client, headers):
            assert response.status_code == 403, (response.request.path, response.text)
            assert TOKEN not in response.text
    # Another scheme, or a scheme without a token, is no credential at all.
    for value in (f"Basic {TOKEN}", "Bearer", "Bearer   ", TOKEN):
        assert client.get("/relier/status", headers={"Authorization": value}).status_code == 401
    codes = {r.status_code for r in every_admin_call(client, AUTH)}
    assert codes <= {200, 404}, codes
    assert (
        client.get("/relier/status", headers={"Authorization": f"bearer {TOKEN}"}).status_code
        == 200
    )


def test_the_token_can_come_from_app_config_or_the_environment(
    rl_redis_url: str, apps: list[Flask], monkeypatch: pytest.MonkeyPatch
) -> None:
    from_config = make_app(rl_redis_url, admin={}, admin_token=TOKEN)
    monkeypatch.setenv("RELIER_ADMIN_TOKEN", TOKEN + "-env")
    from_env = make_app(rl_redis_url, admin={})
    apps += [from_config, from_env]
    client = from_config.test_client()
    assert client.get("/relier/status").status_code == 401
    assert client.get("/relier/status", headers=AUTH).status_code == 200
    env_auth = {"Authorization": f"Bearer {TOKEN}-env"}
    assert from_env.test_client().get("/relier/status", headers=AUTH).status_code == 403
    assert from_env.test_client().get("/relier/status", headers=env_auth).status_code == 200


def test_registering_without_authentication_is_refused(
    rl_redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RELIER_ADMIN_TOKEN", raising=False)
    app = Flask(__name__)
    app.config["RELIER_REDIS_URL"] = rl_redis_url
    with pytest.raises(ConfigurationError, match="allow_unauthenticated"):
        Relier(app)
    assert "relier" not in app.extensions and not app.blueprints
    with pytest.raises(ConfigurationError, match="16"):
        Relier(token="short")
    with pytest.raises(ConfigurationError, match="callable"):
        Relier(app, auth="admins")  # type: ignore[arg-type]


def test_allow_unauthenticated_must_be_explicit_and_admin_can_be_left_out(
    rl_redis_url: str, apps: list[Flask], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RELIER_ADMIN_TOKEN", raising=False)
    open_app = make_app(rl_redis_url, admin={"allow_unauthenticated": True})
    no_admin = make_app(rl_redis_url, admin={"admin": False})
    apps += [open_app, no_admin]
    assert open_app.test_client().get("/relier/status").status_code == 200
    assert no_admin.test_client().get("/relier/status").status_code == 404
    assert no_admin.test_client().post("/greet", query_string={"name": "x"}).status_code == 200


def test_the_apps_own_check_guards_the_api(rl_redis_url: str, apps: list[Flask]) -> None:
    def require_admin() -> Response | None:
        if request.headers.get("x-role") == "viewer":
            return Response("viewers cannot", status=403)
        if request.headers.get("x-role") != "admin":
            abort(403, "admins only")
        return None

    app = make_app(rl_redis_url, admin={"auth": require_admin})
    apps.append(app)
    client = app.test_client()
    denied = client.get("/relier/status")
    assert denied.status_code == 403
    assert denied.get_json() == {"detail": "admins only"}
    assert client.get("/relier/status", headers={"x-role": "viewer"}).text == "viewers cannot"
    assert client.get("/relier/status", headers={"x-role": "admin"}).status_code == 200
    # The app's own routes are not behind the admin check.
    assert client.post("/greet", query_string={"name": "x"}).status_code == 200


def test_token_and_check_must_both_pass(rl_redis_url: str, apps: list[Flask]) -> None:
    def require_header() -> None:
        if "x-ok" not in request.headers:
            abort(403)

    app = make_app(rl_redis_url, admin={"token": TOKEN, "auth": require_header})
    apps.append(app)
    client = app.test_client()
    assert client.get("/relier/status", headers=AUTH).status_code == 403
    assert client.get("/relier/status", headers={**AUTH, "x-ok": "1"}).status_code == 200
    assert client.get("/relier/status", headers={"x-ok": "1"}).status_code == 401


def test_the_token_is_never_in_a_repr(app: Flask) -> None:
    rl = Relier(token=TOKEN)
    assert TOKEN not in repr(rl) and TOKEN not in repr(vars(rl))
    assert TOKEN not in repr(AdminToken(TOKEN)) and TOKEN not in repr(vars(AdminToken(TOKEN)))
    assert TOKEN not in repr(app.before_request_funcs)


# -- the admin API: what it shows -------------------------------------------------------------


def dead_task(client: FlaskClient, hub: relier.Relier, name: str = "x") -> str:
    """Push a greet and dead-letter it (as a worker refusing it would)."""
    task_id: str = client.post("/greet", query_string={"name": name}).get_json()["id"]
    dead_letter(hub, task_id)
    return task_id


def test_status_workers_inflight_metrics_and_health_match_the_core(
    app: Flask, client: FlaskClient
) -> None:
    client.post("/greet", query_string={"name": "a"})
    hub = relier_of(app)
    status = client.get("/relier/status", headers=AUTH).get_json()
    assert status == dataclasses.asdict(inspection.status(hub, now_ms=status["now_ms"]))
    assert {"name": "celery", "depth": 1} in status["queues"]
    assert status["rates"]["counts"]["dispatched"] == 1
    extra = client.get(
        "/relier/status", query_string={"queue": ["extra-q", "other-q"]}, headers=AUTH
    ).get_json()
    assert {"name": "extra-q", "depth": 0} in extra["queues"]
    assert {"name": "other-q", "depth": 0} in extra["queues"]
    assert client.get("/relier/workers", headers=AUTH).get_json() == []
    assert client.get("/relier/inflight", headers=AUTH).get_json() == []
    assert client.get("/relier/inflight?task=x.*&queue=q", headers=AUTH).get_json() == []
    metrics = client.get("/relier/metrics", headers=AUTH).get_json()
    assert metrics["queue_depth"]["celery"] == 1
    assert metrics["events"]["dispatched"] == 1
    assert set(metrics["events"]) == set(stats.EVENTS)
    health = client.get("/relier/health", headers=AUTH).get_json()
    assert health["status"] == "ok" and health["workers_alive"] == 0


def test_task_detail_and_not_found(app: Flask, client: FlaskClient) -> None:
    task_id = client.post("/greet", query_string={"name": "Grace"}).get_json()["id"]
    detail = client.get(f"/relier/tasks/{task_id}", headers=AUTH).get_json()
    assert detail == dataclasses.asdict(inspection.task_detail(relier_of(app), task_id))
    assert detail["state"] == "PENDING"
    assert [e["e"] for e in detail["history"]] == ["dispatched"]
    missing = client.get("/relier/tasks/nope", headers=AUTH)
    assert missing.status_code == 404
    assert "nope" in missing.get_json()["detail"]
    braces = client.get("/relier/tasks/a%7Bb", headers=AUTH)
    assert braces.status_code == 422
    assert braces.get_json()["detail"][0]["loc"] == ["path"]
    assert client.get("/relier/tasks/" + "x" * 201, headers=AUTH).status_code == 422


def test_dlq_list_show_release_and_purge(app: Flask, client: FlaskClient) -> None:
    hub = relier_of(app)
    first, second, third = (dead_task(client, hub, n) for n in "abc")
    alive = client.post("/greet", query_string={"name": "alive"}).get_json()["id"]
    page = client.get("/relier/dlq", headers=AUTH).get_json()
    assert [e["id"] for e in page["entries"]] == [third, second, first]
    assert page["truncated"] is False
    assert page["entries"][0] == dataclasses.asdict(core_dlq.find_dead(hub, limit=1)[0])
    assert page["entries"][0]["reason"] == "unknown_task"
    limited_page = client.get("/relier/dlq?limit=2", headers=AUTH).get_json()
    assert len(limited_page["entries"]) == 2 and limited_page["truncated"] is True
    by_reason = client.get("/relier/dlq?reason=poison_pill", headers=AUTH).get_json()
    assert by_reason["entries"] == []
    by_task = client.get("/relier/dlq?task=tests.flask.*&since_ms=0", headers=AUTH).get_json()
    assert len(by_task["entries"]) == 3

    shown = client.get(f"/relier/dlq/{first}", headers=AUTH).get_json()
    assert shown == dataclasses.asdict(core_dlq.get_dead(hub, first))
    assert shown["error"] == "no such task here"
    assert client.get(f"/relier/dlq/{alive}", headers=AUTH).status_code == 404

    released = client.post(
        "/relier/dlq/release", json={"ids": [first, alive, "missing"]}, headers=AUTH
    ).get_json()
    assert list(released["released"]) == [first]
    assert released["refused"] == {alive: "PENDING", "missing": "MISSING"}
    assert inspection.task_detail(hub, first).state == "PENDING"
    assert hub.redis.llen(hub.keys.queue("celery")) == 5  # 4 pushes + 1 release

    purged = client.post(
        "/relier/dlq/purge", json={"ids": [second, first]}, headers=AUTH
    ).get_json()
    assert purged == {"purged": [second], "refused": {first: "PENDING"}}
    remaining = client.get("/relier/dlq", headers=AUTH).get_json()["entries"]
    assert [e["id"] for e in remaining] == [third]


@pytest.mark.parametrize(
    "query",
    ["limit=0", "limit=1001", "limit=ten", "reason=nonsense", "since_ms=-1",
     f"before_ms={2**53 + 1}", "task=" + "x" * 201],
)  # fmt: skip
def test_dlq_list_refuses_bad_parameters(client: FlaskClient, query: str) -> None:
    response = client.get(f"/relier/dlq?{query}", headers=AUTH)
    assert response.status_code == 422, response.text
    assert response.get_json()["detail"][0]["loc"][0] == "query"


@pytest.mark.parametrize(
    "body",
    [{}, {"ids": []}, {"ids": "x"}, {"ids": [""]}, {"ids": ["a}"]}, {"ids": ["x"], "all": 1},
     {"ids": ["x"] * 1001}, [], None],
)  # fmt: skip
def test_release_and_purge_refuse_malformed_bodies(client: FlaskClient, body: Any) -> None:
    for path in ADMIN_POSTS:
        response = client.post(path, json=body, headers=AUTH)
        assert response.status_code == 422, (path, body, response.text)
        assert response.get_json()["detail"][0]["loc"][0] == "body"


def test_a_body_that_is_not_json_is_a_400(client: FlaskClient) -> None:
    for path in ADMIN_POSTS:
        response = client.post(path, data="ids=x", headers=AUTH)
        assert response.status_code == 400
        assert "not JSON" in response.get_json()["detail"]


def test_redis_down_is_a_503(rl_redis_url: str, rl_redis: Any, apps: list[Flask]) -> None:
    app = make_app(rl_redis_url, socket_connect_timeout=0.5)
    apps.append(app)
    client = app.test_client()
    assert client.get("/relier/health", headers=AUTH).status_code == 200
    relier_of(app).close()
    rl_redis.stop()
    try:
        for path in ("/relier/health", "/relier/status"):
            response = client.get(path, headers=AUTH)
            assert response.status_code == 503
            assert "unreachable" in response.get_json()["detail"]
    finally:
        rl_redis.start()


def test_the_json_shapes_are_the_fastapi_routers(app: Flask, client: FlaskClient) -> None:
    """Each response has exactly the fields of relier_fastapi's response model."""
    hub = relier_of(app)
    dead = dead_task(client, hub)
    pending = client.post("/greet", query_string={"name": "x"}).get_json()["id"]

    def check(model: type[BaseModel], body: Any) -> None:
        assert set(body) == set(model.model_fields), model.__name__
        model.model_validate(body)

    get = {p: client.get(p, headers=AUTH).get_json() for p in (
        "/relier/health", "/relier/status", "/relier/metrics", "/relier/dlq",
        f"/relier/tasks/{pending}", f"/relier/dlq/{dead}",
    )}  # fmt: skip
    check(schemas.RelierHealth, get["/relier/health"])
    check(schemas.RelierStatus, get["/relier/status"])
    check(schemas.RelierMetrics, get["/relier/metrics"])
    check(schemas.RelierDlqPage, get["/relier/dlq"])
    check(schemas.RelierDeadSummary, get["/relier/dlq"]["entries"][0])
    check(schemas.RelierTaskDetail, get[f"/relier/tasks/{pending}"])
    check(schemas.RelierDeadTask, get[f"/relier/dlq/{dead}"])
    body = {"ids": [dead]}
    check(schemas.RelierReleased, client.post("/relier/dlq/release", json=body, headers=AUTH).json)
    check(schemas.RelierPurged, client.post("/relier/dlq/purge", json=body, headers=AUTH).json)

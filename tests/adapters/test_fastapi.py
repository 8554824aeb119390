"""relier_fastapi with FastAPI's TestClient and httpx's ASGITransport, on a real Redis.

No worker runs here: pushes stay in their queue, and DLQ entries are made
with the dead-letter script directly. tests/adapters/test_fastapi_live.py
drives a real server and worker.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any

import httpx
import httpx2  # what Starlette's TestClient runs on
import pytest
from fastapi import Depends, FastAPI, HTTPException, Request, WebSocket
from fastapi.testclient import TestClient
from pydantic import BaseModel

from relier import (
    AdmissionRejectedError,
    ConfigurationError,
    RedisUnavailableError,
    Relier,
    load_settings,
    rl_task,
)
from relier.ops import dlq as core_dlq
from relier.ops import inspection, stats
from relier_fastapi import (
    AdmissionMiddleware,
    Dispatcher,
    admission_exception_handler,
    rate_limit,
    relier_admin_router,
    relier_dispatcher,
    relier_lifespan,
    schemas,
)
from relier_fastapi.admission import retry_after_seconds
from tests.adapters._dlq import dead_letter

Pusher = Annotated[Dispatcher, Depends(relier_dispatcher)]
TOKEN = "a-test-admin-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@rl_task(name="tests.fastapi.greet")
def greet(name: str) -> str:
    return f"Hello, {name}!"


@rl_task(name="tests.fastapi.limited", rate_limit="1/m")
def limited(n: int) -> int:
    return n


@rl_task(name="tests.fastapi.capped", max_queue_depth=1, queue="fastapi-capped")
def capped(n: int) -> int:
    return n


class Pushed(BaseModel):
    id: str
    task: str


def make_app(
    rl_redis_url: str,
    *,
    middleware: bool = True,
    handler: bool = False,
    admin: dict[str, Any] | None = None,
    **settings: Any,
) -> FastAPI:
    relier_settings = load_settings(redis_url=rl_redis_url, **settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with relier_lifespan(app, settings=relier_settings):
            yield

    app = FastAPI(lifespan=lifespan)
    if middleware:
        app.add_middleware(AdmissionMiddleware)
    if handler:
        app.add_exception_handler(AdmissionRejectedError, admission_exception_handler)
    app.include_router(relier_admin_router(**(admin or {"token": TOKEN})))

    @app.post("/greet")
    async def push_greet(name: str, dispatcher: Pusher) -> Pushed:
        handle = await dispatcher.push(greet, name)
        return Pushed(id=handle.id, task=handle.task_name)

    @app.post("/later")
    async def push_later(name: str, dispatcher: Pusher) -> Pushed:
        handle = await dispatcher.push(greet.with_options(countdown=60), name)
        return Pushed(id=handle.id, task=handle.task_name)

    @app.post("/limited")
    async def push_limited(dispatcher: Pusher) -> Pushed:
        handle = await dispatcher.push(limited, 1)
        return Pushed(id=handle.id, task=handle.task_name)

    @app.post("/capped")
    async def push_capped(dispatcher: Pusher) -> Pushed:
        handle = await dispatcher.push(capped, 1)
        return Pushed(id=handle.id, task=handle.task_name)

    @app.get("/sync-refused")
    def sync_refused() -> None:
        # A sync endpoint runs in the thread pool: the error crosses threads.
        raise AdmissionRejectedError("tests.fastapi.secret_task", 2.25, "rate")

    return app


@pytest.fixture
def client(rl_redis_url: str) -> Iterator[TestClient]:
    with TestClient(make_app(rl_redis_url)) as c:
        yield c


def relier_of(client: TestClient) -> Relier:
    relier: Relier = client.app.state.relier  # type: ignore[attr-defined]
    return relier


# -- dispatch -------------------------------------------------------------------------------


def test_push_through_the_dependency_journals_and_queues_the_task(client: TestClient) -> None:
    response = client.post("/greet", params={"name": "Ada"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["task"] == "tests.fastapi.greet"
    relier = relier_of(client)
    detail = inspection.task_detail(relier, body["id"])
    assert (detail.state, detail.queue) == ("PENDING", "celery")
    assert '"Ada"' in detail.envelope
    assert relier.redis.llen(relier.keys.queue("celery")) == 1


def test_the_dispatcher_uses_the_app_settings_not_the_process_default(rl_redis_url: str) -> None:
    with TestClient(make_app(rl_redis_url, key_prefix="webapp")) as client:
        task_id = client.post("/greet", params={"name": "x"}).json()["id"]
        relier = relier_of(client)
        assert relier.redis.hget(f"webapp:{{{task_id}}}:job", "state") == b"PENDING"
        assert relier.redis.exists(f"rl:{{{task_id}}}:job") == 0


def test_a_task_with_options_keeps_them(client: TestClient) -> None:
    task_id = client.post("/later", params={"name": "x"}).json()["id"]
    relier = relier_of(client)
    assert relier.redis.zscore(relier.keys.schedule, task_id) is not None
    assert relier.redis.llen(relier.keys.queue("celery")) == 0


def test_lifespan_sets_state_and_removes_it_on_shutdown(rl_redis_url: str) -> None:
    app = make_app(rl_redis_url)
    with TestClient(app):
        assert isinstance(app.state.relier, Relier)
        assert isinstance(app.state.relier_dispatcher, Dispatcher)
    assert getattr(app.state, "relier", None) is None
    assert getattr(app.state, "relier_dispatcher", None) is None


def test_lifespan_can_be_the_app_lifespan_itself(
    rl_redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RELIER_REDIS_URL", rl_redis_url)
    from relier.hub import reset

    reset()
    try:
        app = FastAPI(lifespan=relier_lifespan)

        @app.get("/prefix")
        def prefix(dispatcher: Pusher) -> str:
            return dispatcher.relier.settings.redis_url

        with TestClient(app) as client:
            assert client.get("/prefix").json() == rl_redis_url
    finally:
        reset()


def test_startup_fails_when_redis_is_unreachable() -> None:
    app = make_app("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    with pytest.raises(RedisUnavailableError, match=r"127\.0\.0\.1:1/"), TestClient(app):
        pass


def test_the_dependency_without_the_lifespan_names_the_fix() -> None:
    app = FastAPI()

    @app.get("/x")
    def x(dispatcher: Pusher) -> None:
        raise AssertionError("not reached")

    with pytest.raises(ConfigurationError, match="relier_lifespan"):
        TestClient(app).get("/x")


async def test_push_works_with_httpx_asgi_transport(rl_redis_url: str) -> None:
    app = make_app(rl_redis_url)
    # ASGITransport does not run the lifespan: enter the app's own.
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http,
    ):
        first = await http.post("/limited")
        second = await http.post("/limited")
    assert first.status_code == 200, first.text
    assert second.status_code == 429
    assert second.headers["Retry-After"] == "60"


# -- 429 ------------------------------------------------------------------------------------


def assert_problem(response: httpx2.Response, reason: str) -> dict[str, Any]:
    assert response.status_code == 429
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["type"] == "about:blank"
    assert body["title"] == "Too Many Requests"
    assert body["status"] == 429
    assert body["reason"] == reason
    assert isinstance(body["detail"], str) and "retry after" in body["detail"]
    header = response.headers["Retry-After"]
    assert header.isdigit(), header
    assert int(header) == max(1, math.ceil(body["retry_after"]))
    return body


def test_a_rate_limited_push_is_a_429_with_retry_after(client: TestClient) -> None:
    assert client.post("/limited").status_code == 200
    body = assert_problem(client.post("/limited"), "rate")
    assert 59 < body["retry_after"] <= 60
    assert client.post("/limited").headers["Retry-After"] == "60"
    # The problem names no task: clients do not learn internal task names.
    assert "tests.fastapi" not in client.post("/limited").text


def test_a_queue_depth_cap_is_a_429_with_the_configured_wait(rl_redis_url: str) -> None:
    with TestClient(make_app(rl_redis_url, depth_retry_after=2.5)) as client:
        assert client.post("/capped").status_code == 200
        body = assert_problem(client.post("/capped"), "depth")
        assert body["retry_after"] == 2.5
        assert client.post("/capped").headers["Retry-After"] == "3"


def test_the_error_from_a_sync_endpoint_is_a_429_too(client: TestClient) -> None:
    body = assert_problem(client.get("/sync-refused"), "rate")
    assert body["retry_after"] == 2.25
    assert client.get("/sync-refused").headers["Retry-After"] == "3"
    assert "secret_task" not in client.get("/sync-refused").text


def test_the_exception_handler_alone_gives_the_same_429(rl_redis_url: str) -> None:
    with TestClient(make_app(rl_redis_url, middleware=False, handler=True)) as client:
        client.post("/limited")
        assert_problem(client.post("/limited"), "rate")
        assert_problem(client.get("/sync-refused"), "rate")


def test_without_middleware_or_handler_the_error_is_not_swallowed(rl_redis_url: str) -> None:
    with (
        TestClient(make_app(rl_redis_url, middleware=False)) as client,
        pytest.raises(AdmissionRejectedError),
    ):
        client.get("/sync-refused")


@pytest.mark.parametrize(
    ("seconds", "header"),
    [(0.0, 1), (0.001, 1), (1.0, 1), (1.001, 2), (59.995, 60), (float("inf"), 1), (-3.0, 1)],
)
def test_retry_after_is_the_wait_rounded_up_and_at_least_one(seconds: float, header: int) -> None:
    assert retry_after_seconds(seconds) == header


def test_the_middleware_lets_other_errors_and_scopes_through(rl_redis_url: str) -> None:
    app = make_app(rl_redis_url)

    @app.get("/boom")
    def boom() -> None:
        raise KeyError("boom")

    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text("hi")
        await websocket.close()

    with TestClient(app) as client:
        with pytest.raises(KeyError):
            client.get("/boom")
        with client.websocket_connect("/ws") as socket:
            assert socket.receive_text() == "hi"


def test_the_middleware_does_not_rewrite_a_response_already_started() -> None:
    async def streaming(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        raise AdmissionRejectedError("t", 1.0, "rate")

    client = TestClient(AdmissionMiddleware(streaming))
    with pytest.raises(AdmissionRejectedError):
        client.get("/")


@pytest.mark.parametrize(
    ("seconds", "wait"), [(float("inf"), 1.0), (float("nan"), 1.0), (-2.0, 0.0)]
)
def test_an_odd_retry_after_still_gives_a_valid_problem(seconds: float, wait: float) -> None:
    async def refusing(scope: Any, receive: Any, send: Any) -> None:
        raise AdmissionRejectedError("t", seconds, "rate")

    response = TestClient(AdmissionMiddleware(refusing)).get("/")
    assert response.headers["Retry-After"] == "1"
    assert response.json()["retry_after"] == wait


def test_an_exception_group_of_rejections_is_a_429() -> None:
    async def grouped(scope: Any, receive: Any, send: Any) -> None:
        raise ExceptionGroup("g", [AdmissionRejectedError("t", 4.5, "depth")])

    response = TestClient(AdmissionMiddleware(grouped, problem_type="urn:x")).get("/")
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "5"
    assert response.json()["type"] == "urn:x"


# -- rate_limit -----------------------------------------------------------------------------


def limited_app(rl_redis_url: str) -> tuple[FastAPI, list[str]]:
    app = make_app(rl_redis_url)
    ran: list[str] = []

    @app.get("/a", dependencies=[Depends(rate_limit("1/m"))])
    def a() -> str:
        ran.append("a")
        return "a"

    @app.post("/a", dependencies=[Depends(rate_limit("1/m"))])
    def post_a() -> str:
        ran.append("post a")
        return "post a"

    def client_key(request: Request) -> str | None:
        return request.headers.get("x-client")

    @app.get("/keyed", dependencies=[Depends(rate_limit("1/m", key=client_key))])
    def keyed() -> str:
        ran.append("keyed")
        return "keyed"

    async def async_key(request: Request) -> str:
        return "{" + request.headers.get("x-tenant", "") + "}" * 200

    shared = rate_limit("2/m", burst=2, name="shared", key=async_key)

    @app.get("/s1/{item}", dependencies=[Depends(shared)])
    def s1(item: int) -> int:
        ran.append("s1")
        return item

    @app.get("/s2", dependencies=[Depends(shared)])
    def s2() -> str:
        ran.append("s2")
        return "s2"

    @app.get("/burst", dependencies=[Depends(rate_limit("1/h", burst=3))])
    def burst() -> str:
        return "ok"

    return app, ran


def test_a_route_limit_refuses_before_the_endpoint_runs(rl_redis_url: str) -> None:
    app, ran = limited_app(rl_redis_url)
    with TestClient(app) as client:
        assert client.get("/a").status_code == 200
        body = assert_problem(client.get("/a"), "rate")
        assert 59 < body["retry_after"] <= 60
        assert ran == ["a"]
        # Each route has its own limit by default, methods included.
        assert client.post("/a").status_code == 200
        assert ran == ["a", "post a"]
        relier = relier_of(client)
        assert relier.redis.exists(relier.keys.rate("http:GET /a"))
        assert relier.redis.exists(relier.keys.rate("http:POST /a"))


def test_a_keyed_route_limit_counts_each_key_apart(rl_redis_url: str) -> None:
    app, ran = limited_app(rl_redis_url)
    with TestClient(app) as client:
        assert client.get("/keyed", headers={"x-client": "alice"}).status_code == 200
        assert client.get("/keyed", headers={"x-client": "bob"}).status_code == 200
        assert client.get("/keyed", headers={"x-client": "alice"}).status_code == 429
        # No key (None): the shared, unkeyed limit.
        assert client.get("/keyed").status_code == 200
        assert client.get("/keyed").status_code == 429
        assert ran == ["keyed"] * 3


def test_a_named_limit_is_shared_by_routes_and_odd_keys_are_hashed(rl_redis_url: str) -> None:
    app, ran = limited_app(rl_redis_url)
    with TestClient(app) as client:
        assert client.get("/s1/1", headers={"x-tenant": "t"}).status_code == 200
        assert client.get("/s2", headers={"x-tenant": "t"}).status_code == 200
        assert client.get("/s2", headers={"x-tenant": "t"}).status_code == 429
        assert client.get("/s1/2", headers={"x-tenant": "u"}).status_code == 200
        assert ran == ["s1", "s2", "s1"]
        relier = relier_of(client)
        names = [k.decode() for k in relier.redis.keys(relier.keys.rate("http:shared:*"))]
        assert len(names) == 2
        assert all(n.startswith("rl:rate:http:shared:h-") and "{" not in n for n in names)


def test_a_route_limit_with_a_burst(rl_redis_url: str) -> None:
    app, _ = limited_app(rl_redis_url)
    with TestClient(app) as client:
        codes = [client.get("/burst").status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]


@pytest.mark.parametrize(
    "kwargs",
    [{"rate": "ten per second"}, {"rate": "1/s", "burst": 0}, {"rate": "1/s", "key": "ip"},
     {"rate": "1/s", "name": "a{b}"}, {"rate": "1/s", "name": ""}],
)  # fmt: skip
def test_rate_limit_refuses_bad_options_at_once(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        rate_limit(**kwargs)


# -- the admin API: authentication ------------------------------------------------------------

ADMIN_GETS = ["/relier/health", "/relier/status", "/relier/workers", "/relier/inflight",
              "/relier/tasks/x", "/relier/dlq", "/relier/dlq/x", "/relier/metrics"]  # fmt: skip
ADMIN_POSTS = ["/relier/dlq/release", "/relier/dlq/purge"]


def every_admin_call(client: TestClient, headers: dict[str, str]) -> list[httpx2.Response]:
    return [client.get(p, headers=headers) for p in ADMIN_GETS] + [
        client.post(p, json={"ids": ["x"]}, headers=headers) for p in ADMIN_POSTS
    ]


def test_the_admin_api_needs_the_token(client: TestClient) -> None:
    for response in every_admin_call(client, {}):
        assert response.status_code == 401, (response.request.url, response.text)
        assert response.headers["WWW-Authenticate"] == "Bearer"
    for headers in (
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": f"Bearer {TOKEN[:-1]}"},
    ):
        for response in every_admin_call(client, headers):
            assert response.status_code == 403, (response.request.url, response.text)
            assert TOKEN not in response.text
    # Another scheme is no credential at all.
    assert (
        client.get("/relier/status", headers={"Authorization": f"Basic {TOKEN}"}).status_code == 401
    )
    codes = {r.status_code for r in every_admin_call(client, AUTH)}
    assert codes <= {200, 404}, codes


def test_the_token_can_come_from_relier_admin_token(
    rl_redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RELIER_ADMIN_TOKEN", TOKEN)
    with TestClient(make_app(rl_redis_url, admin={})) as client:
        assert client.get("/relier/status").status_code == 401
        assert client.get("/relier/status", headers=AUTH).status_code == 200


def test_mounting_without_authentication_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RELIER_ADMIN_TOKEN", raising=False)
    with pytest.raises(ConfigurationError, match="allow_unauthenticated"):
        relier_admin_router()
    with pytest.raises(ConfigurationError, match="16"):
        relier_admin_router(token="short")


def test_allow_unauthenticated_must_be_explicit(rl_redis_url: str) -> None:
    admin = {"allow_unauthenticated": True}
    with TestClient(make_app(rl_redis_url, admin=admin)) as client:
        assert client.get("/relier/status").status_code == 200


def test_the_apps_own_dependency_guards_the_api(rl_redis_url: str) -> None:
    def require_admin(request: Request) -> None:
        if request.headers.get("x-role") != "admin":
            raise HTTPException(status_code=403, detail="admins only")

    admin = {"dependencies": [Depends(require_admin)]}
    with TestClient(make_app(rl_redis_url, admin=admin)) as client:
        assert client.get("/relier/status").status_code == 403
        assert client.get("/relier/status", headers={"x-role": "admin"}).status_code == 200
        # The page itself holds no data.
        assert client.get("/relier/").status_code == 200


def test_token_and_dependency_must_both_pass(rl_redis_url: str) -> None:
    def require_header(request: Request) -> None:
        if "x-ok" not in request.headers:
            raise HTTPException(status_code=403, detail="no")

    admin = {"token": TOKEN, "dependencies": [Depends(require_header)]}
    with TestClient(make_app(rl_redis_url, admin=admin)) as client:
        assert client.get("/relier/status", headers=AUTH).status_code == 403
        assert client.get("/relier/status", headers={**AUTH, "x-ok": "1"}).status_code == 200
        assert client.get("/relier/status", headers={"x-ok": "1"}).status_code == 401


def test_the_token_is_never_in_a_repr() -> None:
    router = relier_admin_router(token=TOKEN)
    assert TOKEN not in repr(router.routes)
    assert TOKEN not in repr([r.dependant for r in router.routes if hasattr(r, "dependant")])
    assert TOKEN not in repr(load_settings(admin_token=TOKEN))


# -- the admin API: what it shows -------------------------------------------------------------


def dead_task(client: TestClient, name: str = "x") -> str:
    """Push a greet and dead-letter it (as a worker refusing it would)."""
    task_id: str = client.post("/greet", params={"name": name}).json()["id"]
    dead_letter(relier_of(client), task_id)
    return task_id


def test_status_workers_inflight_and_metrics_match_the_core_queries(client: TestClient) -> None:
    client.post("/greet", params={"name": "a"})
    relier = relier_of(client)
    status = client.get("/relier/status", headers=AUTH).json()
    core = dataclasses.asdict(inspection.status(relier, now_ms=status["now_ms"]))
    assert status == core
    assert {"name": "celery", "depth": 1} in status["queues"]
    assert status["rates"]["counts"]["dispatched"] == 1
    extra = client.get("/relier/status", params={"queue": ["extra-q"]}, headers=AUTH).json()
    assert {"name": "extra-q", "depth": 0} in extra["queues"]
    assert client.get("/relier/workers", headers=AUTH).json() == []
    assert client.get("/relier/inflight", headers=AUTH).json() == []
    metrics = client.get("/relier/metrics", headers=AUTH).json()
    assert metrics["queue_depth"]["celery"] == 1
    assert metrics["events"]["dispatched"] == 1
    assert set(metrics["events"]) == set(stats.EVENTS)
    health = client.get("/relier/health", headers=AUTH).json()
    assert health["status"] == "ok" and health["workers_alive"] == 0


def test_task_detail_and_not_found(client: TestClient) -> None:
    task_id = client.post("/greet", params={"name": "Grace"}).json()["id"]
    detail = client.get(f"/relier/tasks/{task_id}", headers=AUTH).json()
    core = dataclasses.asdict(inspection.task_detail(relier_of(client), task_id))
    assert detail == core
    assert detail["state"] == "PENDING"
    assert [e["e"] for e in detail["history"]] == ["dispatched"]
    missing = client.get("/relier/tasks/nope", headers=AUTH)
    assert missing.status_code == 404
    assert "nope" in missing.json()["detail"]
    assert client.get("/relier/tasks/a%7Bb", headers=AUTH).status_code == 422


def test_dlq_list_show_release_and_purge(client: TestClient) -> None:
    first, second, third = (dead_task(client, n) for n in "abc")
    alive = client.post("/greet", params={"name": "alive"}).json()["id"]
    page = client.get("/relier/dlq", headers=AUTH).json()
    assert [e["id"] for e in page["entries"]] == [third, second, first]
    assert page["truncated"] is False
    assert page["entries"][0]["reason"] == "unknown_task"
    limited_page = client.get("/relier/dlq", params={"limit": 2}, headers=AUTH).json()
    assert len(limited_page["entries"]) == 2 and limited_page["truncated"] is True
    by_reason = client.get("/relier/dlq", params={"reason": "poison_pill"}, headers=AUTH).json()
    assert by_reason["entries"] == []
    assert client.get("/relier/dlq", params={"reason": "nonsense"}, headers=AUTH).status_code == 422

    shown = client.get(f"/relier/dlq/{first}", headers=AUTH).json()
    assert shown == dataclasses.asdict(core_dlq.get_dead(relier_of(client), first))
    assert shown["error"] == "no such task here"
    assert client.get(f"/relier/dlq/{alive}", headers=AUTH).status_code == 404

    released = client.post(
        "/relier/dlq/release", json={"ids": [first, alive, "missing"]}, headers=AUTH
    ).json()
    assert list(released["released"]) == [first]
    assert released["refused"] == {alive: "PENDING", "missing": "MISSING"}
    relier = relier_of(client)
    assert inspection.task_detail(relier, first).state == "PENDING"
    assert relier.redis.llen(relier.keys.queue("celery")) == 5  # 4 pushes + 1 release

    purged = client.post("/relier/dlq/purge", json={"ids": [second, first]}, headers=AUTH).json()
    assert purged == {"purged": [second], "refused": {first: "PENDING"}}
    assert [e["id"] for e in client.get("/relier/dlq", headers=AUTH).json()["entries"]] == [third]


@pytest.mark.parametrize(
    "body",
    [{}, {"ids": []}, {"ids": "x"}, {"ids": [""]}, {"ids": ["a}"]}, {"ids": ["x"], "all": 1},
     {"ids": ["x"] * (schemas.MAX_IDS + 1)}],
)  # fmt: skip
def test_release_and_purge_refuse_malformed_bodies(client: TestClient, body: Any) -> None:
    for path in ADMIN_POSTS:
        assert client.post(path, json=body, headers=AUTH).status_code == 422


def test_redis_down_is_a_503(rl_redis_url: str, rl_redis: Any) -> None:
    with TestClient(make_app(rl_redis_url, socket_connect_timeout=0.5)) as client:
        relier_of(client).close()
        rl_redis.stop()
        try:
            response = client.get("/relier/status", headers=AUTH)
            assert response.status_code == 503
            assert "unreachable" in response.json()["detail"]
        finally:
            rl_redis.start()


# -- OpenAPI and the dashboard ----------------------------------------------------------------


def test_the_openapi_schema_describes_every_endpoint(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    paths = {p: ops for p, ops in spec["paths"].items() if p.startswith("/relier")}
    assert set(paths) == {
        "/relier/health", "/relier/status", "/relier/workers", "/relier/inflight",
        "/relier/tasks/{task_id}", "/relier/dlq", "/relier/dlq/{task_id}",
        "/relier/dlq/release", "/relier/dlq/purge", "/relier/metrics",
    }  # fmt: skip
    components = spec["components"]["schemas"]
    for path, operations in paths.items():
        for method, op in operations.items():
            where = f"{method.upper()} {path}"
            assert op["summary"] and op["description"], where
            assert op["security"] == [{"RelierAdminToken": []}], where
            ok = op["responses"]["200"]["content"]["application/json"]["schema"]
            ref = ok.get("$ref") or ok["items"]["$ref"]
            assert ref.split("/")[-1].startswith("Relier"), where
            for code in ("401", "403", "503"):
                assert op["responses"][code]["content"]["application/json"]["schema"] == {
                    "$ref": "#/components/schemas/RelierHTTPError"
                }, where
    for name in ("/relier/tasks/{task_id}", "/relier/dlq/{task_id}"):
        assert "404" in paths[name]["get"]["responses"]
    assert spec["components"]["securitySchemes"]["RelierAdminToken"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "The admin token (RELIER_ADMIN_TOKEN), as `Authorization: Bearer <token>`.",
    }
    for name, schema in components.items():
        if name.startswith("Relier"):
            assert schema.get("description"), name
            assert schema["properties"], name


@pytest.mark.parametrize(
    ("model", "result"),
    [
        (schemas.RelierStatus, inspection.Status),
        (schemas.RelierQueueDepth, inspection.QueueDepth),
        (schemas.RelierRates, stats.Rates),
        (schemas.RelierInflightTask, inspection.InflightTask),
        (schemas.RelierWorker, inspection.WorkerStatus),
        (schemas.RelierTaskDetail, inspection.TaskDetail),
        (schemas.RelierDeadSummary, core_dlq.DeadSummary),
        (schemas.RelierDeadTask, core_dlq.DeadTask),
        (schemas.RelierReleased, core_dlq.Released),
        (schemas.RelierPurged, core_dlq.Purged),
    ],
)
def test_each_model_mirrors_its_core_result(model: type[BaseModel], result: type) -> None:
    assert list(model.model_fields) == [f.name for f in dataclasses.fields(result)]


def test_the_dashboard_is_served_without_data_and_with_a_strict_policy(
    client: TestClient,
) -> None:
    page = client.get("/relier/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    policy = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "default-src 'none'" in policy
    assert 'data-refresh-ms="2000"' in page.text
    assert '<script src="dashboard.js"' in page.text
    assert "http://" not in page.text and "https://" not in page.text  # no CDN
    script = client.get("/relier/dashboard.js")
    assert script.headers["content-type"].startswith("text/javascript")
    assert "innerHTML" not in script.text
    for endpoint in ("status", "inflight", "workers", "dlq?limit=50", "dlq/${action}"):
        assert f'"{endpoint}"' in script.text or f"`{endpoint}`" in script.text, endpoint
    assert client.get("/relier/dashboard.css").headers["content-type"].startswith("text/css")
    assert client.get("/relier", follow_redirects=False).status_code in (307, 308)


def test_the_dashboard_can_be_left_out(rl_redis_url: str) -> None:
    admin = {"token": TOKEN, "dashboard_page": False}
    with TestClient(make_app(rl_redis_url, admin=admin)) as client:
        assert client.get("/relier/").status_code == 404

"""The Relier hub: bind/current/reset, the task registry, and the Celery app checks."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import kombu
import pytest
from celery import Celery

import relier.hub
from relier import ConfigurationError, Relier, RelierSettings, UnknownTaskError, load_settings
from relier.hub import WORKER_STEP, bind, current, reset
from relier.registry import lookup, registry
from relier.tasks.decorator import rl_task


@rl_task(name="tests.app.noop")
def noop() -> None:
    return None


@pytest.fixture(autouse=True)
def default_instance(rl_redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith("RELIER_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("RELIER_REDIS_URL", rl_redis_url)
    reset()
    yield
    reset()


@pytest.fixture
def settings(rl_redis_url: str) -> RelierSettings:
    return load_settings(redis_url=rl_redis_url)


def other_db(url: str) -> str:
    return url.rsplit("/", 1)[0] + "/3"


def celery(broker: str | None, **conf: Any) -> Celery:
    app = Celery("tests.app", broker=broker, set_as_current=False)
    app.conf.update(conf)
    return app


# --- current / bind / reset ------------------------------------------------------------


def test_current_is_built_from_the_environment_once(rl_redis_url: str) -> None:
    first = current()
    assert first.settings.redis_url == rl_redis_url
    assert current() is first
    reset()
    assert current() is not first


def test_bind_makes_the_app_the_default(settings: RelierSettings) -> None:
    app = celery(settings.redis_url)
    instance = bind(app, settings)
    assert current() is instance
    assert instance.celery_app is app
    assert instance.settings is settings
    assert app._relier is instance


def test_bind_without_settings_keeps_the_current_settings(rl_redis_url: str) -> None:
    before = current().settings
    instance = bind(celery(rl_redis_url))
    assert instance.settings is before


def test_bind_fills_in_a_missing_broker(settings: RelierSettings) -> None:
    app = celery(None)
    bind(app, settings)
    assert app.conf.broker_url == settings.redis_url


def test_bind_sets_json_only_and_prefetch_one(settings: RelierSettings) -> None:
    app = celery(settings.redis_url, worker_prefetch_multiplier=16, task_serializer="json")
    bind(app, settings)
    conf = app.conf
    assert conf.worker_prefetch_multiplier == 1
    assert list(conf.accept_content) == ["json"]
    assert conf.task_serializer == "json"
    assert conf.result_serializer == "json"
    assert conf.event_serializer == "json"


def test_bind_installs_the_worker_step_once(settings: RelierSettings) -> None:
    app = celery(settings.redis_url)
    bind(app, settings)
    bind(app, settings)
    assert WORKER_STEP in app.steps["worker"]
    assert len(app.steps["worker"]) == 1


@pytest.mark.parametrize(
    "broker",
    [
        "other_db",
        "redis://10.255.255.1:{port}/0",
        "redis://127.0.0.1:{other_port}/0",
        "amqp://guest:guest@127.0.0.1:{port}//",
        "sqs://",
    ],
)
def test_bind_refuses_another_broker(settings: RelierSettings, broker: str) -> None:
    port = int(settings.redis_url.rsplit(":", 1)[1].split("/")[0])
    url = (
        other_db(settings.redis_url)
        if broker == "other_db"
        else broker.format(port=port, other_port=port + 1)
    )
    default = current()
    app = celery(url)
    with pytest.raises(ConfigurationError) as info:
        bind(app, settings)
    message = str(info.value)
    assert "broker" in message
    assert "RELIER_REDIS_URL" in message
    assert current() is default  # a refused bind changes nothing
    assert getattr(app, "_relier", None) is None


def test_broker_password_is_not_shown(settings: RelierSettings) -> None:
    with pytest.raises(ConfigurationError) as info:
        bind(celery("redis://:s3cret@10.255.255.1:6379/0"), settings)
    assert "s3cret" not in str(info.value)


@pytest.mark.parametrize(
    "accept", [["pickle"], ["json", "pickle"], ["application/x-python-serialize"], ["yaml"]]
)
def test_bind_refuses_non_json_content(settings: RelierSettings, accept: list[str]) -> None:
    app = celery(settings.redis_url, accept_content=accept)
    with pytest.raises(ConfigurationError, match="accept_content=\\['json'\\]"):
        bind(app, settings)
    assert list(app.conf.accept_content) == accept


def test_bind_accepts_the_json_mime_type(settings: RelierSettings) -> None:
    app = celery(settings.redis_url, accept_content=["application/json"])
    bind(app, settings)
    assert list(app.conf.accept_content) == ["json"]


def test_default_celery_app_uses_the_journal_redis(settings: RelierSettings) -> None:
    instance = Relier(settings)
    try:
        app = instance.celery_app
        assert app.conf.broker_url == settings.redis_url
        assert app.conf.worker_prefetch_multiplier == 1
        assert app._relier is instance
        assert instance.celery_app is app
    finally:
        instance.close()


def test_broker_url_setting_must_be_the_journal_redis(rl_redis_url: str) -> None:
    instance = Relier(load_settings(redis_url=rl_redis_url, broker_url=other_db(rl_redis_url)))
    with pytest.raises(ConfigurationError, match="RELIER_REDIS_URL"):
        _ = instance.celery_app


def test_relier_with_a_celery_app_checks_it(settings: RelierSettings) -> None:
    with pytest.raises(ConfigurationError):
        Relier(settings, celery(other_db(settings.redis_url)))


# --- keys follow kombu's global_keyprefix ---------------------------------------------------


def test_pushes_reach_kombu_under_its_global_keyprefix(settings: RelierSettings) -> None:
    options = {"global_keyprefix": "tenant1:"}
    app = celery(settings.redis_url, broker_transport_options=options)
    instance = Relier(settings, app)
    noop_on = noop.with_options()
    try:
        assert instance.keys.queue("celery") == "tenant1:celery"
        handle = relier_push(instance, noop_on)
        assert instance.redis.llen("tenant1:celery") == 1
        with kombu.Connection(settings.redis_url, transport_options=options) as conn:  # type: ignore[attr-defined, no-untyped-call]  # kombu: lazy exports, unannotated
            queue = conn.SimpleQueue("celery")
            try:
                message = queue.get(timeout=2)
                assert message.headers["id"] == handle.id
                message.ack()
            finally:
                queue.close()
    finally:
        instance.close()


def relier_push(instance: Relier, bound: Any) -> Any:
    from relier.tasks import dispatch

    return dispatch.push(instance, bound.task, dispatch.Call((), {}, bound.options))


# --- registry ----------------------------------------------------------------------------


def test_registry_holds_decorated_tasks() -> None:
    tasks = registry()
    assert tasks["tests.app.noop"] is noop
    tasks.clear()  # a copy
    assert "tests.app.noop" in registry()


def test_lookup_and_relier_task() -> None:
    assert lookup("tests.app.noop") is noop
    assert current().task("tests.app.noop") is noop
    with pytest.raises(UnknownTaskError, match=r"tests\.app\.nope"):
        lookup("tests.app.nope")
    with pytest.raises(UnknownTaskError):
        current().task("tests.app.nope")


def test_duplicate_name_from_another_function_is_refused() -> None:
    def first() -> None: ...

    def second() -> None: ...

    rl_task(name="tests.app.dup")(first)
    with pytest.raises(ConfigurationError) as info:
        rl_task(name="tests.app.dup")(second)
    message = str(info.value)
    assert "tests.app.dup" in message
    assert "first" in message
    assert "second" in message
    assert "name=" in message
    assert registry()["tests.app.dup"].fn is first


def test_registry_is_process_wide() -> None:
    assert relier.registry.registry() == registry()


# --- unix sockets ------------------------------------------------------------------------


def test_unix_socket_urls_are_refused_with_a_clear_error() -> None:
    # kombu (the Celery broker) cannot open unix:// URLs and the broker must be
    # the journal's Redis, so Relier refuses them up front instead of failing
    # later inside Celery with "No such transport: unix".
    with pytest.raises(ConfigurationError) as info:
        load_settings(redis_url="unix:///run/redis/journal.sock")
    assert "RELIER_REDIS_URL" in str(info.value)
    assert "redis:// or rediss://" in str(info.value)


def test_localhost_and_loopback_address_are_the_same_broker() -> None:
    settings = load_settings(redis_url="redis://localhost:6390/2")
    instance = bind(celery("redis://127.0.0.1:6390/2"), settings)
    assert instance.celery_app.conf.broker_url == "redis://127.0.0.1:6390/2"


def test_bind_compares_the_db_given_as_a_query_parameter() -> None:
    settings = load_settings(redis_url="redis://127.0.0.1:6390/0")
    with pytest.raises(ConfigurationError, match="broker"):
        bind(celery("redis://127.0.0.1:6390?db=3"), settings)

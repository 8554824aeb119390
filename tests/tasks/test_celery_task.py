"""Celery's calling API on an @rl_task goes journal-first, with push's guarantees."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import celery
import celery.exceptions
import pytest
import redis
from celery import states
from celery.result import AsyncResult
from kombu.entity import Queue

from relier import (
    AdmissionRejectedError,
    ConfigurationError,
    PayloadValidationError,
    Relier,
    TaskFailedError,
    rl_task,
)
from relier.clock import now_ms
from relier.tasks.celery_results import CELERY_STATES, JournalBackend
from relier.tasks.celery_task import RelierCeleryTask


@rl_task(name="tests.celery_api.add")
def add(x: int, y: int = 0) -> int:
    return x + y


@rl_task(name="tests.celery_api.stamp")
def stamp(day: str) -> datetime:
    return datetime.fromisoformat(day)


@rl_task(name="tests.celery_api.limited", rate_limit="1/h")
def limited(n: int) -> int:
    return n


@pytest.fixture
def rl(default_relier: Relier) -> Relier:
    """The process default Relier on the test server (tasks push through it)."""
    return default_relier


def queued_ids(client: redis.Redis, queue: str = "celery") -> list[str]:
    messages = [json.loads(m) for m in reversed(client.lrange(queue, 0, -1))]
    return [str(json.loads(base64.b64decode(m["body"]))[0][0]) for m in messages]


def job(rl: Relier, client: redis.Redis, task_id: str) -> dict[bytes, bytes]:
    return cast("dict[bytes, bytes]", client.hgetall(rl.keys.task(task_id).job))


def assert_nothing_enqueued(client: redis.Redis) -> None:
    assert client.keys("rl:{*}:job") == []
    assert client.llen("celery") == 0


def run(rl: Relier, task_id: str, result: bytes) -> None:
    """What a worker does: claim, then commit with the attempt's fence."""
    claim = rl.scripts.claim(task_id, "w/1", now_ms())
    assert claim.run
    assert rl.scripts.complete(task_id, claim.fence, result, now_ms(), 60)


# --- sending -------------------------------------------------------------------------------


def test_the_celery_task_is_a_relier_celery_task() -> None:
    assert isinstance(add.celery_task, RelierCeleryTask)
    assert isinstance(add.celery_task.backend, JournalBackend)


def test_delay_journals_and_publishes_like_push(rl: Relier, client: redis.Redis) -> None:
    result = add.delay(2, y=3)
    assert isinstance(result, AsyncResult)
    entry = job(rl, client, result.id)
    assert entry[b"state"] == b"PENDING" and entry[b"task"] == b"tests.celery_api.add"
    assert queued_ids(client) == [result.id]
    assert result.state == states.PENDING


def test_every_celery_way_of_sending_goes_through_the_journal(
    rl: Relier, client: redis.Redis
) -> None:
    app = add.celery_task._get_app()
    sent = [
        add.apply_async((1, 2)),
        add.apply_async(args=[1], kwargs={"y": 2}),
        add.s(1, 2).apply_async(),
        add.s(1).delay(2),
        add.si(1, 2).delay(),
        add.signature((1, 2)).apply_async(),
        add.celery_task.delay(1, 2),
        app.signature("tests.celery_api.add", args=(1, 2)).apply_async(),
        celery.signature("tests.celery_api.add", args=(1, 2), app=app).delay(),
    ]
    ids = [r.id for r in sent]
    assert len(set(ids)) == len(ids)
    assert queued_ids(client) == ids
    for task_id in ids:
        assert job(rl, client, task_id)[b"state"] == b"PENDING"


def test_queue_task_id_and_routing_key_are_honoured(rl: Relier, client: redis.Redis) -> None:
    by_name = add.apply_async((1,), queue="reports", task_id="mine-1")
    by_queue = add.apply_async((2,), queue=Queue("reports"))  # type: ignore[no-untyped-call]
    by_key = add.apply_async((3,), routing_key="billing")
    assert by_name.id == "mine-1"
    assert queued_ids(client, "reports") == ["mine-1", by_queue.id]
    assert queued_ids(client, "billing") == [by_key.id]
    assert job(rl, client, "mine-1")[b"queue"] == b"reports"


def test_countdown_and_eta_go_to_the_journal_schedule(rl: Relier, client: redis.Redis) -> None:
    before = now_ms()
    later = add.apply_async((1,), countdown=60)
    eta = datetime.now(UTC) + timedelta(seconds=120)
    at = add.apply_async((2,), eta=eta)
    naive = add.apply_async((3,), eta=(eta.replace(tzinfo=None)).isoformat())
    past = add.apply_async((4,), eta=datetime.now(UTC) - timedelta(hours=1))
    assert client.llen("celery") == 1  # only the eta in the past is published now
    assert queued_ids(client) == [past.id]
    due = {r.id: client.zscore(rl.keys.schedule, r.id) for r in (later, at, naive)}
    assert 0 <= cast(float, due[later.id]) - before - 60_000 < 5_000
    eta_ms = eta.timestamp() * 1000
    assert abs(cast(float, due[at.id]) - eta_ms) < 5_000
    assert abs(cast(float, due[naive.id]) - eta_ms) < 5_000  # naive is UTC (enable_utc)


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"expires": 60}, "expires"),
        ({"priority": 3}, "priority"),
        ({"headers": {"x": 1}}, "headers"),
        ({"link": add.s(1)}, "link"),
        ({"link_error": add.s(1)}, "link_error"),
        ({"shadow": "other"}, "shadow"),
        ({"exchange": "ex"}, "exchange"),
        ({"countdown": 1, "eta": datetime.now(UTC)}, "countdown or eta"),
        ({"eta": "tomorrow"}, "eta must be"),
        ({"countdown": "soon"}, "countdown must be"),
        ({"countdown": -1}, "countdown must be >= 0"),
        ({"serializer": "pickle"}, "serializer must be 'json'"),
        ({"queue": ""}, "queue must be"),
    ],
)
def test_an_option_relier_does_not_honour_is_a_named_error_and_sends_nothing(
    rl: Relier, client: redis.Redis, options: dict[str, Any], named: str
) -> None:
    with pytest.raises(ConfigurationError, match=named):
        add.apply_async((1,), **options)
    assert_nothing_enqueued(client)


def test_publishing_knobs_are_accepted_without_effect(rl: Relier, client: redis.Redis) -> None:
    sent = add.apply_async(
        (1,), retry=True, retry_policy={"max_retries": 1}, ignore_result=False, serializer="json"
    )
    assert queued_ids(client) == [sent.id]


@pytest.mark.parametrize(
    ("args", "kwargs", "error"),
    [
        ("12", None, ConfigurationError),
        ((1,), ["y"], ConfigurationError),
        ((), None, PayloadValidationError),  # x is missing
        (("one",), None, PayloadValidationError),  # not an int
    ],
)
def test_bad_arguments_are_refused_before_redis(
    rl: Relier, client: redis.Redis, args: Any, kwargs: Any, error: type[Exception]
) -> None:
    with pytest.raises(error):
        add.apply_async(args, kwargs)
    assert_nothing_enqueued(client)


def test_a_refused_apply_async_raises_admission_rejected(rl: Relier, client: redis.Redis) -> None:
    first = limited.delay(1)
    with pytest.raises(AdmissionRejectedError) as refused:
        limited.apply_async((2,))
    assert refused.value.retry_after > 0
    assert queued_ids(client) == [first.id]


# --- results -------------------------------------------------------------------------------


def test_async_result_reads_the_journal_states(rl: Relier, client: redis.Redis) -> None:
    result = add.delay(1, 2)
    assert (result.state, result.ready(), result.failed()) == (states.PENDING, False, False)
    claim = rl.scripts.claim(result.id, "w/1", now_ms())
    assert result.state == states.STARTED
    assert rl.scripts.complete(result.id, claim.fence, b"3", now_ms(), 60)
    assert (result.state, result.ready(), result.successful()) == (states.SUCCESS, True, True)
    assert result.get(timeout=1) == 3
    assert result.result == 3


def test_get_rebuilds_the_return_type(rl: Relier) -> None:
    result = stamp.delay("2026-12-07T10:00:00+00:00")
    run(rl, result.id, b'"2026-12-07T10:00:00+00:00"')
    assert result.get(timeout=1) == datetime(2026, 12, 7, 10, tzinfo=UTC)


def test_a_failed_task_s_traceback_is_the_journal_s(rl: Relier) -> None:
    result = add.delay(1)
    claim = rl.scripts.claim(result.id, "w/1", now_ms())
    rl.scripts.fail(result.id, claim.fence, now_ms(), 0, "max_retries", "boom", "Traceback: here")
    assert result.state == states.FAILURE
    assert result.traceback == "Traceback: here"


def test_a_dead_lettered_task_is_a_failure_with_its_reason(rl: Relier) -> None:
    result = add.delay(1)
    assert rl.scripts.dead_letter(result.id, now_ms(), "invalid_payload", "it did not fit")
    assert (result.state, result.ready(), result.failed()) == (states.FAILURE, True, True)
    with pytest.raises(TaskFailedError, match="invalid_payload") as failed:
        result.get(timeout=1)
    assert failed.value.reason == "invalid_payload"
    assert result.get(timeout=1, propagate=False).error == "it did not fit"


def test_get_waits_for_the_end_and_times_out_like_celery(rl: Relier) -> None:
    result = add.delay(1)
    started = time.monotonic()
    with pytest.raises(celery.exceptions.TimeoutError):
        result.get(timeout=0.3)
    assert 0.25 < time.monotonic() - started < 2


def test_an_unknown_id_is_pending_as_celery_reports_it(rl: Relier) -> None:
    result = add.celery_task.AsyncResult("never-pushed")
    assert result.state == states.PENDING
    with pytest.raises(celery.exceptions.TimeoutError):
        result.get(timeout=0.2)


def test_every_journal_state_has_a_celery_state() -> None:
    from relier.journal.states import STATES

    assert set(CELERY_STATES) == set(STATES)
    assert set(CELERY_STATES.values()) <= states.ALL_STATES


def test_a_canvas_is_refused_by_name_and_sends_nothing(rl: Relier, client: redis.Redis) -> None:
    with pytest.raises(ConfigurationError, match="chain"):
        celery.chain(add.s(1), add.s()).apply_async()
    with pytest.raises(ConfigurationError, match="group_id"):
        celery.group(add.s(1), add.s(2)).apply_async()
    # A chord needs the app's result backend before it sends anything.
    with pytest.raises(NotImplementedError, match="result backend"):
        celery.chord([add.s(1)], add.s()).apply_async()
    assert_nothing_enqueued(client)


# --- routes --------------------------------------------------------------------------------


@rl_task(name="tests.celery_api.own_queue", queue="own")
def own_queue(n: int) -> int:
    return n


def test_task_routes_pick_the_queue_as_in_celery(rl: Relier, client: redis.Redis) -> None:
    def by_argument(name: str, args: Any, kwargs: Any, options: Any, **_: Any) -> Any:
        return "dates" if name == "tests.celery_api.stamp" else None

    rl.celery_app.conf.task_routes = [
        by_argument,
        {"tests.celery_api.add": {"queue": "billing"}, "tests.celery_api.own*": "routed"},
    ]
    routed = [add.delay(1), add.push(2), stamp.apply_async(("2026-01-01",))]
    assert queued_ids(client, "billing") == [routed[0].id, routed[1].id]
    assert queued_ids(client, "dates") == [routed[2].id]
    # The call's queue, then the task's own, come before the routes (Celery's order).
    explicit = add.apply_async((3,), queue="chosen")
    own = own_queue.delay(4)
    assert queued_ids(client, "chosen") == [explicit.id]
    assert queued_ids(client, "own") == [own.id]
    # No route matches: RELIER_DEFAULT_QUEUE.
    plain = limited.delay(5)
    assert queued_ids(client, "celery") == [plain.id]


def test_a_route_without_a_queue_is_a_named_error(rl: Relier, client: redis.Redis) -> None:
    rl.celery_app.conf.task_routes = {"tests.celery_api.add": {"exchange": "direct-x"}}
    with pytest.raises(ConfigurationError, match="names no queue"):
        add.delay(1)
    assert_nothing_enqueued(client)

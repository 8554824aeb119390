"""Schema migrations: validated at decoration, run step by step on older calls."""

from __future__ import annotations

from typing import Any

import pytest

from relier import ConfigurationError, rl_task
from relier.journal.envelope import Envelope
from relier.registry import registry
from relier.tasks.validation import check_migrations as check
from relier.worker.migrations import Failure, upgrade


def to_v2(call: dict[str, Any]) -> dict[str, Any]:
    """v1 ``(name)`` -> v2 ``(first, last="")``."""
    first, _, last = call["args"][0].partition(" ")
    if not first:
        raise ValueError("an empty name has no first name")
    return {"args": [first], "kwargs": {"last": last}}


def to_v3(call: dict[str, Any]) -> dict[str, Any]:
    """v2 ``(first, last="")`` -> v3 ``(person={"first", "last"})``."""
    person = {"first": call["args"][0], "last": call["kwargs"].get("last", "")}
    return {"args": [], "kwargs": {"person": person}}


@rl_task(name="tests.migrations.greet", schema_version=3, migrations={2: to_v3, 1: to_v2})
def greet(person: dict[str, str]) -> str:
    return f"Hello, {person['first']} {person['last']}!"


def envelope(version: int, args: list[Any], kwargs: dict[str, Any] | None = None) -> Envelope:
    return Envelope(
        id="t1", task=greet.name, args=args, kwargs=kwargs or {}, ts=1, schema_version=version
    )


# --- decoration --------------------------------------------------------------------------


def test_migrations_are_kept_sorted_by_version() -> None:
    assert greet.schema_version == 3
    assert list(greet.migrations.items()) == [(1, to_v2), (2, to_v3)]


def test_no_migrations_is_valid_at_any_version() -> None:
    assert check("t", 1, None) == {}
    assert check("t", 4, None) == {}
    assert check("t", 4, {}) == {}


@pytest.mark.parametrize(
    ("version", "migrations", "message"),
    [
        (3, {1: to_v2}, r"missing \[2\], unexpected \[\]"),
        (3, {2: to_v2, 3: to_v3}, r"missing \[1\], unexpected \[3\]"),
        (2, {0: to_v2, 1: to_v2}, r"unexpected \[0\]"),
        (2, {"1": to_v2}, r"unexpected \['1'\]"),
        (2, {True: to_v2}, r"unexpected \[True\]"),
        (1, {1: to_v2}, "schema_version=1, which has no older version"),
        (2, {1: "to_v2"}, r"migrations\[1\] must be a plain \(not async\) function"),
        (2, [to_v2], "must be a dict"),
    ],
)
def test_invalid_migrations_are_refused(version: int, migrations: Any, message: str) -> None:
    def fn() -> None: ...

    with pytest.raises(ConfigurationError, match=message):
        rl_task(name="tests.migrations.invalid", schema_version=version, migrations=migrations)(fn)
    assert "tests.migrations.invalid" not in registry()


def test_an_async_migration_is_refused() -> None:
    async def step(call: dict[str, Any]) -> dict[str, Any]:
        return call

    with pytest.raises(ConfigurationError, match="plain"):
        check("t", 2, {1: step})  # type: ignore[dict-item]  # async on purpose


@pytest.mark.parametrize("version", [0, -1, 1.5, True, "2"])
def test_invalid_schema_versions_are_refused(version: Any) -> None:
    with pytest.raises(ConfigurationError, match="schema_version"):
        check("t", version, None)


# --- upgrade -----------------------------------------------------------------------------


def test_a_call_of_the_tasks_version_is_left_as_it_is() -> None:
    env = envelope(3, [], {"person": {"first": "Ada", "last": ""}})
    assert upgrade(greet, env) is env


def test_an_older_call_is_migrated_through_every_step() -> None:
    upgraded = upgrade(greet, envelope(1, ["Ada Lovelace"]))
    assert upgraded == envelope(3, [], {"person": {"first": "Ada", "last": "Lovelace"}})
    assert isinstance(upgraded, Envelope)
    assert greet.fn(*upgraded.args, **upgraded.kwargs) == "Hello, Ada Lovelace!"


def test_a_call_is_migrated_from_its_own_version_only() -> None:
    upgraded = upgrade(greet, envelope(2, ["Grace"], {"last": "Hopper"}))
    assert isinstance(upgraded, Envelope)
    assert upgraded.kwargs == {"person": {"first": "Grace", "last": "Hopper"}}


def test_the_rest_of_the_envelope_is_kept() -> None:
    env = Envelope(
        id="t9", task=greet.name, args=["Ada"], kwargs={}, ts=77, schema_version=1,
        idempotency_key="k", trace={"traceparent": "x"},
    )  # fmt: skip
    upgraded = upgrade(greet, env)
    assert isinstance(upgraded, Envelope)
    assert (upgraded.id, upgraded.ts, upgraded.idempotency_key, upgraded.trace) == (
        "t9", 77, "k", {"traceparent": "x"},
    )  # fmt: skip
    assert upgraded.schema_version == 3


def test_without_migrations_an_older_call_runs_as_it_is() -> None:
    def fn(x: int) -> int:
        return x

    task = rl_task(name="tests.migrations.bare", schema_version=2)(fn)
    env = Envelope(id="t1", task=task.name, args=[1], kwargs={}, ts=1, schema_version=1)
    assert upgrade(task, env) is env


def test_a_raising_step_is_a_failure_with_its_traceback() -> None:
    failure = upgrade(greet, envelope(1, [""]))
    assert isinstance(failure, Failure)
    assert failure.error == (
        "migration 1 -> 2 of tests.migrations.greet raised ValueError: an empty name has no "
        "first name"
    )
    assert "Traceback" in failure.traceback and "in to_v2" in failure.traceback


@pytest.mark.parametrize(
    ("returned", "problem"),
    [
        (None, "a NoneType, not a dict"),
        ({"args": ["x"]}, '"kwargs" is missing or not a dict'),
        ({"args": "x", "kwargs": {}}, '"args" is missing or not a list'),
        ({"args": [], "kwargs": {1: "x"}}, '"kwargs" has a key that is not a string'),
    ],
)
def test_a_step_returning_no_call_is_a_failure(returned: Any, problem: str) -> None:
    def fn(x: int) -> int:
        return x

    task = rl_task(
        name=f"tests.migrations.bad_return_{abs(hash(problem))}",
        schema_version=2,
        migrations={1: lambda call: returned},
    )(fn)
    env = Envelope(id="t1", task=task.name, args=[1], kwargs={}, ts=1, schema_version=1)
    failure = upgrade(task, env)
    assert isinstance(failure, Failure)
    assert failure.error.startswith(f"migration 1 -> 2 of {task.name} returned {returned!r}: ")
    assert problem in failure.error and '{"args": [...], "kwargs": {...}}' in failure.error
    assert failure.traceback == ""


def test_a_step_may_return_tuples_and_mutate_its_input() -> None:
    def step(call: dict[str, Any]) -> dict[str, Any]:
        call["args"].append(2)
        return {"args": tuple(call["args"]), "kwargs": call["kwargs"]}

    def fn(a: int, b: int) -> int:
        return a + b

    task = rl_task(name="tests.migrations.tuples", schema_version=2, migrations={1: step})(fn)
    env = Envelope(id="t1", task=task.name, args=[1], kwargs={}, ts=1, schema_version=1)
    upgraded = upgrade(task, env)
    assert isinstance(upgraded, Envelope) and upgraded.args == [1, 2]
    assert env.args == [1]  # the envelope as decoded is not touched


def test_a_call_below_version_one_is_a_failure() -> None:
    failure = upgrade(greet, envelope(0, ["Ada"]))
    assert isinstance(failure, Failure) and "versions start at 1" in failure.error

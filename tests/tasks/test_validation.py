"""relier.tasks.validation: arguments and results checked and converted by the type hints."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import pydantic
import pytest
import redis

from relier import (
    ConfigurationError,
    PayloadNotSerializableError,
    PayloadValidationError,
    Relier,
    TaskContext,
    rl_task,
)
from relier.journal.envelope import decode
from relier.tasks.validation import Validator


class Address(pydantic.BaseModel):
    street: str
    zip: int


@dataclasses.dataclass
class Money:
    cents: int
    currency: str


def ship(
    when: dt.datetime, order: uuid.UUID, price: Decimal, to: Address, cost: Money, note: Any = None
) -> dt.date:
    return when.date()


WHEN = dt.datetime(2026, 11, 26, 12, 30, tzinfo=dt.UTC)
ORDER = uuid.UUID("12345678-1234-5678-1234-567812345678")


def test_rich_arguments_travel_as_json_and_come_back_as_their_types() -> None:
    v = Validator(ship, "ship", skip_first=False)
    args, kwargs = v.to_json(
        (WHEN, ORDER), {"price": Decimal("9.90"), "to": Address(street="Main", zip=1),
                        "cost": Money(990, "EUR")}
    )  # fmt: skip
    assert args == ["2026-11-26T12:30:00Z", "12345678-1234-5678-1234-567812345678"]
    assert kwargs == {
        "price": "9.90", "to": {"street": "Main", "zip": 1},
        "cost": {"cents": 990, "currency": "EUR"},
    }  # fmt: skip
    back_args, back_kwargs = v.from_json(args, kwargs)
    assert back_args == [WHEN, ORDER]
    assert back_kwargs == {
        "price": Decimal("9.90"), "to": Address(street="Main", zip=1), "cost": Money(990, "EUR"),
    }  # fmt: skip


def test_json_input_is_accepted_on_push_too() -> None:
    v = Validator(ship, "ship", skip_first=False)
    args, _ = v.to_json(
        ("2026-11-26T12:30:00Z", str(ORDER), "1.5", {"street": "s", "zip": "7"}, Money(1, "X")), {}
    )
    assert args[3] == {"street": "s", "zip": 7}


def test_invalid_arguments_name_each_problem() -> None:
    v = Validator(ship, "tests.ship", skip_first=False)
    with pytest.raises(PayloadValidationError) as info:
        v.to_json(("yesterday", ORDER, Decimal(1), {"street": "s"}, Money(1, "X")), {})
    message = str(info.value)
    assert "tests.ship" in message
    assert "when:" in message
    with pytest.raises(PayloadValidationError, match=r"to\.zip: Field required"):
        v.to_json((WHEN, ORDER, Decimal(1), {"street": "s"}, Money(1, "X")), {})


def test_arguments_that_do_not_fit_the_signature() -> None:
    v = Validator(ship, "ship", skip_first=False)
    with pytest.raises(PayloadValidationError, match="do not fit ship"):
        v.to_json((WHEN,), {})
    with pytest.raises(PayloadValidationError, match="unexpected keyword"):
        v.to_json((WHEN, ORDER, 1, {}, {}), {"colour": "red"})


def test_unannotated_and_any_parameters_pass_through() -> None:
    def loose(a, b: Any, c: int = 3):  # type: ignore[no-untyped-def]
        return a

    v = Validator(loose, "loose", skip_first=False)
    assert v.to_json(("x", {"k": [1]}), {}) == (["x", {"k": [1]}], {})
    # The call keeps its shape: keywords stay keywords.
    assert v.to_json((1, 2), {"c": "4"}) == ([1, 2], {"c": 4})
    assert v.to_json((1, 2, "5"), {}) == ([1, 2, 5], {})


def test_variadic_parameters_are_validated_per_item() -> None:
    def many(*ids: uuid.UUID, **when: dt.date) -> None: ...

    v = Validator(many, "many", skip_first=False)
    args, kwargs = v.to_json((ORDER, str(ORDER)), {"a": dt.date(2026, 1, 2)})
    assert args == [str(ORDER), str(ORDER)] and kwargs == {"a": "2026-01-02"}
    assert v.from_json(args, kwargs) == ([ORDER, ORDER], {"a": dt.date(2026, 1, 2)})


def test_the_context_parameter_is_not_part_of_the_call() -> None:
    def with_ctx(ctx: TaskContext, n: int) -> int:
        return n

    v = Validator(with_ctx, "with_ctx", skip_first=True)
    assert v.to_json(("5",), {}) == ([5], {})


def test_results_follow_the_return_annotation() -> None:
    v = Validator(ship, "ship", skip_first=False)
    assert v.result_to_json(dt.date(2026, 1, 2)) == "2026-01-02"
    assert v.result_from_json("2026-01-02") == dt.date(2026, 1, 2)
    # A stored value the annotation cannot read is handed over as stored.
    assert v.result_from_json("not a date") == "not a date"


def test_results_without_annotation_use_pydantics_json_rules() -> None:
    def plain():  # type: ignore[no-untyped-def]
        return None

    v = Validator(plain, "plain", skip_first=False)
    assert v.result_to_json({"at": WHEN, "id": ORDER, "n": Decimal("2")}) == {
        "at": "2026-11-26T12:30:00Z", "id": str(ORDER), "n": "2",
    }  # fmt: skip
    assert v.result_from_json({"a": 1}) == {"a": 1}
    with pytest.raises(PayloadNotSerializableError, match="no JSON form"):
        v.result_to_json(object())


def test_a_hint_that_cannot_be_resolved_is_a_configuration_error() -> None:
    def broken(x: NotDefinedAnywhere) -> None: ...  # type: ignore[name-defined]  # noqa: F821

    v = Validator(broken, "broken", skip_first=False)
    with pytest.raises(ConfigurationError, match="type hints cannot be resolved"):
        v.to_json((1,), {})


# --- through push ------------------------------------------------------------------------


@rl_task(name="tests.validation.ship")
def ship_task(when: dt.datetime, order: uuid.UUID, price: Decimal) -> dt.date:
    return when.date()


@pytest.fixture
def rl(default_relier: Relier) -> Relier:
    return default_relier


def test_push_sends_validated_json(rl: Relier) -> None:
    handle = ship_task.push(WHEN, ORDER, Decimal("1.10"))
    env = decode(rl.redis.hget(rl.keys.task(handle.id).job, "env") or b"")
    assert env.args == ["2026-11-26T12:30:00Z", str(ORDER), "1.10"]


def test_an_invalid_push_raises_and_enqueues_nothing(rl: Relier) -> None:
    client: redis.Redis = rl.redis
    before = client.llen("celery")
    with pytest.raises(PayloadValidationError, match="order"):
        ship_task.push(WHEN, "not-a-uuid", Decimal(1))  # type: ignore[arg-type]  # invalid on purpose
    with pytest.raises(PayloadValidationError):
        ship_task.push_many([(WHEN, ORDER, Decimal(1)), (WHEN, ORDER)])
    assert client.llen("celery") == before


def test_plain_values_skip_pydantic_yet_convert_like_it() -> None:
    def fn(a: int, b: str, c: float, d: bool = False, *rest: int) -> None: ...

    v = Validator(fn, "t", skip_first=False)
    assert v.to_json((1, "x", 2.5, True, 3, 4), {}) == ([1, "x", 2.5, True, 3, 4], {})
    # Not exactly the hinted type: pydantic converts as before.
    assert v.to_json((True, "x", 2, False), {}) == ([1, "x", 2.0, False], {})
    with pytest.raises(PayloadValidationError, match="a"):
        v.to_json(("nope", "x", 1.0), {})


def test_counted_arity_refuses_what_bind_refuses() -> None:
    def fn(a: int, b: int = 0, *, c: int = 1) -> None: ...

    def kw_only(a: int, *, c: int) -> None: ...

    v, k = Validator(fn, "t", skip_first=False), Validator(kw_only, "k", skip_first=False)
    assert v.to_json((1,), {}) == ([1], {})
    assert v.to_json((1, 2), {"c": 3}) == ([1, 2], {"c": 3})
    for bad in ((), (1, 2, 3)):
        with pytest.raises(PayloadValidationError, match="do not fit"):
            v.to_json(bad, {})
    with pytest.raises(PayloadValidationError, match="do not fit"):
        k.to_json((1,), {})  # c is required: counting cannot decide, bind does
    assert k.to_json((1,), {"c": 2}) == ([1], {"c": 2})

"""The versioned envelope: strict JSON in, a typed Envelope out, or a precise error."""

from __future__ import annotations

import datetime
import decimal
import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relier.envelope import FORMAT_VERSION, Envelope, decode, dumps, encode
from relier.errors import (
    InvalidEnvelopeError,
    PayloadError,
    PayloadNotSerializableError,
    PayloadTooLargeError,
)

LIMIT = 1_048_576


def make(*args: Any, **kwargs: Any) -> Envelope:
    return Envelope(id="id-1", task="tests.t", args=list(args), kwargs=kwargs, ts=1_700_000_000_000)


def body(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "v": FORMAT_VERSION, "id": "id-1", "t": "tests.t", "sv": 1, "a": [], "k": {}, "ts": 5,
    }  # fmt: skip
    base.update(fields)
    return {k: v for k, v in base.items() if v is not _DROP}


_DROP = object()


# --- encode / decode -------------------------------------------------------------------


def test_round_trip_keeps_every_field() -> None:
    env = Envelope(
        id="id-1",
        task="tests.t",
        args=[1, "two", 3.5, None, True, [1, [2]], {"k": "v"}],
        kwargs={"x": {"y": [False]}, "ünï": "cödé ✓"},
        ts=1_700_000_000_123,
        schema_version=3,
        idempotency_key="order-42",
        trace={"traceparent": "00-abc-def-01"},
    )
    assert decode(encode(env, max_bytes=LIMIT)) == env


def test_encoding_is_compact_utf8_json() -> None:
    data = encode(make("é", n=1), max_bytes=LIMIT)
    assert b" " not in data
    assert "é".encode() in data
    assert json.loads(data) == {
        "v": 1, "id": "id-1", "t": "tests.t", "sv": 1, "a": ["é"], "k": {"n": 1},
        "ts": 1_700_000_000_000,
    }  # fmt: skip


def test_optional_fields_are_omitted_when_unset() -> None:
    raw = json.loads(encode(make(), max_bytes=LIMIT))
    assert "ik" not in raw
    assert "tc" not in raw


def test_tuples_travel_as_lists() -> None:
    env = make((1, 2), pair=("a", ("b",)))
    assert decode(encode(env, max_bytes=LIMIT)).args == [[1, 2]]
    assert decode(encode(env, max_bytes=LIMIT)).kwargs == {"pair": ["a", ["b"]]}


def test_decode_accepts_str() -> None:
    assert decode(encode(make(1), max_bytes=LIMIT).decode()).args == [1]


# --- refusals at encode ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "kwargs", "where"),
    [
        ((math.nan,), {}, "args[0]"),
        ((math.inf,), {}, "args[0]"),
        ((), {"x": -math.inf}, "kwargs['x']"),
        (({1: "a"},), {}, "args[0]"),
        (({("t",): "a"},), {}, "args[0]"),
        ((b"raw",), {}, "args[0]"),
        ((bytearray(b"raw"),), {}, "args[0]"),
        ((object(),), {}, "args[0]"),
        (({1, 2},), {}, "args[0]"),
        ((decimal.Decimal("1.5"),), {}, "args[0]"),
        ((datetime.date(2024, 1, 1),), {}, "args[0]"),
        ((1, [2, {"deep": [0, {"er": b"x"}]}]), {}, "args[1][1]['deep'][1]['er']"),
        ((), {"user": {"ids": [1, 2, object()]}}, "kwargs['user']['ids'][2]"),
    ],
)
def test_non_json_arguments_are_refused(
    args: tuple[Any, ...], kwargs: dict[str, Any], where: str
) -> None:
    with pytest.raises(PayloadNotSerializableError) as info:
        encode(make(*args, **kwargs), max_bytes=LIMIT)
    assert str(info.value).startswith(where + " ")
    assert isinstance(info.value, PayloadError)


def test_non_string_key_message_names_the_key_and_type() -> None:
    with pytest.raises(PayloadNotSerializableError, match=r"key 1 of type int"):
        encode(make({1: "a"}), max_bytes=LIMIT)


def test_object_message_names_the_type_and_the_fix() -> None:
    class Point:
        pass

    with pytest.raises(PayloadNotSerializableError) as info:
        encode(make(p=Point()), max_bytes=LIMIT)
    message = str(info.value)
    assert "Point" in message
    assert "never pickle" in message


def test_nan_message_says_why() -> None:
    with pytest.raises(PayloadNotSerializableError, match="NaN or Infinity"):
        encode(make(math.nan), max_bytes=LIMIT)


def test_lone_surrogate_is_refused_as_not_serializable() -> None:
    # A str that cannot be UTF-8 encoded (e.g. a filename decoded with
    # surrogateescape) must be refused with Relier's error, not UnicodeEncodeError.
    with pytest.raises(PayloadNotSerializableError):
        encode(make("bad \udcff name"), max_bytes=LIMIT)


def test_size_limit_raises_with_size_and_limit() -> None:
    env = make("x" * 500)
    size = len(encode(env, max_bytes=LIMIT))
    assert encode(env, max_bytes=size)  # exactly at the limit is fine
    with pytest.raises(PayloadTooLargeError) as info:
        encode(env, max_bytes=size - 1)
    assert info.value.size == size
    assert info.value.limit == size - 1
    assert "RELIER_MAX_PAYLOAD_BYTES" in str(info.value)
    assert isinstance(info.value, PayloadError)


def test_size_is_counted_in_utf8_bytes() -> None:
    env = make("é" * 100)
    size = len(encode(env, max_bytes=LIMIT))
    assert size >= 200 + len(encode(make(""), max_bytes=LIMIT))


# --- dumps -----------------------------------------------------------------------------


def test_dumps_is_strict_and_names_what() -> None:
    assert dumps({"a": [1, None]}) == b'{"a":[1,null]}'
    with pytest.raises(PayloadNotSerializableError, match=r"^result of t\['a'\] "):
        dumps({"a": math.nan}, what="result of t")


# --- refusals at decode ----------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not json",
        b"{",
        b"\xff\xfe\x00",
        b"[]",
        b'"a string"',
        b"42",
        b"null",
    ],
)
def test_decode_refuses_non_objects(data: bytes) -> None:
    with pytest.raises(InvalidEnvelopeError):
        decode(data)


@pytest.mark.parametrize("version", [_DROP, 0, 2, "1", None, True, 1.0])
def test_decode_refuses_other_versions(version: Any) -> None:
    with pytest.raises(InvalidEnvelopeError, match="version"):
        decode(json.dumps(body(v=version)))


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("id", _DROP), ("id", 1), ("t", _DROP), ("t", None), ("sv", _DROP), ("sv", "1"),
        ("sv", True), ("a", _DROP), ("a", {}), ("a", "x"), ("k", _DROP), ("k", []),
        ("ts", _DROP), ("ts", 1.5), ("ts", "5"), ("ts", False), ("ik", 5), ("ik", ["k"]),
        ("tc", "traceparent"), ("tc", []),
    ],
)  # fmt: skip
def test_decode_refuses_missing_or_mistyped_fields(name: str, value: Any) -> None:
    with pytest.raises(InvalidEnvelopeError, match=repr(name)):
        decode(json.dumps(body(**{name: value})))


def test_decode_refuses_deeply_nested_json() -> None:
    with pytest.raises(InvalidEnvelopeError):
        decode(b"[" * 100_000)


def test_decoded_envelope_carries_optional_fields() -> None:
    env = decode(json.dumps(body(ik="key", tc={"traceparent": "00-1"}, sv=4)))
    assert env.idempotency_key == "key"
    assert env.trace == {"traceparent": "00-1"}
    assert env.schema_version == 4


# --- properties ------------------------------------------------------------------------

# Seeded and without an example database: every run tries the same inputs.
PROFILE: dict[str, Any] = {"derandomize": True, "database": None, "deadline": None}

_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
_json = st.recursive(
    _scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=25,
)


@settings(**PROFILE, max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(
    args=st.lists(_json, max_size=5),
    kwargs=st.dictionaries(st.text(min_size=1, max_size=10), _json, max_size=5),
    ik=st.none() | st.text(max_size=20),
)
def test_json_native_arguments_round_trip(
    args: list[Any], kwargs: dict[str, Any], ik: str | None
) -> None:
    env = Envelope(id="id", task="t", args=args, kwargs=kwargs, ts=1, idempotency_key=ik)
    back = decode(encode(env, max_bytes=10 * LIMIT))
    assert back == env


@settings(**PROFILE, max_examples=500)
@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_arbitrary_bytes_decode_or_raise_invalid_envelope(data: bytes) -> None:
    try:
        env = decode(data)
    except InvalidEnvelopeError:
        return
    assert env.version == FORMAT_VERSION


@settings(**PROFILE, max_examples=300)
@given(
    st.dictionaries(
        st.sampled_from(["v", "id", "t", "sv", "a", "k", "ts", "ik", "tc", "x"]),
        _json,
        max_size=10,
    )
)
def test_arbitrary_objects_decode_or_raise_invalid_envelope(raw: dict[str, Any]) -> None:
    try:
        env = decode(json.dumps(raw))
    except InvalidEnvelopeError:
        return
    assert isinstance(env.args, list)
    assert isinstance(env.kwargs, dict)

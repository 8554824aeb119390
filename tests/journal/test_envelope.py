"""The versioned envelope: strict JSON in, a typed Envelope out, or a precise error.

The helpers below build envelopes from the format as docs/architecture.md
describes it (not from relier.journal.envelope), so these tests pin the bytes.
"""

from __future__ import annotations

import datetime
import decimal
import hashlib
import hmac
import json
import math
import re
from pathlib import Path
from typing import Any

import pytest

from relier.errors import (
    BadSignatureError,
    InvalidEnvelopeError,
    PayloadError,
    PayloadNotSerializableError,
    PayloadTooLargeError,
)
from relier.journal.envelope import FORMAT_VERSION, Envelope, decode, dumps, encode, encode_call

LIMIT = 1_048_576
KEY = b"k" * 32
OLD_KEY = b"o" * 32
ARCHITECTURE = Path(__file__).resolve().parents[2] / "docs" / "architecture.md"


def make(*args: Any, **kwargs: Any) -> Envelope:
    return Envelope(id="id-1", task="tests.t", args=list(args), kwargs=kwargs, ts=1_700_000_000_000)


def body(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "v": FORMAT_VERSION, "id": "id-1", "t": "tests.t", "sv": 1, "a": [], "k": {}, "ts": 5,
    }  # fmt: skip
    base.update(fields)
    return {k: v for k, v in base.items() if v is not _DROP}


_DROP = object()


def compact(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def seal(fields: dict[str, Any] | bytes, key: bytes | None = None) -> bytes:
    """Format 2: the body, its closing brace replaced by the digest (and MAC) and a brace."""
    data = fields if isinstance(fields, bytes) else compact(fields)
    tail = f',"d":"{hashlib.sha256(data).hexdigest()[:32]}"'
    if key is not None:
        tail += f',"s":"{hmac.new(key, data, hashlib.sha256).hexdigest()}"'
    return data[:-1] + tail.encode() + b"}"


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


def test_encoding_is_compact_utf8_json_then_the_digest() -> None:
    data = encode(make("é", n=1), max_bytes=LIMIT)
    assert b" " not in data
    assert "é".encode() in data
    expected_body = (
        '{"v":2,"id":"id-1","t":"tests.t","sv":1,"a":["é"],"k":{"n":1},"ts":1700000000000}'
    )
    digest = hashlib.sha256(expected_body.encode()).hexdigest()[:32]
    assert data == expected_body[:-1].encode() + f',"d":"{digest}"}}'.encode()


def test_signed_encoding_appends_the_mac_of_the_body() -> None:
    unsigned = encode(make(1), max_bytes=LIMIT)
    signed = encode(make(1), max_bytes=LIMIT, key=KEY)
    body_bytes = unsigned[: unsigned.rindex(b',"d":')] + b"}"
    mac = hmac.new(KEY, body_bytes, hashlib.sha256).hexdigest()
    assert signed == unsigned[:-1] + f',"s":"{mac}"}}'.encode()
    assert signed == seal(body_bytes, KEY)


def test_the_documented_example_is_byte_for_byte_what_encode_writes() -> None:
    env = Envelope(
        id="97b288cf-b3b5-430b-8cd6-29e73ef83660",
        task="tasks.total",
        args=[[1, 2, 3, 4, 5]],
        kwargs={},
        ts=1795690203449,
    )
    text = ARCHITECTURE.read_text(encoding="utf-8")
    assert encode(env, max_bytes=LIMIT).decode() in text
    signed = encode(env, max_bytes=LIMIT, key=b"correct horse battery staple")
    assert signed.decode() in text


def test_encode_always_writes_the_current_format() -> None:
    old = Envelope(id="i", task="t", args=[], kwargs={}, ts=1, version=1)
    assert json.loads(encode(old, max_bytes=LIMIT))["v"] == FORMAT_VERSION


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


@pytest.mark.parametrize("version", [_DROP, 0, 3, 99, -1, "1", "2", None, True, 1.0, 2.0, [2]])
def test_decode_refuses_other_versions(version: Any) -> None:
    with pytest.raises(InvalidEnvelopeError, match="version") as info:
        decode(seal(body(v=version)))
    assert "Upgrade the workers" in str(info.value)
    with pytest.raises(InvalidEnvelopeError, match="version"):
        decode(seal(body(v=version), KEY), keys=[KEY])


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("id", _DROP), ("id", 1), ("t", _DROP), ("t", None), ("sv", _DROP), ("sv", "1"),
        ("sv", True), ("a", _DROP), ("a", {}), ("a", "x"), ("k", _DROP), ("k", []),
        ("ts", _DROP), ("ts", 1.5), ("ts", "5"), ("ts", False), ("ik", 5), ("ik", ["k"]),
        ("tc", "traceparent"), ("tc", []),
    ],
)  # fmt: skip
@pytest.mark.parametrize("version", [1, 2])
def test_decode_refuses_missing_or_mistyped_fields(name: str, value: Any, version: int) -> None:
    fields = body(v=version, **{name: value})
    data = compact(fields) if version == 1 else seal(fields)
    with pytest.raises(InvalidEnvelopeError, match=repr(name)) as info:
        decode(data)
    assert not isinstance(info.value, BadSignatureError)


def test_a_huge_bad_value_is_quoted_short() -> None:
    with pytest.raises(InvalidEnvelopeError) as info:
        decode(seal(body(a="x" * 1_000_000)))
    assert len(str(info.value)) < 300
    assert "1000002 characters" in str(info.value)


def test_decode_refuses_deeply_nested_json() -> None:
    with pytest.raises(InvalidEnvelopeError):
        decode(b"[" * 100_000)


def test_decoded_envelope_carries_optional_fields() -> None:
    env = decode(seal(body(ik="key", tc={"traceparent": "00-1"}, sv=4)))
    assert env.idempotency_key == "key"
    assert env.trace == {"traceparent": "00-1"}
    assert env.schema_version == 4


# --- format 1 (Relier 0.1, still in journals) -------------------------------------------

V1 = (
    b'{"v":1,"id":"97b288cf-b3b5-430b-8cd6-29e73ef83660","t":"tasks.total","sv":1,'
    b'"a":[[1,2,3,4,5]],"k":{},"ts":1795690203449}'
)


def test_format_1_still_decodes() -> None:
    env = decode(V1)
    assert env == Envelope(
        id="97b288cf-b3b5-430b-8cd6-29e73ef83660",
        task="tasks.total",
        args=[[1, 2, 3, 4, 5]],
        kwargs={},
        ts=1795690203449,
        version=1,
    )
    assert decode(compact(body(v=1, ik="k", tc={"traceparent": "x"}))).idempotency_key == "k"


def test_format_1_has_no_signature_so_a_keyed_worker_refuses_it() -> None:
    with pytest.raises(BadSignatureError, match="format 1"):
        decode(V1, keys=[KEY])


def test_format_1_ignores_a_digest_field() -> None:
    # Format 1 never had one: extra fields were always ignored, not checked.
    assert decode(compact(body(v=1, d="not a digest"))).version == 1


# --- integrity (format 2) --------------------------------------------------------------


def test_every_truncation_is_refused() -> None:
    data = encode(make("abc", n=[1, 2]), max_bytes=LIMIT)
    for end in range(len(data)):
        with pytest.raises(InvalidEnvelopeError):
            decode(data[:end])


def test_a_changed_argument_with_a_stale_digest_is_refused() -> None:
    data = encode(make(100), max_bytes=LIMIT)
    forged = data.replace(b'"a":[100]', b'"a":[900]')
    assert json.loads(forged)["a"] == [900]
    with pytest.raises(InvalidEnvelopeError, match="digest mismatch"):
        decode(forged)


@pytest.mark.parametrize(
    "data",
    [
        compact(body()),  # format 2 without a digest
        seal(body()) + b"\n",  # anything after the closing brace
        seal(body()) + b" ",
        seal(body()).replace(b',"d":"', b', "d":"'),
        seal(body())[:-34] + seal(body())[-34:].upper(),
        compact({**body(), "d": "0" * 32}),
        compact({**body(), "d": hashlib.sha256(compact(body())).hexdigest()[:31]}),
        seal(body(s="0" * 64)),  # a signature inside the body, not in the tail
        seal(body())[:-1] + b',"s":"' + b"0" * 63 + b'"}',
    ],
    ids=[
        "no-digest", "newline", "space", "spaced-tail", "uppercase-hex", "zero-digest",
        "short-digest", "s-in-body", "short-mac",
    ],
)  # fmt: skip
def test_a_malformed_tail_is_refused(data: bytes) -> None:
    with pytest.raises(InvalidEnvelopeError):
        decode(data)


def test_a_missing_envelope_is_invalid() -> None:
    with pytest.raises(InvalidEnvelopeError, match="no envelope"):
        decode(None)
    with pytest.raises(InvalidEnvelopeError, match="int"):
        decode(5)  # type: ignore[arg-type]


def test_decode_accepts_str_and_refuses_lone_surrogates() -> None:
    assert decode(encode(make("é"), max_bytes=LIMIT).decode()).args == ["é"]
    with pytest.raises(InvalidEnvelopeError, match="Unicode"):
        decode('{"v":2,"a":["\udcff"]}')


# --- signatures ------------------------------------------------------------------------


def test_signed_round_trip() -> None:
    env = make(1, "two", x={"y": None})
    assert decode(encode(env, max_bytes=LIMIT, key=KEY), keys=[KEY]) == env


def test_an_old_key_still_verifies() -> None:
    data = encode(make(1), max_bytes=LIMIT, key=OLD_KEY)
    assert decode(data, keys=[KEY, OLD_KEY]).args == [1]
    with pytest.raises(BadSignatureError):
        decode(data, keys=[KEY])


def test_without_keys_a_signature_is_ignored() -> None:
    data = encode(make(1), max_bytes=LIMIT, key=KEY)
    assert decode(data).args == [1]
    assert decode(seal(body(a=[1]), b"w" * 32)).args == [1]


def test_with_keys_an_unsigned_envelope_is_refused() -> None:
    with pytest.raises(BadSignatureError, match="unsigned") as info:
        decode(encode(make(1), max_bytes=LIMIT), keys=[KEY])
    assert isinstance(info.value, InvalidEnvelopeError)
    assert "RELIER_SIGNING_KEY" in str(info.value)


def test_a_wrong_key_is_refused() -> None:
    with pytest.raises(BadSignatureError, match="matches none of the 2"):
        decode(encode(make(1), max_bytes=LIMIT, key=b"w" * 32), keys=[KEY, OLD_KEY])


def test_a_tampered_envelope_with_a_fresh_digest_is_refused() -> None:
    signed = encode(make(100), max_bytes=LIMIT, key=KEY)
    mac = json.loads(signed)["s"]
    tampered = seal(body(id="id-1", t="tests.t", a=[900], ts=1_700_000_000_000))
    forged = tampered[:-1] + f',"s":"{mac}"}}'.encode()
    assert decode(forged).args == [900]  # digest fine: only a key can tell
    with pytest.raises(BadSignatureError):
        decode(forged, keys=[KEY])


def test_the_signature_is_checked_before_the_fields() -> None:
    # A forged envelope is refused as forged, whatever its fields hold.
    with pytest.raises(BadSignatureError):
        decode(seal(body(a="not a list")), keys=[KEY])
    with pytest.raises(BadSignatureError):
        decode(seal(body(a="not a list"), b"w" * 32), keys=[KEY])
    with pytest.raises(InvalidEnvelopeError, match="'a'"):
        decode(seal(body(a="not a list"), KEY), keys=[KEY])


def test_garbage_is_invalid_not_bad_signature() -> None:
    for data in (b"", b"not json", b"[]", b'{"v":9}', compact(body())):
        with pytest.raises(InvalidEnvelopeError) as info:
            decode(data, keys=[KEY])
        assert not isinstance(info.value, BadSignatureError)


@pytest.mark.parametrize(
    "args",
    [[1, "x", None, True, 2.5], [{"nested": [1]}], (1, 2)],
)
def test_encode_call_writes_the_bytes_encode_writes(args: Any) -> None:
    env = Envelope(id="i", task="t", args=list(args), kwargs={"k": 1.5}, ts=9, schema_version=3,
                   idempotency_key="ik", trace={"traceparent": "00-x"})  # fmt: skip
    expected = encode(env, max_bytes=4096, key=b"k" * 16)
    assert encode_call(
        "i", "t", args, {"k": 1.5}, 9, 3, "ik", {"traceparent": "00-x"}, max_bytes=4096,
        key=b"k" * 16,
    ) == expected  # fmt: skip


@pytest.mark.parametrize(
    ("args", "kwargs", "where"),
    [
        ([1, float("nan")], {}, "args[1]"),
        ([], {"a": float("inf")}, "kwargs['a']"),
        ([], {1: 2}, "kwargs has a key 1"),
        ([1, b"x"], {}, "args[1]"),
    ],
)
def test_flat_arguments_are_refused_like_nested_ones(
    args: list[Any], kwargs: dict[Any, Any], where: str
) -> None:
    with pytest.raises(PayloadNotSerializableError, match=re.escape(where)):
        encode_call("i", "t", args, kwargs, 1, max_bytes=4096)

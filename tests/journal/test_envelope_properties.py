"""Properties of the envelope over generated input: what encode writes decodes to the
same call, and no input, however broken or hostile, makes decode raise anything but
InvalidEnvelopeError (BadSignatureError is one)."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relier.errors import BadSignatureError, InvalidEnvelopeError
from relier.journal.envelope import FORMAT_VERSION, READABLE_VERSIONS, Envelope, decode, encode

LIMIT = 10 * 1_048_576
KEY = b"k" * 32
OTHER_KEY = b"w" * 32

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
_envelopes = st.builds(
    Envelope,
    id=st.text(min_size=1, max_size=40),
    task=st.text(min_size=1, max_size=40),
    args=st.lists(_json, max_size=5),
    kwargs=st.dictionaries(st.text(min_size=1, max_size=10), _json, max_size=5),
    ts=st.integers(min_value=0, max_value=2**53),
    schema_version=st.integers(min_value=1, max_value=2**31),
    idempotency_key=st.none() | st.text(max_size=20),
    trace=st.dictionaries(st.sampled_from(["traceparent", "tracestate"]), st.text(max_size=55)),
)
_keys = st.none() | st.just(KEY)


def _decodes_or_is_invalid(data: bytes | str, keys: list[bytes]) -> Envelope | None:
    """decode's only allowed outcomes: an Envelope or InvalidEnvelopeError."""
    try:
        env = decode(data, keys=keys)
    except InvalidEnvelopeError:
        return None
    assert env.version in READABLE_VERSIONS
    assert isinstance(env.args, list) and isinstance(env.kwargs, dict)
    return env


def _seal(fields: dict[str, Any], key: bytes | None = None) -> bytes:
    body = json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode()
    tail = f',"d":"{hashlib.sha256(body).hexdigest()[:32]}"'
    if key is not None:
        tail += f',"s":"{hmac.new(key, body, hashlib.sha256).hexdigest()}"'
    return body[:-1] + tail.encode() + b"}"


# --- round trips -----------------------------------------------------------------------


@settings(**PROFILE, max_examples=100, suppress_health_check=[HealthCheck.too_slow])
@given(env=_envelopes, key=_keys)
def test_encode_then_decode_is_the_same_call(env: Envelope, key: bytes | None) -> None:
    data = encode(env, max_bytes=LIMIT, key=key)
    assert decode(data) == env
    if key is not None:
        assert decode(data, keys=[OTHER_KEY, key]) == env


@settings(**PROFILE, max_examples=50, suppress_health_check=[HealthCheck.too_slow])
@given(env=_envelopes)
def test_format_1_as_relier_0_1_wrote_it_decodes(env: Envelope) -> None:
    fields: dict[str, Any] = {
        "v": 1, "id": env.id, "t": env.task, "sv": env.schema_version, "a": env.args,
        "k": env.kwargs, "ts": env.ts,
    }  # fmt: skip
    if env.idempotency_key is not None:
        fields["ik"] = env.idempotency_key
    if env.trace:
        fields["tc"] = env.trace
    data = json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode()
    back = decode(data)
    assert back.version == 1
    assert back == Envelope(**{**_asdict(env), "version": 1})


def _asdict(env: Envelope) -> dict[str, Any]:
    return {name: getattr(env, name) for name in Envelope.__slots__}


# --- damage is always caught -----------------------------------------------------------


@settings(**PROFILE, max_examples=75, suppress_health_check=[HealthCheck.too_slow])
@given(env=_envelopes, key=_keys, data=st.data())
def test_any_truncation_is_refused(env: Envelope, key: bytes | None, data: st.DataObject) -> None:
    encoded = encode(env, max_bytes=LIMIT, key=key)
    end = data.draw(st.integers(min_value=0, max_value=len(encoded) - 1))
    assert _decodes_or_is_invalid(encoded[:end], [KEY] if key else []) is None


@settings(**PROFILE, max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(env=_envelopes, key=_keys, data=st.data())
def test_any_changed_byte_is_refused(env: Envelope, key: bytes | None, data: st.DataObject) -> None:
    encoded = bytearray(encode(env, max_bytes=LIMIT, key=key))
    where = data.draw(st.integers(min_value=0, max_value=len(encoded) - 1))
    encoded[where] = data.draw(st.integers(0, 255).filter(lambda b: b != encoded[where]))
    # Without keys a signature is not checked, so only a signed envelope read with its
    # key covers the MAC bytes too.
    keys = [KEY] if key else []
    assert _decodes_or_is_invalid(bytes(encoded), keys) is None


@settings(**PROFILE, max_examples=50, suppress_health_check=[HealthCheck.too_slow])
@given(env=_envelopes, other=_envelopes)
def test_a_signature_never_covers_another_body(env: Envelope, other: Envelope) -> None:
    signed = json.loads(encode(env, max_bytes=LIMIT, key=KEY))
    forged = _seal(
        {k: v for k, v in json.loads(encode(other, max_bytes=LIMIT)).items() if k != "d"}
    )
    forged = forged[:-1] + f',"s":"{signed["s"]}"}}'.encode()
    same_body = encode(other, max_bytes=LIMIT) == encode(env, max_bytes=LIMIT)
    if same_body:
        assert decode(forged, keys=[KEY]) == other
    else:
        with pytest.raises(BadSignatureError):
            decode(forged, keys=[KEY])


# --- hostile input never crashes decode ------------------------------------------------


@settings(**PROFILE, max_examples=300)
@given(
    data=st.binary(max_size=300) | st.text(max_size=300).map(str.encode),
    keys=st.sampled_from([[], [KEY]]),
)
def test_arbitrary_bytes_decode_or_raise_invalid_envelope(data: bytes, keys: list[bytes]) -> None:
    _decodes_or_is_invalid(data, keys)


@settings(**PROFILE, max_examples=100)
@given(st.text(max_size=200))
def test_arbitrary_str_decodes_or_raises_invalid_envelope(text: str) -> None:
    _decodes_or_is_invalid(text, [])


_fields = st.dictionaries(
    st.sampled_from(["v", "id", "t", "sv", "a", "k", "ts", "ik", "tc", "d", "s", "x"]),
    _json | st.sampled_from([1, 2, FORMAT_VERSION]),
    max_size=12,
)


@settings(**PROFILE, max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(raw=_fields, keys=st.sampled_from([[], [KEY]]))
def test_arbitrary_objects_decode_or_raise_invalid_envelope(
    raw: dict[str, Any], keys: list[bytes]
) -> None:
    _decodes_or_is_invalid(json.dumps(raw).encode(), keys)


@settings(**PROFILE, max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(raw=_fields, seal_key=st.sampled_from([None, KEY, OTHER_KEY]), keys=_keys)
def test_arbitrary_sealed_objects_decode_or_raise_invalid_envelope(
    raw: dict[str, Any], seal_key: bytes | None, keys: bytes | None
) -> None:
    # A correct digest (and maybe MAC) gets past the integrity check, so the field
    # checks behind it see the generated values.
    fields = {"v": 2, **{k: v for k, v in raw.items() if k not in ("d", "s")}}
    env = _decodes_or_is_invalid(_seal(fields, seal_key), [keys] if keys else [])
    if env is not None and keys is not None:
        assert seal_key == keys

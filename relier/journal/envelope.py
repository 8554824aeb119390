"""The versioned envelope every payload travels in, sealed against damage and forgery.

An envelope is compact JSON (UTF-8, no spaces, no NaN) of one object:

====== ======================================================================
field  meaning
====== ======================================================================
``v``  envelope format version (this module writes 2, reads 1 and 2)
``id`` task id (the Celery task id too)
``t``  task name
``sv`` the task's ``schema_version`` the call was made for
``a``  positional arguments (JSON array)
``k``  keyword arguments (JSON object)
``ts`` dispatch time, ms since the epoch
``ik`` idempotency key, or absent
``tc`` trace context (W3C ``traceparent``/``tracestate``), or absent
``d``  format 2: digest of the *body* (the fields above, as written), last
       but for ``s``
``s``  format 2, only when signed: HMAC-SHA256 of the body, last
====== ======================================================================

The body is the object of the fields above, encoded as ``encode`` writes it;
the stored bytes are the body with its closing ``}`` replaced by
``,"d":"<digest>"`` (and ``,"s":"<mac>"``) and ``}``. Verification strips
that fixed-shape tail and hashes the bytes as stored: nothing is ever
re-serialised to be checked, so the writer's JSON need not be reproducible.
docs/architecture.md documents the format byte for byte.

Attempt, fence and resurrection counts change during a task's life, so they
live in the journal hash, never in the immutable envelope. Relier never
pickles: arguments must be JSON-native (``str``, ``int``, ``float``,
``bool``, ``None``, lists/tuples and dicts with string keys).

Compatibility rule: any change to the bytes bumps ``FORMAT_VERSION``, and
every older format still decodes (format 1, written by Relier 0.1 and
waiting in journals, has no digest and no signature).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from relier.errors import (
    BadSignatureError,
    InvalidEnvelopeError,
    PayloadNotSerializableError,
    PayloadTooLargeError,
)

__all__ = [
    "FORMAT_VERSION",
    "READABLE_VERSIONS",
    "Envelope",
    "decode",
    "digest",
    "dumps",
    "encode",
    "encode_call",
    "mac",
]

FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)

# The digest is the first 16 bytes of SHA-256, in lowercase hex. CRC32 is
# cheaper (0.5 against 0.7 us for a typical 150-byte envelope; at 1 MB, 0.25
# against 0.8 ms, beside 1.6 ms to parse the JSON), but it lets one damaged
# envelope in 2**32 through and can be kept right by an edit on purpose
# (it is linear); 128 bits of SHA-256 make an unnoticed corruption
# impossible in practice at a cost no push will feel. It is not a
# signature: anyone can recompute it, which is what the MAC is for.
_DIGEST_HEX = 32
_MAC_HEX = 64
# The tail encode appends, matched at the very end of the stored bytes.
_TAIL = re.compile(rb',"d":"([0-9a-f]{32})"(?:,"s":"([0-9a-f]{64})")?\}\Z')
_TAIL_MAX = len(b',"d":""') + _DIGEST_HEX + len(b',"s":""') + _MAC_HEX + 1
# How much of a bad value an error message quotes: the DLQ entry and the
# worker log keep the message, and a hostile envelope may be megabytes.
_QUOTE = 80


@dataclass(frozen=True, slots=True)
class Envelope:
    """One decoded call: which task, which arguments, made when.

    ``version`` is the format the envelope was read in (encode always writes
    :data:`FORMAT_VERSION`). The attempt and resurrection counts are not
    here: they change during the task's life and are kept in the journal
    (the task sees its attempt as ``ctx.attempt``).
    """

    id: str
    task: str
    args: list[Any]
    kwargs: dict[str, Any]
    ts: int
    schema_version: int = 1
    idempotency_key: str | None = None
    trace: dict[str, str] = field(default_factory=dict)
    version: int = FORMAT_VERSION


def dumps(value: Any, *, what: str = "value") -> bytes:
    """Strict JSON: no NaN/Infinity, string keys only, never a fallback encoder.

    Raises:
        PayloadNotSerializableError: ``value`` holds something JSON cannot
            carry; the message says where.
    """
    _check(value, what)
    return _to_bytes(value, what)


# Types a flat list of arguments (or dict of keyword arguments) is usually
# made of: checked by one pass over it, without the recursive walk.
_SCALARS = frozenset({str, int, bool, type(None)})


def _flat(value: Any) -> bool:
    """Whether ``value`` is a list/tuple or str-keyed dict of JSON scalars (finite floats)."""
    kind = type(value)
    if kind is dict:
        if not all(type(k) is str for k in value):
            return False
        value = value.values()
    elif kind is not list and kind is not tuple:
        return False
    scalars, isfinite = _SCALARS, math.isfinite
    return all(type(v) in scalars or (type(v) is float and isfinite(v)) for v in value)


def _check(value: Any, what: str) -> None:
    if _flat(value):
        return
    try:
        _check_json(value, what)
    except RecursionError:
        raise PayloadNotSerializableError(
            f"{what} is nested too deeply to encode; flatten it"
        ) from None


def _to_bytes(value: Any, what: str) -> bytes:
    try:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        return text.encode()
    except UnicodeEncodeError as exc:
        # A lone surrogate (from a bad decode upstream) is valid in a Python
        # str but not in UTF-8, so it cannot travel.
        raise PayloadNotSerializableError(
            f"{what} holds a string that is not valid Unicode ({exc.reason} at position "
            f"{exc.start}); repair the text before pushing it"
        ) from None
    except RecursionError:
        raise PayloadNotSerializableError(f"{what} is nested too deeply to encode") from None


def _check_json(value: Any, path: str) -> None:
    # json.dumps would silently turn int keys into strings and tuples into
    # lists of a different type; refuse the first, accept the second, and
    # name the exact place that failed instead of json's bare TypeError.
    if value is None or isinstance(value, str | bool | int):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise PayloadNotSerializableError(f"{path} is {value!r}; JSON has no NaN or Infinity")
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise PayloadNotSerializableError(
                    f"{path} has a key {key!r} of type {type(key).__name__}; JSON object keys "
                    "must be strings"
                )
            _check_json(item, f"{path}[{key!r}]")
        return
    if isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        for index, item in enumerate(value):
            _check_json(item, f"{path}[{index}]")
        return
    raise PayloadNotSerializableError(
        f"{path} is a {type(value).__module__}.{type(value).__qualname__}, which is not "
        "JSON-serialisable (Relier sends JSON only, never pickle); pass str/int/float/bool/"
        "None, lists or dicts of them"
    )


def digest(body: bytes) -> str:
    """The integrity digest of ``body``: SHA-256, first 16 bytes, lowercase hex."""
    return hashlib.sha256(body).hexdigest()[:_DIGEST_HEX]


@functools.lru_cache(maxsize=16)
def _keyed(key: bytes) -> hmac.HMAC:
    # The key schedule is computed once per key; each MAC copies it.
    return hmac.new(key, digestmod=hashlib.sha256)


def mac(key: bytes, body: bytes) -> str:
    """HMAC-SHA256 of ``body`` under ``key``, lowercase hex."""
    h = _keyed(key).copy()
    h.update(body)
    return h.hexdigest()


def encode(envelope: Envelope, *, max_bytes: int, key: bytes | None = None) -> bytes:
    """Encode ``envelope`` in the current format; sign it when ``key`` is given.

    Args:
        envelope: the call; its ``version`` is ignored (always
            :data:`FORMAT_VERSION` is written).
        max_bytes: the largest encoded envelope accepted, digest and
            signature included.
        key: the signing key (``RELIER_SIGNING_KEY``), or ``None`` to leave
            the envelope unsigned.

    Raises:
        PayloadNotSerializableError: an argument is not JSON-native.
        PayloadTooLargeError: the encoded envelope exceeds ``max_bytes``.
    """
    e = envelope
    return encode_call(
        e.id, e.task, e.args, e.kwargs, e.ts, e.schema_version, e.idempotency_key, e.trace,
        max_bytes=max_bytes, key=key,
    )  # fmt: skip


def encode_call(
    task_id: str,
    task: str,
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    ts: int,
    schema_version: int = 1,
    idempotency_key: str | None = None,
    trace: Mapping[str, str] | None = None,
    *,
    max_bytes: int,
    key: bytes | None = None,
) -> bytes:
    """:func:`encode` of the envelope these fields make, without building an :class:`Envelope`.

    The push path calls this directly; the bytes are the same.

    Raises:
        PayloadNotSerializableError: an argument is not JSON-native.
        PayloadTooLargeError: the encoded envelope exceeds ``max_bytes``.
    """
    _check(args, "args")
    _check(kwargs, "kwargs")
    fields: dict[str, Any] = {
        "v": FORMAT_VERSION,
        "id": task_id,
        "t": task,
        "sv": schema_version,
        "a": list(args),
        "k": kwargs,
        "ts": ts,
    }
    if idempotency_key is not None:
        fields["ik"] = idempotency_key
    if trace:
        fields["tc"] = trace
    body = _to_bytes(fields, f"the arguments of {task}")
    # The digest is over the bytes just made: nothing is serialised twice.
    tail = b',"d":"' + digest(body).encode() + b'"'
    if key is not None:
        tail += b',"s":"' + mac(key, body).encode() + b'"'
    data = body[:-1] + tail + b"}"
    if len(data) > max_bytes:
        raise PayloadTooLargeError(
            f"task {task}: the payload is {len(data)} bytes, over the limit of "
            f"{max_bytes} (RELIER_MAX_PAYLOAD_BYTES); store large data elsewhere (object "
            "storage, a database) and pass a reference",
            size=len(data),
            limit=max_bytes,
        )
    return data


def decode(data: bytes | str | None, *, keys: Sequence[bytes] = ()) -> Envelope:
    """Decode an envelope written by :func:`encode` (any readable format).

    Checks, in this order: JSON object, format version, digest (format 2),
    signature (only with ``keys``), then each field's type. So a forged
    envelope is refused for its signature before any of its fields is
    looked at.

    Args:
        data: the stored envelope (``None``, a missing one, is refused).
        keys: the keys a signature may be made with (``RELIER_SIGNING_KEY``
            first, then ``RELIER_SIGNING_OLD_KEYS``). Non-empty means a
            signature is *required*: an unsigned envelope (any format 1) is
            refused. Empty means any signature is ignored.

    Raises:
        BadSignatureError: ``keys`` were given and the envelope is unsigned
            or its signature matches none of them.
        InvalidEnvelopeError: not JSON, not an object, an unknown format
            version, a digest that does not match (truncated or corrupted),
            or a missing or mistyped field.
    """
    if data is None:
        # A journal entry whose env field is gone: HMGET gives nil.
        raise InvalidEnvelopeError("the task's journal entry has no envelope (no 'env' field)")
    if isinstance(data, str):
        try:
            data = data.encode()
        except UnicodeEncodeError as exc:
            raise InvalidEnvelopeError(f"envelope is not valid Unicode: {exc.reason}") from None
    elif not isinstance(data, bytes | bytearray):
        raise InvalidEnvelopeError(f"envelope is a {type(data).__name__}, not bytes")
    try:
        body = json.loads(data)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise InvalidEnvelopeError(f"envelope is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidEnvelopeError(f"envelope is a JSON {type(body).__name__}, not an object")
    version = body.get("v")
    if type(version) is not int or version not in READABLE_VERSIONS:
        readable = ", ".join(map(str, READABLE_VERSIONS))
        raise InvalidEnvelopeError(
            f"envelope format version {_quote(version)} is not one this worker reads "
            f"({readable}); a newer Relier wrote it? Upgrade the workers before the producers"
        )
    signed = _verify_digest(data, body) if version >= 2 else None
    if keys:
        _verify_signature(signed, keys, version)
    return _fields(body, version)


def _verify_digest(data: bytes, body: dict[str, Any]) -> tuple[bytes, str] | None:
    """Check a format-2 digest; return (signed bytes, MAC) if there is a MAC."""
    tail = _TAIL.search(data, max(0, len(data) - _TAIL_MAX))
    if tail is None or ("s" in body) != (tail[2] is not None):
        raise InvalidEnvelopeError(
            'envelope has no valid integrity tail (,"d":"<32 hex>"[,"s":"<64 hex>"]} at its '
            "end): truncated, corrupted or not written by Relier"
        )
    signed = data[: tail.start()] + b"}"
    expected = digest(signed).encode()
    if not hmac.compare_digest(expected, tail[1]):
        raise InvalidEnvelopeError(
            f"envelope digest mismatch (stored {tail[1].decode()}, computed "
            f"{expected.decode()}): it was corrupted or edited after it was written"
        )
    return (signed, tail[2].decode()) if tail[2] is not None else None


def _verify_signature(
    signed: tuple[bytes, str] | None, keys: Sequence[bytes], version: int
) -> None:
    if signed is None:
        what = "format 1 (which has no signature)" if version == 1 else "unsigned"
        raise BadSignatureError(
            f"envelope is {what}, and this worker requires a signature (RELIER_SIGNING_KEY is "
            "set): refused; was it pushed by a producer without the signing key?"
        )
    body, stored = signed
    # Every key is tried, matched or not, so the time taken says nothing of
    # which one (if any) matched.
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(mac(key, body), stored)
    if not matched:
        raise BadSignatureError(
            f"envelope signature matches none of the {len(keys)} signing key(s) of this worker "
            "(RELIER_SIGNING_KEY, RELIER_SIGNING_OLD_KEYS): forged, tampered with, or signed "
            "with a key this worker does not have"
        )


def _fields(body: dict[str, Any], version: int) -> Envelope:
    expected: dict[str, type | tuple[type, ...]] = {
        "id": str,
        "t": str,
        "sv": int,
        "a": list,
        "k": dict,
        "ts": int,
    }
    for name, kind in expected.items():
        value = body.get(name)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise InvalidEnvelopeError(
                f"envelope field {name!r} is missing or mistyped: {_quote(value)}"
            )
    ik = body.get("ik")
    trace = body.get("tc", {})
    if (ik is not None and not isinstance(ik, str)) or not isinstance(trace, dict):
        raise InvalidEnvelopeError("envelope field 'ik' or 'tc' is mistyped")
    return Envelope(
        id=body["id"],
        task=body["t"],
        args=body["a"],
        kwargs=body["k"],
        ts=body["ts"],
        schema_version=body["sv"],
        idempotency_key=ik,
        trace={str(k): str(v) for k, v in trace.items()},
        version=version,
    )


def _quote(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _QUOTE else f"{text[:_QUOTE]}... ({len(text)} characters)"

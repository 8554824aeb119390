"""The versioned envelope every payload travels in.

An envelope is compact JSON (UTF-8, no spaces, no NaN) of one object:

====== ======================================================================
field  meaning
====== ======================================================================
``v``  envelope format version (this module writes 1 and reads 1)
``id`` task id (the Celery task id too)
``t``  task name
``sv`` the task's ``schema_version`` the call was made for
``a``  positional arguments (JSON array)
``k``  keyword arguments (JSON object)
``ts`` dispatch time, ms since the epoch
``ik`` idempotency key, or absent
``tc`` trace context (W3C ``traceparent``/``tracestate``), or absent
====== ======================================================================

Attempt, fence and resurrection counts change during a task's life, so they
live in the journal hash, never in the immutable envelope. Relier never
pickles: arguments must be JSON-native (``str``, ``int``, ``float``,
``bool``, ``None``, lists/tuples and dicts with string keys).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import InvalidEnvelopeError, PayloadNotSerializableError, PayloadTooLargeError

__all__ = ["FORMAT_VERSION", "Envelope", "decode", "dumps", "encode"]

FORMAT_VERSION = 1


@dataclass(frozen=True, slots=True)
class Envelope:
    """One decoded call: which task, which arguments, made when."""

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


def _check(value: Any, what: str) -> None:
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


def encode(envelope: Envelope, *, max_bytes: int) -> bytes:
    """Encode ``envelope``; refuse it when larger than ``max_bytes``.

    Raises:
        PayloadNotSerializableError: an argument is not JSON-native.
        PayloadTooLargeError: the encoded envelope exceeds ``max_bytes``.
    """
    _check(envelope.args, "args")
    _check(envelope.kwargs, "kwargs")
    body: dict[str, Any] = {
        "v": envelope.version,
        "id": envelope.id,
        "t": envelope.task,
        "sv": envelope.schema_version,
        "a": list(envelope.args),
        "k": envelope.kwargs,
        "ts": envelope.ts,
    }
    if envelope.idempotency_key is not None:
        body["ik"] = envelope.idempotency_key
    if envelope.trace:
        body["tc"] = envelope.trace
    data = _to_bytes(body, f"the arguments of {envelope.task}")
    if len(data) > max_bytes:
        raise PayloadTooLargeError(
            f"task {envelope.task}: the payload is {len(data)} bytes, over the limit of "
            f"{max_bytes} (RELIER_MAX_PAYLOAD_BYTES); store large data elsewhere (object "
            "storage, a database) and pass a reference",
            size=len(data),
            limit=max_bytes,
        )
    return data


def decode(data: bytes | str) -> Envelope:
    """Decode an envelope written by :func:`encode`.

    Raises:
        InvalidEnvelopeError: not JSON, not an object, an unknown format
            version, or a missing or mistyped field.
    """
    try:
        body = json.loads(data)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise InvalidEnvelopeError(f"envelope is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidEnvelopeError(f"envelope is a JSON {type(body).__name__}, not an object")
    version = body.get("v")
    if type(version) is not int or version != FORMAT_VERSION:
        raise InvalidEnvelopeError(
            f"envelope format version {version!r} is not one this worker reads ({FORMAT_VERSION})"
        )
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
            raise InvalidEnvelopeError(f"envelope field {name!r} is missing or mistyped: {value!r}")
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

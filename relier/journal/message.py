"""Celery messages, built the way kombu's Redis transport stores them.

Dispatch publishes from inside a Lua script (journal and publish in one
atomic step), so the message is built here rather than by a kombu producer.
The layout is Celery's task protocol 2 in kombu's Redis envelope: headers
carry the task name and id, the base64 body is ``[args, kwargs, embed]``.
The only argument is the task id: the payload lives in the journal, the
message is a hint to go and look at it.

The message text is stored without its delivery tag's value so every
(re)publish can give it a fresh tag: the template ends just inside the
``"delivery_tag":"`` string and Lua appends ``<tag>"}}``.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import re
import socket

__all__ = ["TEMPLATE_TAIL", "message_template", "new_delivery_tag", "random_uuid"]

TEMPLATE_TAIL = '"}}'
_ORIGIN = f"gen{os.getpid()}@{socket.gethostname()}"
_EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
_EMBED_JSON = json.dumps(_EMBED, separators=(",", ":"))


# The RFC 4122 variant (binary 10xx) of a random hex digit.
_VARIANT = {f"{n:x}": f"{8 + (n & 3):x}" for n in range(16)}


def random_uuid() -> str:
    """``str(uuid.uuid4())``, the same distribution from the same source (16 bytes
    of ``os.urandom``) without the ``UUID`` object: a third of the time."""
    h = os.urandom(16).hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"


def new_delivery_tag() -> str:
    """A fresh kombu delivery tag."""
    return random_uuid()


def message_template(task_id: str, task_name: str, queue: str) -> str:
    """The message for ``task_id`` minus its delivery tag value.

    Every push builds one, so the JSON of everything but the per-call values
    is built once per (task, queue) and those values spliced in: the same
    text as :func:`_build`, in a fraction of the time.
    """
    quoted_id = json.dumps(task_id)
    raw = f"[[{quoted_id}],{{}},{_EMBED_JSON}]".encode()
    values = {
        _ID: quoted_id,
        _BODY: f'"{base64.b64encode(raw).decode()}"',
        _REPR: json.dumps(f"({task_id!r},)"),
    }
    return "".join([values.get(piece, piece) for piece in _skeleton(task_name, queue)])


# Stand-ins for the per-call values; NUL cannot occur in a task name.
_ID, _BODY = "\x00id\x00", "\x00body\x00"
_REPR = f"({_ID!r},)"


@functools.lru_cache(maxsize=1024)
def _skeleton(task_name: str, queue: str) -> tuple[str, ...]:
    """:func:`_build`'s text split around the (JSON-quoted) stand-ins."""
    quoted = {json.dumps(v): v for v in (_ID, _BODY, _REPR)}
    text = _build(_ID, task_name, queue, body=_BODY)
    pieces = re.split("(" + "|".join(re.escape(q) for q in quoted) + ")", text)
    return tuple(quoted.get(piece, piece) for piece in pieces)


def _build(task_id: str, task_name: str, queue: str, body: str | None = None) -> str:
    """The message for ``task_id`` minus its delivery tag value, built whole."""
    if body is None:
        raw = json.dumps([[task_id], {}, _EMBED], separators=(",", ":")).encode()
        body = base64.b64encode(raw).decode()
    message = {
        "body": body,
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {
            "lang": "py",
            "task": task_name,
            "id": task_id,
            "shadow": None,
            "eta": None,
            "expires": None,
            "group": None,
            "group_index": None,
            "retries": 0,
            "timelimit": [None, None],
            "root_id": task_id,
            "parent_id": None,
            "argsrepr": f"({task_id!r},)",
            "kwargsrepr": "{}",
            "origin": _ORIGIN,
            "ignore_result": True,
        },
        "properties": {
            "correlation_id": task_id,
            "reply_to": "",
            "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": queue},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": "",
        },
    }
    text = json.dumps(message, separators=(",", ":"))
    # The delivery tag is the very last value, so cutting its closing
    # characters leaves the template Lua completes.
    assert text.endswith('"delivery_tag":""}}')
    return text[: -len(TEMPLATE_TAIL)]

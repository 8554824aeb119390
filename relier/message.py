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
import json
import os
import socket
import uuid

__all__ = ["TEMPLATE_TAIL", "message_template", "new_delivery_tag"]

TEMPLATE_TAIL = '"}}'
_ORIGIN = f"gen{os.getpid()}@{socket.gethostname()}"
_EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}


def new_delivery_tag() -> str:
    """A fresh kombu delivery tag."""
    return str(uuid.uuid4())


def message_template(task_id: str, task_name: str, queue: str) -> str:
    """The message for ``task_id`` minus its delivery tag value."""
    body = json.dumps([[task_id], {}, _EMBED], separators=(",", ":")).encode()
    message = {
        "body": base64.b64encode(body).decode(),
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

"""What every version of the ``deploy.greet`` app shares (test_rolling_deploy.py).

Each version's body records which code ran a call by pushing its version
to ``rl-test:ran:<task id>``, so a test can tell, whichever worker ran it,
that no call ran on code that does not know its version. The migrations live
here as a code base keeps them from one version to the next.

The versions of ``deploy.greet``:

* v1 ``greet(name)``;
* v2 ``greet(first, last="", *, greeting="Hello")``: ``name`` split in two
  (a rename), and a new optional argument;
* v3 ``greet(person, *, greeting="Hello")``: first and last name as one
  object (a type change).

Every version greets the same call the same way: ``Hello, Ada Lovelace!``.
"""

from __future__ import annotations

from typing import Any

import relier
from relier import TaskContext


def record(ctx: TaskContext, code: str) -> None:
    """Note that code version ``code`` ran the call ``ctx`` belongs to."""
    relier.current().redis.rpush(f"rl-test:ran:{ctx.task_id}", code)


def say(salutation: str, *names: str) -> str:
    return f"{salutation}, {' '.join(n for n in names if n)}!"


def name_to_first_last(call: dict[str, Any]) -> dict[str, Any]:
    """Migration 1 -> 2: ``greet(name)`` becomes ``greet(first, last)``."""
    args, kwargs = call["args"], call["kwargs"]
    name = args[0] if args else kwargs["name"]
    first, _, last = name.strip().partition(" ")
    if not first:
        raise ValueError(f"cannot split {name!r} into a first and a last name")
    return {"args": [first, last], "kwargs": {}}


def first_last_to_person(call: dict[str, Any]) -> dict[str, Any]:
    """Migration 2 -> 3: ``greet(first, last, greeting=...)`` becomes
    ``greet({"first": ..., "last": ...}, greeting=...)``."""
    args, kwargs = list(call["args"]), dict(call["kwargs"])
    first = args.pop(0) if args else kwargs.pop("first")
    last = args.pop(0) if args else kwargs.pop("last", "")
    return {"args": [{"first": first, "last": last}], "kwargs": kwargs}

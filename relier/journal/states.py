"""The journal's vocabulary: task states, DLQ reasons, and how its fields read.

A task's job hash (``rl:{<id>}:job``, see :mod:`relier.journal.keys`) holds
its ``state`` as one of :data:`STATES`; a task in the DLQ carries one of the
:class:`Reason` values. Both are part of the journal's versioned contract:
the Lua scripts write the same strings. Redis replies arrive as bytes;
:func:`text` is the one decoder of a field that may be bytes or a string.

Redis keys: none of its own.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["STATES", "TERMINAL_STATES", "Reason", "text"]

STATES = ("PENDING", "RESERVED", "RUNNING", "RETRYING", "SUCCEEDED", "DEAD", "CANCELLED")
"""Every value of a job hash's ``state`` field, in the order a task moves through them."""

TERMINAL_STATES = frozenset({"SUCCEEDED", "DEAD", "CANCELLED"})
"""States a task never leaves (a DEAD task leaves only by an operator's release)."""


class Reason(StrEnum):
    """Why a task is in the DLQ."""

    MAX_RETRIES = "max_retries"
    """It failed with a retryable error more than ``max_retries`` times."""
    NOT_RETRYABLE = "not_retryable"
    """It raised an exception outside its ``retry_on``."""
    UNKNOWN_TASK = "unknown_task"
    """The worker that received it has no task of that name."""
    INVALID_PAYLOAD = "invalid_payload"
    """Its envelope could not be decoded or its arguments did not fit."""
    BAD_SIGNATURE = "bad_signature"
    """The worker requires signed envelopes (``RELIER_SIGNING_KEY``) and its
    envelope was unsigned or signed with none of the worker's keys."""
    RESULT_NOT_SERIALIZABLE = "result_not_serializable"
    """It returned a value JSON cannot carry."""
    POISON_PILL = "poison_pill"
    """Its own crashes killed the process running it ``max_resurrections`` times."""
    HARD_TIMEOUT = "hard_timeout"
    """Its last attempt was stopped by its ``hard_timeout`` and no retry was left."""
    MIGRATION_FAILED = "migration_failed"
    """A migration of its call from an older ``schema_version`` raised or returned no call."""
    SCHEMA_TOO_NEW = "schema_too_new"
    """It was made for a newer ``schema_version`` than the workers that received it know,
    for longer than ``RELIER_SCHEMA_DEFER_MAX`` seconds."""
    CORRUPT_JOURNAL = "corrupt_journal"
    """Its journal hash could not be read by ``claim.lua`` (a bookkeeping field
    such as ``fence`` or ``attempt`` that is not a number, e.g. edited by hand)."""


def text(value: bytes | str | int | float | None) -> str:
    """A Redis reply or field as a string (``""`` for a missing one)."""
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else str(value)

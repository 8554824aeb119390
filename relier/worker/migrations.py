"""Schema versions of a task's calls: older calls migrated forward, newer ones deferred.

Every envelope records the ``schema_version`` of the code that pushed it
(``sv``). A worker runs a call only as a call of its own code's version:

* **Older**: the task's ``migrations`` carry it forward one version at a
  time (``migrations[k]`` turns a version-*k* call into a version-*k+1* call)
  before the arguments are bound. A step that raises, or returns something
  that is not a call, sends the task to the DLQ with reason
  ``migration_failed``. A task declared without migrations runs older calls
  as they are.
* **Newer**: this worker's code cannot know what the call means, so it is
  deferred (``defer.lua``): put back to PENDING and re-scheduled with
  backoff, for the workers of a rolling deploy that run the newer code,
  without using up a retry. ``RELIER_SCHEMA_DEFER_MAX`` seconds after its
  first deferral (anew after an attempt that ran) it goes to the DLQ with
  reason ``schema_too_new`` instead.

A *call* is the dict ``{"args": [...], "kwargs": {...}}`` of the JSON values
as pushed. Migrations run in the worker on every attempt and are never
written back (the journaled envelope stays as pushed), so they must be pure
functions of the call.

Redis keys: none of its own. ``defer.lua`` writes the task's job hash
(``deferred_since``, ``deferred_fence``, ``defers``, ``due``, ``state``),
its history, ``rl:schedule`` and ``rl:dlq``.
"""

from __future__ import annotations

import dataclasses
import logging
import traceback
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from relier import telemetry
from relier.clock import now_ms
from relier.journal.envelope import Envelope
from relier.journal.states import Reason

if TYPE_CHECKING:
    from relier.hub import Relier
    from relier.registry import TaskSpec

__all__ = ["DEFER_DELAYS_MS", "Failure", "defer", "upgrade"]

log = logging.getLogger("relier.worker")

# A deferred call is looked at again after 1 s, then 2, 4, 8, 16 and 30 s
# apart: soon enough that a deploy's first new worker takes it quickly, rarely
# enough that a long deploy costs one claim per call every 30 s.
DEFER_DELAYS_MS = (1_000, 30_000)

_SHAPE = 'return {"args": [...], "kwargs": {...}}'


@dataclasses.dataclass(frozen=True, slots=True)
class Failure:
    """Why an older call could not be migrated, as its DLQ entry shows it."""

    error: str
    traceback: str


def upgrade(task: TaskSpec, envelope: Envelope) -> Envelope | Failure:
    """``envelope`` as a call of ``task``'s ``schema_version``, migrated step by step.

    An envelope of the task's version, or of any older one when the task has
    no migrations, is returned as it is. Newer envelopes are not for this
    function (see :func:`defer`). Never raises for what a migration does.
    """
    version, target = envelope.schema_version, task.schema_version
    if version >= target or not task.migrations:
        return envelope
    if version < 1:
        return Failure(f"{task.name}: a call of schema_version {version}; versions start at 1", "")
    call: dict[str, Any] = {"args": list(envelope.args), "kwargs": dict(envelope.kwargs)}
    for step in range(version, target):
        where = f"migration {step} -> {step + 1} of {task.name}"
        try:
            out = task.migrations[step](call)
        except Exception as exc:
            tb = "".join(traceback.format_exception(exc))
            return Failure(f"{where} raised {type(exc).__name__}: {exc}", tb)
        problem = _not_a_call(out)
        if problem:
            shown = repr(out)
            shown = shown if len(shown) <= 200 else shown[:197] + "..."
            return Failure(f"{where} returned {shown}: {problem}; {_SHAPE}", "")
        call = {"args": list(out["args"]), "kwargs": dict(out["kwargs"])}
    return dataclasses.replace(
        envelope, args=call["args"], kwargs=call["kwargs"], schema_version=target
    )


def _not_a_call(value: Any) -> str:
    """What makes ``value`` no call (``""`` when it is one)."""
    if not isinstance(value, Mapping):
        return f"a {type(value).__name__}, not a dict"
    if not isinstance(value.get("args"), list | tuple):
        return '"args" is missing or not a list'
    kwargs = value.get("kwargs")
    if not isinstance(kwargs, Mapping):
        return '"kwargs" is missing or not a dict'
    if not all(isinstance(k, str) for k in kwargs):
        return '"kwargs" has a key that is not a string'
    return ""


def defer(
    relier: Relier, task: TaskSpec, task_id: str, owner: str, fence: int, version: int
) -> int:
    """Hand back the attempt under ``fence`` of a call made for schema ``version``,
    newer than ``task``'s: deferred with backoff, or past
    ``RELIER_SCHEMA_DEFER_MAX``, dead-lettered. Returns defer.lua's outcome
    (1 deferred, 2 dead-lettered, 0 refused: the attempt was superseded).
    """
    settings = relier.settings
    known = task.schema_version
    error = (
        f"{task.name} was pushed for schema_version {version}, but the workers that received "
        f"it for {settings.schema_defer_max:g} s (RELIER_SCHEMA_DEFER_MAX) run code that knows "
        f"versions up to {known}: deploy the new code to the workers of its queue"
    )
    outcome, due = relier.scripts.defer(
        task_id,
        fence,
        now_ms(),
        owner,
        DEFER_DELAYS_MS,
        max(1, round(settings.schema_defer_max * 1000)),
        (version, known),
        error,
    )
    name = f"{task.name}[{task_id}]"
    if outcome == 1:
        log.info(
            "relier: %s is for schema_version %d, this worker's code knows up to %d; deferred "
            "for a newer worker (due in %.1f s)",
            name,
            version,
            known,
            max(0, due - now_ms()) / 1000,
        )
    elif outcome == 2:
        log.error("relier: %s moved to the DLQ (schema_too_new): %s", name, error)
        telemetry.dead_lettered(task_id, fence, Reason.SCHEMA_TOO_NEW, error)
    else:
        log.warning(
            "relier: deferral of %s with fence %d refused: a newer attempt owns it", name, fence
        )
    return outcome

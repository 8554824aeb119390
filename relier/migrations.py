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
import inspect
import logging
import traceback
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from . import telemetry
from .clock import now_ms
from .dlq import Reason
from .envelope import Envelope
from .errors import ConfigurationError

if TYPE_CHECKING:
    from .app import Relier
    from .task import RlTask

__all__ = ["DEFER_DELAYS_MS", "Failure", "Migration", "check", "defer", "upgrade"]

log = logging.getLogger("relier.worker")

Migration = Callable[[dict[str, Any]], dict[str, Any]]
"""One step: a version-*k* call in, the same call as a version-*k+1* call out."""

# A deferred call is looked at again after 1 s, then 2, 4, 8, 16 and 30 s
# apart: soon enough that a deploy's first new worker takes it quickly, rarely
# enough that a long deploy costs one claim per call every 30 s.
DEFER_DELAYS_MS = (1_000, 30_000)

_SHAPE = 'return {"args": [...], "kwargs": {...}}'


def check(
    name: str, schema_version: int, migrations: Mapping[int, Migration] | None
) -> dict[int, Migration]:
    """The migrations of a task declared at ``schema_version``, validated.

    No migrations (``None`` or empty) is valid at any version. Otherwise the
    keys must be exactly the ints 1 to ``schema_version - 1``: a missing step
    would leave some older calls unmigratable, found only when one arrives.

    Raises:
        ConfigurationError: a version below 1, keys other than 1 to
            ``schema_version - 1``, or a value that is not a plain function.
    """
    if isinstance(schema_version, bool) or not isinstance(schema_version, int):
        raise ConfigurationError(f"schema_version must be an int >= 1, got {schema_version!r}")
    if schema_version < 1:
        raise ConfigurationError(f"schema_version must be >= 1, got {schema_version}")
    if migrations is None:
        return {}
    if not isinstance(migrations, Mapping):
        raise ConfigurationError(
            f"task {name}: migrations must be a dict {{from_version: function}}, got {migrations!r}"
        )
    if not migrations:
        return {}
    keys = list(migrations)
    expected = set(range(1, schema_version))
    wrong = [k for k in keys if isinstance(k, bool) or not isinstance(k, int)]
    if wrong or set(keys) != expected:
        if schema_version == 1:
            raise ConfigurationError(
                f"task {name}: migrations={{...}} given at schema_version=1, which has no older "
                "version to migrate from; declare the new version (schema_version=2) and key "
                "the migration from version 1 as 1"
            )
        missing = sorted(expected - set(keys))
        unexpected = [k for k in keys if k not in expected or k in wrong]
        raise ConfigurationError(
            f"task {name}: migrations must be keyed by the version each migrates from, "
            f"exactly 1 to {schema_version - 1} for schema_version={schema_version} "
            f"(migrations[k] turns a version-k call into a version-k+1 call); missing "
            f"{missing}, unexpected {unexpected!r}. A step that changes nothing is "
            "`lambda call: call`"
        )
    for key, fn in migrations.items():
        if not callable(fn) or inspect.iscoroutinefunction(fn):
            raise ConfigurationError(
                f"task {name}: migrations[{key}] must be a plain (not async) function of the "
                f"call, got {fn!r}; it runs in the worker before the task"
            )
    return dict(sorted(migrations.items()))


@dataclasses.dataclass(frozen=True, slots=True)
class Failure:
    """Why an older call could not be migrated, as its DLQ entry shows it."""

    error: str
    traceback: str


def upgrade(task: RlTask[Any, Any], envelope: Envelope) -> Envelope | Failure:
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
    relier: Relier, task: RlTask[Any, Any], task_id: str, owner: str, fence: int, version: int
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

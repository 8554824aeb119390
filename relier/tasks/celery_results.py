"""A Celery result backend that reads the journal: ``AsyncResult`` tells the truth.

An ``@rl_task``'s Celery task uses :class:`JournalBackend` as its backend, so
the :class:`~celery.result.AsyncResult` that ``.delay()`` and
``.apply_async()`` return reads the task's journal entry: ``.state``,
``.ready()``, ``.failed()``, ``.traceback`` and ``.get(timeout)`` say what
the journal says, with Celery's state names:

=============================  ============
journal                        Celery
=============================  ============
PENDING, RESERVED, no entry    PENDING
RUNNING                        STARTED
RETRYING                       RETRY
SUCCEEDED                      SUCCESS
DEAD (in the DLQ)              FAILURE (a :class:`~relier.TaskFailedError` naming the reason)
CANCELLED                      REVOKED
=============================  ============

Nothing is stored through it: the journal's Lua scripts write every outcome,
and Relier's Celery tasks ignore Celery's own result (``ignore_result``).

Redis keys: reads ``rl:{<id>}:job`` and waits on ``rl:{<id>}:done``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from celery import states
from celery.backends.base import BaseBackend
from celery.exceptions import TimeoutError as CeleryTimeoutError

from relier.errors import TaskFailedError
from relier.journal.connection import translate_errors
from relier.journal.states import text
from relier.tasks.handle import decode_result, wait_done

if TYPE_CHECKING:
    from relier.hub import Relier

__all__ = ["CELERY_STATES", "JournalBackend"]

CELERY_STATES = {
    "PENDING": states.PENDING,
    "RESERVED": states.PENDING,
    "RUNNING": states.STARTED,
    "RETRYING": states.RETRY,
    "SUCCEEDED": states.SUCCESS,
    "DEAD": states.FAILURE,
    "CANCELLED": states.REVOKED,
}
"""Each journal state as the Celery state ``AsyncResult.state`` reports."""

_FIELDS = ("state", "result", "reason", "error", "tb", "task")


class JournalBackend(BaseBackend):  # type: ignore[misc]
    """Celery's result backend API over Relier's journal (read only).

    Args:
        app: the Celery app.
        relier: returns the :class:`~relier.Relier` whose journal to read
            (looked up per call, so a rebound hub is seen).
    """

    supports_native_join = False
    supports_autoexpire = True

    def __init__(self, app: Any, relier: Callable[[], Relier], **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._relier = relier

    def __repr__(self) -> str:
        return "<JournalBackend>"

    def _read(self, task_id: str) -> list[Any]:
        r = self._relier()
        with translate_errors(r.settings.redis_url):
            return list(r.redis.hmget(r.keys.task(task_id).job, _FIELDS))

    def _meta(self, task_id: str, row: list[Any]) -> dict[str, Any]:
        state = text(row[0]) or "PENDING"
        status = CELERY_STATES.get(state, states.PENDING)
        result: Any = None
        traceback: str | None = None
        if status == states.SUCCESS:
            result = decode_result(text(row[5]), row[1])
        elif status in (states.FAILURE, states.REVOKED):
            reason = text(row[2]) or state.lower()
            result = TaskFailedError(task_id, reason, text(row[3]))
            traceback = text(row[4]) or None
        return {
            "task_id": task_id,
            "status": status,
            "result": result,
            "traceback": traceback,
            "children": None,
        }

    def _get_task_meta_for(self, task_id: str) -> dict[str, Any]:
        return self._meta(task_id, self._read(task_id))

    def get_task_meta(self, task_id: str, cache: bool = True) -> dict[str, Any]:
        # Read every time: a journal entry can leave SUCCEEDED only by expiring,
        # and Celery's cache would outlive that.
        return self._get_task_meta_for(task_id)

    def wait_for(
        self,
        task_id: str,
        timeout: float | None = None,
        interval: float = 0.5,
        no_ack: bool = True,
        on_interval: Callable[[], Any] | None = None,
    ) -> dict[str, Any]:
        """Block until the task is ready (SUCCESS, FAILURE or REVOKED); its meta.

        It waits on the journal's "done" list, so it returns as soon as the
        task ends (``interval`` is not used). A task with no journal entry
        is PENDING, as Celery reports an unknown id: it waits for it.

        Raises:
            celery.exceptions.TimeoutError: not ready after ``timeout`` s.
        """
        r = self._relier()
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            meta = self._get_task_meta_for(task_id)
            if meta["status"] in states.READY_STATES:
                return meta
            if on_interval is not None:
                on_interval()
            with translate_errors(r.settings.redis_url):
                if not wait_done(r, task_id, deadline):
                    raise CeleryTimeoutError("The operation timed out.")

    def _store_result(self, task_id: str, result: Any, state: str, *a: Any, **kw: Any) -> Any:
        # The journal's scripts record every outcome; Celery's copy would be a
        # second truth that could disagree with it.
        return result

    def _forget(self, task_id: str) -> None:
        # Results leave the journal after RELIER_RESULT_TTL; a forget keeps them.
        return None

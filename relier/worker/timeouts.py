"""Soft and hard timeouts: a watchdog thread per attempt.

Invariant: an attempt's outcome is recorded exactly once, either by the
thread that ran it (it ended in time, or ended once cancelled) or by the
watchdog (it is stuck past its hard timeout): a lock and a state flag make
"attempt ended" and "timed out" mutually exclusive. The watchdog's record
goes through the fenced ``fail.lua``, so a stuck attempt that ends later can
no longer commit. It owns no Redis key; the executor's callbacks write the
``soft_timeout`` event (``soft_timeout.lua``) and the failure.

Deadlines count from the start of the attempt. At the soft deadline the
soft callback runs on a thread of its own, so a slow hook never delays the
hard stop. At the hard deadline an async attempt is cancelled first; if it
is still running ``CANCEL_GRACE_S`` later (it swallowed ``CancelledError``
or blocks the loop), or at once for a sync attempt, the watchdog takes over:
it records the failure and :func:`replace_process` ends the pool process.
"""

from __future__ import annotations

import enum
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from types import CodeType, FrameType
from typing import Any

from relier import telemetry
from relier.worker.loop import format_frames

__all__ = [
    "CANCEL_GRACE_S",
    "EXIT_CODE",
    "Verdict",
    "Watchdog",
    "in_pool_child",
    "note_pool_child",
    "replace_process",
    "thread_stack",
]

log = logging.getLogger("relier.worker")

# How long a cancelled coroutine may take to unwind (its finally blocks,
# its own cleanup) before its process is replaced.
CANCEL_GRACE_S = 1.0
# EX_SOFTWARE: what Celery's log shows for the replaced pool process.
EXIT_CODE = 70
_MAX_FRAMES = 30

_pool_child = False


def note_pool_child(**_: Any) -> None:
    """Receiver of Celery's ``worker_process_init``, which only a prefork pool
    process gets as it starts (connected by :mod:`relier.worker.bootstep`)."""
    global _pool_child
    _pool_child = True


def in_pool_child() -> bool:
    """Whether this is a prefork pool process, which Celery replaces when it exits."""
    return _pool_child


class Verdict(enum.Enum):
    """How an attempt with deadlines ended, as :meth:`Watchdog.finish` sees it."""

    IN_TIME = "in_time"
    """It ended before its hard deadline: record its outcome as usual."""
    CANCELLED = "cancelled"
    """It ended after the hard deadline cancelled it: record a hard timeout."""
    ABANDONED = "abandoned"
    """The watchdog recorded the hard timeout itself: record nothing."""


_RUNNING, _CANCELLING, _ENDED, _ABANDONED = "running", "cancelling", "ended", "abandoned"


class Watchdog:
    """The deadlines of one attempt, watched from a daemon thread of their own.

    Args:
        name: what log lines call the attempt, e.g. ``"app.report[<id>]"``.
        soft: seconds to the soft deadline, or ``None``.
        hard: seconds to the hard deadline, or ``None``.
        on_soft: called once at the soft deadline, on a thread of its own;
            its exceptions are logged.
        on_hard: called once when the watchdog takes over a stuck attempt;
            its exceptions are logged.
        grace: how long a cancelled attempt may take to end.
    """

    def __init__(
        self,
        name: str,
        soft: float | None,
        hard: float | None,
        on_soft: Callable[[], None],
        on_hard: Callable[[], None],
        grace: float = CANCEL_GRACE_S,
    ) -> None:
        self.name = name
        self.soft = soft
        self.hard = hard
        self._on_soft = on_soft
        self._on_hard = on_hard
        self._grace = grace
        self._cancel: Callable[[], None] | None = None
        self._lock = threading.Lock()
        self._state = _RUNNING
        self._ended = threading.Event()
        self._started = 0.0
        self._thread = threading.Thread(target=self._watch, name="relier-watchdog", daemon=True)

    def start(self, cancel: Callable[[], None] | None = None) -> None:
        """Start the clock; ``cancel`` (async attempts) asks the attempt to stop."""
        self._cancel = cancel
        self._started = time.monotonic()
        self._thread.start()

    def finish(self) -> Verdict:
        """The attempt ended (returned or raised): whose outcome it is to record."""
        with self._lock:
            state = self._state
            if state != _ABANDONED:
                self._state = _ENDED
        self._ended.set()
        if state == _ABANDONED:
            return Verdict.ABANDONED
        return Verdict.CANCELLED if state == _CANCELLING else Verdict.IN_TIME

    def join(self) -> None:
        """Wait until the watchdog has done its work (in a pool process that
        has timed out, this never returns: the process is being replaced)."""
        self._thread.join()

    def _wait_until(self, deadline: float) -> bool:
        """Sleep until ``deadline`` (seconds after the start); True if the attempt ended."""
        return self._ended.wait(max(0.0, self._started + deadline - time.monotonic()))

    def _watch(self) -> None:
        if self.soft is not None:
            if self._wait_until(self.soft):
                return
            threading.Thread(
                target=self._guarded, args=(self._on_soft, "soft timeout"),
                name="relier-soft-timeout", daemon=True,
            ).start()  # fmt: skip
        if self.hard is None or self._wait_until(self.hard):
            return
        with self._lock:
            if self._state != _RUNNING:
                return
            self._state = _CANCELLING if self._cancel is not None else _ABANDONED
        if self._cancel is not None:
            log.warning(
                "relier: %s passed its hard_timeout of %g s; cancelling it", self.name, self.hard
            )
            self._guarded(self._cancel, "cancellation")
            if self._ended.wait(self._grace):
                return
            with self._lock:
                if self._state != _CANCELLING:
                    return
                self._state = _ABANDONED
        self._guarded(self._on_hard, "hard timeout")

    def _guarded(self, fn: Callable[[], None], what: str) -> None:
        try:
            fn()
        except Exception:
            # Extension points never crash a worker: a failing hook is a log line.
            log.exception("relier: the %s of %s failed", what, self.name)


def thread_stack(ident: int, below: CodeType) -> str:
    """Where thread ``ident`` is, from the frame that ``below`` called down.

    Only the task's own frames: formatting reads their source files, which
    is slow while a stuck task competes for the GIL (tenths of a second for
    a worker's whole stack, all of it added to the hard timeout).
    """
    frames: list[FrameType] = []
    frame = sys._current_frames().get(ident)
    while frame is not None and frame.f_code is not below and len(frames) < _MAX_FRAMES:
        frames.insert(0, frame)
        frame = frame.f_back
    return format_frames(frames)


def replace_process(name: str) -> None:
    """End this pool process, which runs ``name`` stuck past its hard timeout.

    Only a prefork pool process is ended: Celery replaces it. Anywhere else
    (the worker's own process with the solo or threads pool, a test calling
    the executor) ending the process would take the worker down, so the
    stuck code is left to run as a zombie whose commit the fence refuses.
    """
    if not in_pool_child():
        log.error(
            "relier: %s is stuck past its hard_timeout but is not running in a prefork pool "
            "process, which could be replaced; it keeps running as a zombie (its commit will "
            "be refused). Use the prefork pool to have stuck tasks stopped.",
            name,
        )
        return
    log.error(
        "relier: replacing pool process %d: %s is stuck past its hard_timeout", os.getpid(), name
    )
    for handler in logging.getLogger().handlers + log.handlers:
        handler.flush()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    telemetry.flush_before_exit()
    os._exit(EXIT_CODE)

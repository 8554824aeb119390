"""Graceful shutdown: nothing a SIGTERMed worker holds is lost or waits.

On SIGTERM (Celery's warm shutdown) the worker stops taking work and
Relier, in the main process:

1. marks the worker as draining (``rl:draining:<wid>``): its pool processes
   refuse to claim anything more (``claim.lua`` drops the delivery);
2. hands every task it reserved but has not started back to its queue at
   once (``resurrect.lua``, kind ``handoff_reserved``), so another worker
   starts it within milliseconds instead of after a lease timeout;
3. lets running tasks finish for up to ``RELIER_SHUTDOWN_GRACE`` seconds;
4. hands back whatever still runs (kind ``handoff``; the running attempt can
   no longer commit, its state is no longer RUNNING) and escalates to
   Celery's cold shutdown, which stops the pool processes.

A cold shutdown (SIGQUIT, a second SIGINT) skips step 3. Whatever is still
owned when the worker exits is handed back by the final cleanup, and if the
worker is killed before any of this runs, its lease expires and the
resurrector takes the work back.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from typing import TYPE_CHECKING, Any

from relier.worker.resurrector import take_back

if TYPE_CHECKING:
    from relier.hub import Relier

__all__ = ["Drain"]

log = logging.getLogger("relier.worker")


class Drain:
    """The shutdown sequence of one worker incarnation."""

    def __init__(self, relier: Relier, worker_id: str) -> None:
        self.relier = relier
        self.worker_id = worker_id
        self.started: float | None = None
        self.cold = False
        self.escalated = False
        self._lock = threading.Lock()

    @property
    def active(self) -> bool:
        return self.started is not None

    def begin(self, cold: bool) -> None:
        """Start draining (idempotent; a later cold request hands back running work too)."""
        with self._lock:
            first = self.started is None
            if first:
                self.started = time.monotonic()
            self.cold = self.cold or cold
        if first:
            grace = self.relier.settings.shutdown_grace
            self.relier.redis.set(
                self.relier.keys.draining(self.worker_id), b"1", ex=int(grace) + 300
            )
            requeued, _ = take_back(self.relier, self.worker_id, "handoff_reserved")
            log.warning(
                "relier: shutting down: handed back %d reserved tasks; running tasks get %g s",
                requeued, grace,
            )  # fmt: skip
        if cold:
            self.hand_back_running("cold shutdown")

    def running(self) -> int:
        """How many tasks this worker still owns."""
        return int(self.relier.redis.scard(self.relier.keys.owned(self.worker_id)))

    def hand_back_running(self, why: str) -> int:
        requeued, _ = take_back(self.relier, self.worker_id, "handoff")
        if requeued:
            log.warning("relier: %s: handed back %d running tasks", why, requeued)
        return requeued

    def poll(self) -> None:
        """Called by the worker thread while draining: enforce the grace period."""
        if self.started is None or self.escalated:
            return
        if time.monotonic() - self.started < self.relier.settings.shutdown_grace:
            return
        self.escalated = True
        if self.running():
            self.hand_back_running("grace period over")
        # Celery's cold shutdown stops the pool processes still running the
        # handed-back attempts (their commits would be refused anyway).
        os.kill(os.getpid(), signal.SIGQUIT)


_signalled = False


def watch_shutdown_signals() -> None:
    """Note any shutdown signal before Celery's own handler acts on it.

    Celery's cold shutdown kills the pool processes before it announces the
    shutdown (worker_shutting_down); without this flag the pool watcher
    would take those deaths for crashes.
    """
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
        previous = signal.getsignal(sig)
        if getattr(previous, "_relier", False) or not callable(previous):
            continue

        def noting(signum: int, frame: Any, _previous: Any = previous) -> Any:
            global _signalled
            _signalled = True
            return _previous(signum, frame)

        noting._relier = True  # type: ignore[attr-defined]
        try:
            signal.signal(sig, noting)
        except ValueError:  # not the main thread (an embedded worker): skip
            return


def signalled() -> bool:
    """Whether this process has received a shutdown signal (SIGTERM, SIGINT, SIGQUIT)."""
    return _signalled

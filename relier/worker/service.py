"""The main-process thread of a worker: lease, resurrector, pool watcher, shutdown drain.

The main process, never a pool process, renews the lease: a pool process
busy in a C extension holding the GIL cannot run a thread, and a stalled
lease would be taken for a dead worker. :class:`WorkerService` is started by
the bootstep (:mod:`relier.worker.bootstep`) and runs until the worker exits.

Redis keys: those of what it drives (``rl:worker:<wid>``, ``rl:workers``,
``rl:leader``, ``rl:owned:<wid>``, ``rl:draining:<wid>``).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from relier.worker.children import ChildWatcher
from relier.worker.kombu.guards import on_unacked_stranded
from relier.worker.leases import Lease
from relier.worker.resurrector import Resurrector, take_back
from relier.worker.shutdown import Drain, signalled

if TYPE_CHECKING:
    from relier.hub import Relier

__all__ = ["WorkerService"]

log = logging.getLogger("relier.worker")
_CHILD_POLL_S = 0.05
# How often the thread looks at the pool itself when the event loop already
# does every _CHILD_POLL_S (a backstop for a loop stalled by a long call).
_CHILD_BACKSTOP_S = 1.0
_FAILURE_PAUSE_S = 0.2


class WorkerService:
    """The main-process thread: lease, resurrector, shutdown drain."""

    def __init__(
        self, relier: Relier, worker_id: str, node: str, pids: Any = None, worker: Any = None
    ) -> None:
        self.relier = relier
        self.worker_id = worker_id
        self.lease = Lease(relier, worker_id, node)
        self.worker = worker
        self._lent = 0
        self.children = ChildWatcher(
            relier, worker_id, pids or (lambda: []), self.stopping, self._lend_prefetch
        )
        self.resurrector = Resurrector(relier, worker_id)
        self.drain = Drain(relier, worker_id)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="relier-worker", daemon=True)
        self._failing = False
        self._pending_cold: bool | None = None
        self._reserved_stranded = False
        self._child_every = _CHILD_POLL_S

    def stopping(self) -> bool:
        """Whether this worker is shutting down (by any signal or path)."""
        from celery.worker import state

        return bool(signalled() or self.drain.active or state.should_stop or state.should_terminate)

    def _qos(self) -> Any:
        return getattr(getattr(self.worker, "consumer", None), "qos", None)

    def _lend_prefetch(self, n: int) -> None:
        # Celery keeps counting a dead pool process's message against the
        # prefetch limit until its pool maintenance reaps the process (up to
        # 5 s); meanwhile this worker could not take the re-queued task even
        # with a process free. Lend the consumer a slot per re-queued task;
        # it is paid back when Celery reports the WorkerLostError.
        qos = self._qos()
        if qos is None:
            return
        self._lent += n
        hub = getattr(self.worker, "hub", None)
        if hub is None:
            qos.increment_eventually(n)
            return
        # call_soon from another thread wakes the event loop, which applies
        # the new prefetch at once instead of at its next poll timeout; and
        # asks the pool to replace the dead process now (Celery otherwise
        # does it on its next maintenance tick, up to 5 s later, and the
        # re-queued task waits for a free process meanwhile).
        hub.call_soon(qos.increment_eventually, n)
        maintain = getattr(getattr(getattr(self.worker, "pool", None), "_pool", None),
                           "maintain_pool", None)  # fmt: skip
        if maintain is not None:
            hub.call_soon(maintain)

    def repay_prefetch(self) -> None:
        """Celery reported a lost pool process's task: return one lent slot."""
        qos = self._qos()
        if self._lent and qos is not None:
            qos.decrement_eventually()
            self._lent -= 1

    def start(self) -> None:
        self.lease.register()
        on_unacked_stranded(self.reserved_stranded)
        self._watch_children_from_loop()
        self._thread.start()

    def _watch_children_from_loop(self) -> None:
        """Look for dead pool processes from the event loop's timer, not the thread.

        A thread waking every 50 ms to read ``/proc`` takes the GIL a dozen
        times a second per process from the event loop, which is the worker's
        serial resource: each hand-over is a futex round and, on a busy
        machine, a wait for the other thread to be scheduled (about 1,200
        futex calls a second in a no-op throughput run). The loop's own timer
        reads the same files between two events instead, and wakes the thread
        only when a process died (taking the tasks back needs Redis).
        """
        hub = getattr(self.worker, "hub", None)
        if hub is None:
            return  # no event loop (a custom consumer): the thread polls every 50 ms

        def scan() -> None:
            try:
                if self.children.scan():
                    self._wake.set()
            except Exception as exc:  # never let the check break the event loop
                log.warning("relier: pool check failed: %s", exc)

        hub.call_repeatedly(_CHILD_POLL_S, scan)
        self._child_every = _CHILD_BACKSTOP_S

    def reserved_stranded(self) -> None:
        """kombu lost this worker's prefetched messages (see :mod:`relier.worker.kombu.guards`):
        hand its RESERVED tasks back as soon as Redis answers (called from the event loop)."""
        self._reserved_stranded = True
        self._wake.set()

    def hand_back_reserved(self) -> int:
        """Publish this worker's RESERVED tasks again (RUNNING ones stay); how many.

        Raises while Redis is still down, leaving the hand-back due for the next try.
        """
        self._reserved_stranded = False
        try:
            requeued, _ = take_back(self.relier, self.worker_id, "handoff_reserved")
        except BaseException:
            self._reserved_stranded = True
            raise
        if requeued:
            log.warning(
                "relier: the broker connection dropped this worker's prefetched messages; "
                "handed back %d reserved tasks", requeued,
            )  # fmt: skip
        return requeued

    def resurrector_leads(self) -> bool:
        """Whether this worker holds the resurrector lock (it reports the cluster gauges)."""
        return self.resurrector.is_leader

    def begin_drain(self, cold: bool) -> None:
        """Called from Celery's shutdown signal handler: let the thread act now."""
        self._pending_cold = cold
        self._wake.set()

    def finish(self) -> None:
        """The worker is exiting: hand back anything still owned, drop the lease."""
        on_unacked_stranded(None)
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        try:
            requeued, _ = take_back(self.relier, self.worker_id, "handoff")
            if requeued:
                log.warning("relier: handed back %d tasks at exit", requeued)
            self.lease.release()
        except Exception as exc:  # the lease expires anyway; the resurrector finishes
            log.warning("relier: cleanup at exit failed (%s); the resurrector will finish", exc)

    def _run(self) -> None:
        s = self.relier.settings
        next_lease = next_scan = next_child = 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            try:
                if self._wake.is_set():
                    self._wake.clear()
                    cold = self._pending_cold
                    if cold is not None:
                        self._pending_cold = None
                        self.drain.begin(cold)
                if self._reserved_stranded:
                    self.hand_back_reserved()
                if now >= next_child or self.children.has_dead():
                    self.children.poll()
                    next_child = now + self._child_every
                if now >= next_lease:
                    self.lease.renew()
                    next_lease = now + s.lease_renew_ms / 1000
                if now >= next_scan:
                    self.resurrector.tick()
                    next_scan = now + s.scan_interval_ms / 1000
                if self.drain.active:
                    self.drain.poll()
                if self._failing:
                    log.warning("relier: Redis is reachable again")
                    self._failing = False
            except Exception as exc:
                # Never let the thread die: Redis restarts and failovers are
                # expected; the next tick tries again, after a pause.
                self.resurrector.saw_failure()
                if not self._failing:
                    log.warning("relier: worker background work failed: %s", exc)
                    self._failing = True
            wait = min(next_lease, next_scan, next_child) - time.monotonic()
            if self._failing:
                wait = max(wait, _FAILURE_PAUSE_S)
            if self.drain.active:
                wait = min(wait, 0.05)
            self._wake.wait(max(wait, 0.0))

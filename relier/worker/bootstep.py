"""Relier inside a Celery worker's main process.

:func:`install` adds a bootstep to a Celery app. In each worker it:

* runs preflight before the pool starts, so a worker on an unsafe Redis
  refuses to start;
* gives the worker an incarnation id before the pool forks, so pool
  processes claim tasks in its name;
* starts one thread in the *main* process that renews the lease, runs the
  resurrector (behind its leader lock) and watches the shutdown drain. The
  main process, never a pool process, renews: a pool process busy in a C
  extension holding the GIL cannot run a thread, and a stalled lease would
  be taken for a dead worker;
* reserves each received task in the journal (``reserve.lua``), so a task
  prefetched but not started is owned and comes back if the worker dies:
  inside kombu's own delivery transaction (:mod:`relier.worker.kombu.reservation`),
  else from ``task_received``;
* re-queues a task at once when the pool process running it dies (the fast
  path, :mod:`relier.worker.children`);
* turns "unknown task" rejections into DLQ entries;
* marks each prefork pool process as one, the only kind of process a task
  stuck past its hard timeout may end (:mod:`relier.worker.timeouts`).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from typing import TYPE_CHECKING, Any, ClassVar

from celery import bootsteps
from celery.signals import (
    task_failure,
    task_received,
    task_unknown,
    worker_before_create_process,
    worker_process_init,
    worker_ready,
    worker_shutdown,
    worker_shutting_down,
)

from relier import telemetry
from relier.clock import now_ms
from relier.journal.preflight import require
from relier.journal.states import Reason
from relier.registry import is_registered
from relier.worker.children import ChildWatcher, pool_pids, process_alive
from relier.worker.identity import set_worker_id, worker_id
from relier.worker.kombu import reservation as _reservation
from relier.worker.kombu.guards import install_kombu_guard, on_unacked_stranded
from relier.worker.leases import Lease, new_worker_id
from relier.worker.resurrector import Resurrector, take_back
from relier.worker.shutdown import Drain
from relier.worker.timeouts import note_pool_child

if TYPE_CHECKING:
    from relier.hub import Relier

__all__ = ["READY_LINE", "RelierStep", "WorkerService", "connect_signals"]

log = logging.getLogger("relier.worker")
READY_LINE = "Relier worker ready"
_CHILD_POLL_S = 0.05
# How often the thread looks at the pool itself when the event loop already
# does every _CHILD_POLL_S (a backstop for a loop stalled by a long call).
_CHILD_BACKSTOP_S = 1.0
_FAILURE_PAUSE_S = 0.2

_service: WorkerService | None = None


def _relier_of(app: Any) -> Relier:
    from relier.hub import current

    found: Relier | None = getattr(app, "_relier", None)
    return found or current()


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

        return bool(_signalled or self.drain.active or state.should_stop or state.should_terminate)

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


class RelierStep(bootsteps.StartStopStep):  # type: ignore[misc]
    """Celery worker bootstep: preflight and identity, then the :class:`WorkerService`."""

    label = "Relier"
    requires: ClassVar[set[str]] = {"celery.worker.components:Pool"}

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        super().__init__(worker, **kwargs)
        connect_signals()
        install_kombu_guard()
        self.relier = _relier_of(worker.app)
        if self.relier.settings.preflight:
            require(self.relier.redis, self.relier.settings.redis_url)
        else:
            log.warning("relier: RELIER_PREFLIGHT is off; Redis durability is not checked")
        telemetry.worker_preparing(self.relier.settings.prometheus_port)
        set_worker_id(new_worker_id(worker.hostname))
        _reservation.activate(self.relier, self.worker_id)

    def start(self, worker: Any) -> None:
        global _service
        _service = WorkerService(
            self.relier, self.worker_id, worker.hostname, pool_pids(worker.pool), worker
        )
        _service.start()
        telemetry.worker_started(self.relier, self.worker_id, _service.resurrector_leads)

    @property
    def worker_id(self) -> str:
        found = worker_id()
        assert found is not None, "set in __init__"
        return found

    def stop(self, worker: Any) -> None:
        # Celery stops bootsteps before it waits for the pool to finish:
        # the lease must outlive the running tasks, so the service keeps
        # going until worker_shutdown.
        pass


def _ours(app: Any) -> Relier | None:
    return getattr(app, "_relier", None) if app is not None else None


def _on_received(sender: Any = None, request: Any = None, **_: Any) -> None:
    relier = _ours(getattr(sender, "app", None))
    me = worker_id()
    if relier is None or me is None or request is None:
        return
    if not is_registered(request.name) or _reservation.reserved_on_delivery(request.id):
        return
    try:
        relier.scripts.reserve(request.id, me, now_ms())
    except Exception as exc:
        # Unreserved is still safe: the claim takes ownership when it starts.
        log.warning("relier: could not reserve %s[%s]: %s", request.name, request.id, exc)


def _on_unknown(sender: Any = None, name: str = "", id: str = "", **_: Any) -> None:
    relier = _ours(getattr(sender, "app", None))
    if relier is None or not id:
        return
    try:
        moved = relier.scripts.dead_letter(
            id, now_ms(), Reason.UNKNOWN_TASK,
            f"no task named {name!r} is registered on worker {getattr(sender, 'hostname', '?')}",
            owner=worker_id() or "",
        )  # fmt: skip
    except Exception as exc:
        log.error("relier: could not dead-letter unknown task %s[%s]: %s", name, id, exc)
        return
    if moved:
        log.error("relier: %s[%s] moved to the DLQ (unknown_task)", name, id)
        telemetry.unknown_task_dead_lettered(_.get("message"))


def _on_before_create_process(**_: Any) -> None:
    # Celery replaces a dead pool process from here, after a full gc.collect()
    # that stalls the watcher thread: look at the pool first.
    if _service is not None:
        try:
            _service.children.poll()
        except Exception as exc:
            log.warning("relier: pool check failed: %s", exc)


def _on_ready(sender: Any = None, **_: Any) -> None:
    if _ours(getattr(sender, "app", None)) is not None:
        _watch_shutdown_signals()
        log.info("%s: %s (%s)", READY_LINE, getattr(sender, "hostname", "?"), worker_id())


_signalled = False


def _watch_shutdown_signals() -> None:
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


def _on_failure(sender: Any = None, task_id: str = "", exception: Any = None, **_: Any) -> None:
    from billiard.exceptions import WorkerLostError

    if not isinstance(exception, WorkerLostError) or _service is None:
        return
    _service.repay_prefetch()
    # The backstop of the pool watcher: a process that started and died
    # between two of its polls (a poison pill in a fresh replacement process
    # dies within milliseconds) was never seen. Celery's report names the
    # task; act only if the journal says it still runs in a dead process of
    # this worker, so a re-run in a live process is never touched (and
    # resurrect.lua checks the pid again, atomically).
    relier = _service.relier
    try:
        state, owner, pid = relier.redis.hmget(
            relier.keys.task(task_id).job, ["state", "owner", "pid"]
        )
        if state != b"RUNNING" or owner != (worker_id() or "").encode() or not pid:
            return
        dead_pid = int(pid)
        if process_alive(dead_pid):
            return
        kind = "handoff" if _service.stopping() else "child"
        requeued, dead = take_back(relier, _service.worker_id, kind, pid=dead_pid)
    except Exception as exc:
        log.error("relier: could not check lost task %s: %s", task_id, exc)
        return
    if requeued or dead:
        log.warning(
            "relier: pool process %d died running %s (reported by Celery); re-queued %d, "
            "%d poison pill(s) to the DLQ", dead_pid, task_id, requeued, dead,
        )  # fmt: skip


def _on_shutting_down(how: str = "Warm", **_: Any) -> None:
    if _service is not None:
        _service.begin_drain(cold=how != "Warm")


def _on_shutdown(**_: Any) -> None:
    global _service
    _reservation.deactivate()
    if _service is not None:
        _service.finish()
        _service = None


_connected = threading.Lock()
_connections: list[Any] = []


def connect_signals() -> None:
    """Connect Relier's Celery signal handlers, once per process.

    Called from the bootstep, inside a worker: importing Relier (a web process
    that only pushes) connects nothing.
    """
    with _connected:
        if _connections:
            return
        task_received.connect(_on_received, weak=False)
        task_unknown.connect(_on_unknown, weak=False)
        worker_ready.connect(_on_ready, weak=False)
        task_failure.connect(_on_failure, weak=False)
        worker_before_create_process.connect(_on_before_create_process, weak=False)
        worker_shutting_down.connect(_on_shutting_down, weak=False)
        worker_shutdown.connect(_on_shutdown, weak=False)
        # Only a prefork pool process may be replaced when a task in it is stuck past
        # its hard timeout; this tells the executor that it runs in one.
        worker_process_init.connect(note_pool_child, weak=False)
        _connections.append(True)

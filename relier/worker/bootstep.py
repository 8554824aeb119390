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
import threading
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
from relier.hub import current
from relier.journal.preflight import require
from relier.journal.states import Reason
from relier.registry import is_registered
from relier.worker.children import pool_pids, process_alive
from relier.worker.identity import set_worker_id, worker_id
from relier.worker.kombu import reservation as _reservation
from relier.worker.kombu.guards import install_kombu_guard
from relier.worker.leases import new_worker_id
from relier.worker.resurrector import take_back
from relier.worker.service import WorkerService
from relier.worker.shutdown import watch_shutdown_signals
from relier.worker.timeouts import note_pool_child

if TYPE_CHECKING:
    from relier.hub import Relier

__all__ = ["READY_LINE", "RelierStep", "connect_signals"]

log = logging.getLogger("relier.worker")
READY_LINE = "Relier worker ready"

_service: WorkerService | None = None


def _relier_of(app: Any) -> Relier:
    found: Relier | None = getattr(app, "_relier", None)
    return found or current()


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
        watch_shutdown_signals()
        log.info("%s: %s (%s)", READY_LINE, getattr(sender, "hostname", "?"), worker_id())


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

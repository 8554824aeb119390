"""Relier inside a Celery worker's main process.

:func:`install` adds a bootstep to a Celery app. In each worker it runs
preflight before the pool starts (so a worker on an unsafe Redis refuses to
start), then one background thread in the main process that renews the
worker's lease and publishes due retries; it also turns Celery's "unknown
task" rejections into DLQ entries. The main process, never a pool child,
does this: a pool child busy in a C extension holding the GIL cannot run a
thread, and a stalled lease would be taken for a dead worker.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from typing import TYPE_CHECKING, Any, ClassVar

from celery import bootsteps
from celery.signals import task_unknown, worker_ready

from .clock import now_ms
from .dlq import Reason
from .preflight import require
from .scheduler import promote_due

if TYPE_CHECKING:
    from celery import Celery

    from .app import Relier

__all__ = ["READY_LINE", "WorkerService", "install"]

log = logging.getLogger("relier.worker")
READY_LINE = "Relier worker ready"


def _relier_of(app: Any) -> Relier:
    from .app import current

    found: Relier | None = getattr(app, "_relier", None)
    return found or current()


class WorkerService:
    """The main-process thread: lease renewal and due-task promotion."""

    def __init__(self, relier: Relier, node: str) -> None:
        self.relier = relier
        self.node = node
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="relier-worker", daemon=True)
        self._failing = False

    def start(self) -> None:
        self._renew_lease()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        try:
            self.relier.redis.delete(self.relier.keys.worker(self.node))
        except Exception as exc:  # shutdown must go on even with Redis down
            log.warning("relier: could not drop the lease of %s: %s", self.node, exc)

    def _renew_lease(self) -> None:
        s = self.relier.settings
        value = json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "renewed": now_ms()})
        self.relier.redis.set(self.relier.keys.worker(self.node), value, px=s.lease_ttl_ms)

    def _run(self) -> None:
        s = self.relier.settings
        next_lease = next_scan = 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            try:
                if now >= next_lease:
                    self._renew_lease()
                    next_lease = now + s.lease_renew_ms / 1000
                if now >= next_scan:
                    while promote_due(self.relier) == 500:
                        pass
                    next_scan = now + s.scan_interval_ms / 1000
                if self._failing:
                    log.warning("relier: Redis is reachable again")
                    self._failing = False
            except Exception as exc:
                # Never let the thread die: Redis restarts and failovers are
                # expected; the next tick tries again.
                if not self._failing:
                    log.warning("relier: worker background work failed: %s", exc)
                    self._failing = True
            self._stop.wait(min(next_lease, next_scan) - time.monotonic())


class RelierStep(bootsteps.StartStopStep):  # type: ignore[misc]
    """Celery worker bootstep: preflight, then the :class:`WorkerService`."""

    label = "Relier"
    requires: ClassVar[set[str]] = {"celery.worker.components:Pool"}

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        super().__init__(worker, **kwargs)
        self.relier = _relier_of(worker.app)
        self.service: WorkerService | None = None
        if self.relier.settings.preflight:
            require(self.relier.redis, self.relier.settings.redis_url)
        else:
            log.warning("relier: RELIER_PREFLIGHT is off; Redis durability is not checked")

    def start(self, worker: Any) -> None:
        self.service = WorkerService(self.relier, worker.hostname)
        self.service.start()

    def stop(self, worker: Any) -> None:
        if self.service is not None:
            self.service.stop()
            self.service = None

    shutdown = stop


def _on_unknown(sender: Any = None, name: str = "", id: str = "", **_: Any) -> None:
    app = getattr(sender, "app", None)
    if app is None or not getattr(app, "_relier", None) or not id:
        return
    relier = _relier_of(app)
    try:
        moved = relier.scripts.dead_letter(
            id,
            now_ms(),
            Reason.UNKNOWN_TASK,
            f"no task named {name!r} is registered on worker {getattr(sender, 'hostname', '?')}",
        )
    except Exception as exc:
        log.error("relier: could not dead-letter unknown task %s[%s]: %s", name, id, exc)
        return
    if moved:
        log.error("relier: %s[%s] moved to the DLQ (unknown_task)", name, id)


def _on_ready(sender: Any = None, **_: Any) -> None:
    app = getattr(sender, "app", None)
    if app is not None and getattr(app, "_relier", None):
        log.info("%s: %s", READY_LINE, getattr(sender, "hostname", "?"))


task_unknown.connect(_on_unknown, weak=False)
worker_ready.connect(_on_ready, weak=False)


def install(app: Celery, relier: Relier) -> None:
    """Attach ``relier`` to ``app`` and add the worker bootstep (once per app)."""
    app._relier = relier
    if not getattr(app, "_relier_step", False):
        app.steps["worker"].add(RelierStep)
        app._relier_step = True

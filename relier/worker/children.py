"""The fast path: a pool process died, so its task goes back at once.

The worker's main process watches its pool processes (every 50 ms, by
reading ``/proc``: no ``waitpid``, so Celery's own reaping is undisturbed;
from the event loop's own timer where there is one, see
:class:`relier.worker.WorkerService`) and, when one dies (OOM kill,
SIGKILL, segfault, ``os._exit``), runs ``resurrect.lua`` with kind ``child``
on the tasks the journal says were running *in that process* (matched by
pid, atomically). That names exactly one culprit, so it counts toward
``max_resurrections``.

Celery reports the same death as ``WorkerLostError`` only on its pool
maintenance (up to 5 s later), so Relier also asks the event loop to run
that maintenance at once (the dead process is replaced without delay). The
report is a backstop for a process that started and died between two polls
(a poison pill in a fresh replacement process): Relier acts on it only if
the journal says the task still runs in a dead process, since by then it
may be running again in a new one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from relier.worker.resurrector import take_back

if TYPE_CHECKING:
    from relier.hub import Relier

__all__ = ["ChildWatcher", "pool_pids", "process_alive"]

log = logging.getLogger("relier.worker")


def process_alive(pid: int) -> bool:
    """False once ``pid`` has exited, including as an unreaped zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except FileNotFoundError:
        return False
    except OSError:
        return True
    # The state letter follows the parenthesised command name, which may
    # itself contain spaces and parentheses.
    return stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3] not in (b"Z", b"X")


def pool_pids(pool: Any) -> Callable[[], list[int]]:
    """A function listing the pids of a Celery worker pool's processes.

    Thread and solo pools have none: their tasks die with the worker, which
    the lease covers.
    """

    def pids() -> list[int]:
        inner = getattr(getattr(pool, "_pool", None), "_pool", None)
        if not isinstance(inner, list):
            return []
        return [p.pid for p in list(inner) if getattr(p, "pid", None)]

    return pids


class ChildWatcher:
    """Notices pool-process deaths and resurrects exactly their tasks."""

    def __init__(
        self,
        relier: Relier,
        worker_id: str,
        pids: Callable[[], list[int]],
        stopping: Callable[[], bool] = lambda: False,
        on_requeued: Callable[[int], None] = lambda n: None,
    ) -> None:
        self.relier = relier
        self.worker_id = worker_id
        self._pids = pids
        self._stopping = stopping
        self._on_requeued = on_requeued
        self._known: set[int] = set()
        # Dead pids whose tasks are not yet taken back: kept until take_back
        # succeeds, so a death seen while Redis is unreachable is acted on
        # when it returns instead of waiting for the whole worker's lease.
        self._dead: set[int] = set()
        self._lock = threading.Lock()

    def scan(self) -> bool:
        """Look at the pool without touching Redis; whether a death awaits :meth:`poll`.

        Cheap (a ``/proc`` read per process), so the worker's event loop can
        run it every 50 ms itself (see :class:`relier.worker.WorkerService`).
        """
        with self._lock:
            current = set(self._pids())
            watched = self._known | current
            dead = {pid for pid in watched if not process_alive(pid)}
            self._known = current - dead
            self._dead |= dead
            return bool(self._dead)

    def has_dead(self) -> bool:
        """Whether a death seen by :meth:`scan` awaits :meth:`poll`."""
        return bool(self._dead)

    def poll(self) -> int:
        """Check the pool once and take back the tasks of every dead process;
        returns how many tasks were re-queued.

        Called by the worker thread (at once when the event loop's
        :meth:`scan` saw a death, and on its own every 50 ms where there is
        no event loop), and by the main thread when Celery is about to fork
        a replacement process (Celery first runs a full garbage collection
        there, holding the GIL for tens of ms).
        """
        self.scan()
        with self._lock:
            todo = sorted(self._dead)
        requeued = 0
        # A worker that is shutting down stops its own pool processes (a cold
        # shutdown kills them): those deaths are hand-backs, not crashes, and
        # must never count toward a task's poison-pill limit.
        kind = "handoff" if self._stopping() else "child"
        for pid in todo:
            # Raises while Redis is down; the pid stays in _dead for the next
            # poll. take_back is atomic per task and matches by pid, so two
            # threads polling at once cannot move a task twice.
            r, d = take_back(self.relier, self.worker_id, kind, pid=pid)
            with self._lock:
                self._dead.discard(pid)
            requeued += r
            if r and kind == "child":
                self._on_requeued(r)
            if r or d:
                log.warning(
                    "relier: pool process %d died; re-queued %d task(s), %d poison pill(s) to "
                    "the DLQ", pid, r, d,
                )  # fmt: skip
        return requeued

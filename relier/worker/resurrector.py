"""The resurrector: takes back the work of dead workers, publishes due retries.

It runs inside every worker (in the main process's Relier thread) and as
``rl resurrector``; the ``rl:leader`` lock (``leader.lua``) makes one of
them active at a time, and any other takes over within a lock TTL if it
stops. Each tick it:

1. lists ``rl:workers`` and checks each lease key; for every worker whose
   lease expired it runs ``resurrect.lua`` on each task in its owned set
   (RESERVED and RUNNING tasks go back to their queue, counted fairly for
   poison-pill detection), then forgets the worker;
2. publishes scheduled tasks that are due (:func:`relier.scheduler.promote_due`);
3. every few seconds, republishes tasks whose message a worker took but
   never reserved (:mod:`relier.worker.orphans`).

Journal entries whose publish never completed do not exist: ``dispatch.lua``
journals and publishes in one atomic step.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from relier import telemetry
from relier.clock import now_ms
from relier.journal.message import new_delivery_tag
from relier.worker.orphans import reconcile_after_restart, republish_orphans
from relier.worker.scheduler import promote_due

if TYPE_CHECKING:
    from relier.hub import Relier

__all__ = ["Resurrector", "TickReport", "run_standalone", "take_back"]

log = logging.getLogger("relier.resurrector")
_BATCH = 500
_ORPHAN_SCAN_S = 5.0


@dataclass(frozen=True, slots=True)
class TickReport:
    """What one tick did."""

    leader: bool
    dead_workers: int = 0
    requeued: int = 0
    dead_lettered: int = 0
    promoted: int = 0
    republished: int = 0


def take_back(
    relier: Relier, worker_id: str, kind: str | None = None, pid: int | None = None
) -> tuple[int, int]:
    """Run ``resurrect.lua`` on every task ``worker_id`` owns.

    Args:
        kind: ``handoff``/``handoff_reserved`` for a worker giving work back;
            ``child`` with ``pid`` for the tasks of one dead pool process;
            ``None`` for a dead worker (``worker_sole`` when it was running a
            single task, else ``worker``; always ``worker`` when it died
            draining for shutdown: the platform's kill at the end of its
            grace period names no culprit, so it counts toward the large
            ``max_worker_deaths``, not ``max_resurrections``).
        pid: with kind ``child``, the dead process: only tasks the journal
            says run in it move.

    Returns:
        (requeued, dead-lettered as poison pills)
    """
    began = telemetry.clock()
    client = relier.redis
    keys = relier.keys
    s = relier.settings
    owned_key = keys.owned(worker_id)
    ids = [i.decode() for i in client.smembers(owned_key)]
    if not ids:
        return 0, 0
    with client.pipeline(transaction=False) as pipe:
        for task_id in ids:
            pipe.hmget(keys.task(task_id).job, ["state", "owner", "queue", "pid"])
        rows = pipe.execute()
    if pid is not None:
        mine = [(i, r) for i, r in zip(ids, rows, strict=True) if r[3] == str(pid).encode()]
        ids, rows = [i for i, _ in mine], [r for _, r in mine]
    running = sum(1 for st, ow, _, _ in rows if st == b"RUNNING" and ow == worker_id.encode())
    if kind is None:
        sole = running == 1 and not client.exists(keys.draining(worker_id))
        kind = "worker_sole" if sole else "worker"
    now = now_ms()
    scripts = relier.scripts
    with client.pipeline(transaction=False) as pipe:
        for task_id, (_, _, queue, _) in zip(ids, rows, strict=True):
            scripts.resurrect(
                task_id, worker_id, (queue or b"celery").decode(), now, new_delivery_tag(), kind,
                s.max_resurrections, s.max_worker_deaths, client=pipe, pid=pid,
            )  # fmt: skip
        replies = pipe.execute()
    telemetry.taken_back(relier, worker_id, kind, ids, rows, replies, began)
    requeued = sum(1 for r in replies if r[0] == b"requeued")
    dead = sum(1 for r in replies if r[0] == b"dead")
    return requeued, dead


class Resurrector:
    """One candidate for the resurrector role (see the module docstring)."""

    def __init__(self, relier: Relier, candidate_id: str) -> None:
        self.relier = relier
        self.candidate_id = candidate_id
        self.is_leader = False
        self._blind_until = 0.0
        self._next_orphan_scan = 0.0

    def saw_failure(self) -> None:
        """Redis failed us: live workers may have missed renewals meanwhile.

        Their leases may have lapsed through no fault of theirs, so no worker
        is declared dead until each had a full lease period to renew.
        """
        s = self.relier.settings
        self._blind_until = time.monotonic() + (s.lease_ttl_ms + 2 * s.lease_renew_ms) / 1000

    def _may_reap(self) -> bool:
        if time.monotonic() < self._blind_until:
            return False
        # A Redis that just restarted (or failed over) kept lease keys with
        # absolute expiry times that passed while it was down: wait until
        # the live workers have renewed before trusting an absent lease.
        s = self.relier.settings
        uptime_ms = int(self.relier.redis.info("server").get("uptime_in_seconds", 0)) * 1000
        return uptime_ms > s.lease_ttl_ms + 2 * s.lease_renew_ms + 1000

    def _lock_ttl_ms(self) -> int:
        s = self.relier.settings
        return max(3 * s.scan_interval_ms, s.lease_ttl_ms)

    def tick(self) -> TickReport:
        """Take or keep the lock; if held, reap dead workers and promote due tasks."""
        relier = self.relier
        leader = relier.scripts.leader(self.candidate_id, self._lock_ttl_ms())
        if leader != self.is_leader:
            log.info("relier: %s %s the resurrector", self.candidate_id,
                     "is now" if leader else "is no longer")  # fmt: skip
            self.is_leader = leader
        if not leader:
            return TickReport(leader=False)
        dead_workers = requeued = dead = 0
        dead_ids = self._dead_workers()
        for worker_id in dead_ids if dead_ids and self._may_reap() else []:
            r, d = take_back(relier, worker_id)
            requeued += r
            dead += d
            dead_workers += 1
            if relier.redis.scard(relier.keys.owned(worker_id)) == 0:
                with relier.redis.pipeline(transaction=True) as pipe:
                    pipe.zrem(relier.keys.workers, worker_id)
                    pipe.delete(relier.keys.owned(worker_id), relier.keys.draining(worker_id))
                    pipe.execute()
            log.warning(
                "relier: worker %s is dead (lease expired); resurrected %d tasks, %d poison "
                "pills to the DLQ", worker_id, r, d,
            )  # fmt: skip
        promoted = 0
        while True:
            n = promote_due(relier, _BATCH)
            promoted += n
            if n < _BATCH:
                break
        republished = 0
        if time.monotonic() >= self._next_orphan_scan:
            after_restart = reconcile_after_restart(relier)
            if after_restart:
                log.warning(
                    "relier: Redis restarted: republished %d tasks whose message may have been "
                    "lost with it", after_restart,
                )  # fmt: skip
            republished = republish_orphans(relier)
            self._next_orphan_scan = time.monotonic() + _ORPHAN_SCAN_S
            if republished:
                log.warning("relier: republished %d tasks stranded in kombu's unacked", republished)
        return TickReport(True, dead_workers, requeued, dead, promoted, republished)

    def _dead_workers(self) -> list[str]:
        client = self.relier.redis
        keys = self.relier.keys
        ids = [i.decode() for i in client.zrange(keys.workers, 0, -1)]
        if not ids:
            return []
        with client.pipeline(transaction=False) as pipe:
            for wid in ids:
                pipe.exists(keys.worker(wid))
            alive = pipe.execute()
        return [wid for wid, a in zip(ids, alive, strict=True) if not a]


def run_standalone(relier: Relier, stop: threading.Event) -> None:
    """Tick a :class:`Resurrector` until ``stop`` is set (``rl resurrector``).

    Redis outages are logged and waited out; the loop never exits on them.
    """
    candidate = f"resurrector@{socket.gethostname()}#{os.getpid()}-{secrets.token_hex(3)}"
    resurrector = Resurrector(relier, candidate)
    interval = relier.settings.scan_interval_ms / 1000
    failing = False
    log.warning("relier: resurrector %s started", candidate)
    while not stop.is_set():
        try:
            report = resurrector.tick()
            if report.dead_workers or report.promoted or report.republished:
                log.info("relier: %s", report)
            if failing:
                log.warning("relier: Redis is reachable again")
                failing = False
        except Exception as exc:
            resurrector.saw_failure()
            if not failing:
                log.warning("relier: resurrector tick failed: %s", exc)
                failing = True
        stop.wait(interval)

"""The observable gauges of :mod:`relier.telemetry`: callbacks that read Redis when collected.

Invariant: Redis is read only when a metric reader collects (a scrape, a periodic
export), and a failed read reports nothing rather than raising into the reader. It
reads, never writes: ``rl:owned:<wid>`` (in flight), ``rl:queues`` and the queue lists
(depth), ``rl:dlq`` (DLQ size), ``rl:workers`` and ``rl:worker:<wid>`` (live workers).
The gauges' names and units are in :data:`relier.telemetry.INSTRUMENTS`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from opentelemetry.metrics import CallbackOptions, Observation

from relier.journal.states import text
from relier.telemetry import core as telemetry

if TYPE_CHECKING:
    from relier.hub import Relier

__all__ = ["CALLBACKS", "unwatch", "watch"]

log = logging.getLogger("relier.telemetry")


@dataclass(frozen=True, slots=True)
class _Source:
    relier: Relier
    worker_id: str | None
    leader: Callable[[], bool]


_sources: list[_Source] = []


def _forget_after_fork() -> None:
    # A pool process forked from a worker must not report the worker's gauges
    # (nor think it leads: its copy of the leader flag is frozen).
    _sources.clear()


os.register_at_fork(after_in_child=_forget_after_fork)


def watch(relier: Relier, worker_id: str | None, leader: Callable[[], bool]) -> None:
    """See :func:`relier.telemetry.watch`."""
    _sources.append(_Source(relier, worker_id, leader))


def unwatch(relier: Relier) -> None:
    """See :func:`relier.telemetry.unwatch`."""
    _sources[:] = [s for s in _sources if s.relier is not relier]


def _reporting(cluster: bool) -> list[_Source]:
    if not telemetry.enabled():
        return []
    out = []
    for source in list(_sources):
        try:
            if not cluster or source.leader():
                out.append(source)
        except Exception:  # a broken leader check reports nothing, never crashes a reader
            continue
    return out


def _observe(read: Callable[[_Source], Iterable[Observation]], cluster: bool) -> list[Observation]:
    out: list[Observation] = []
    for source in _reporting(cluster):
        try:
            out.extend(read(source))
        except Exception as exc:  # Redis down: this collection has no value
            log.debug("relier: gauge read failed: %s", exc)
    return out


def _observe_in_flight(options: CallbackOptions) -> Iterable[Observation]:
    def read(source: _Source) -> Iterable[Observation]:
        if source.worker_id is None:
            return []
        keys = source.relier.keys
        return [Observation(int(source.relier.redis.scard(keys.owned(source.worker_id))))]

    return _observe(read, cluster=False)


def _observe_queue_depth(options: CallbackOptions) -> Iterable[Observation]:
    def read(source: _Source) -> Iterable[Observation]:
        client, keys = source.relier.redis, source.relier.keys
        queues = sorted(text(q) for q in client.smembers(keys.queues))
        with client.pipeline(transaction=False) as pipe:
            for queue in queues:
                pipe.llen(keys.queue(queue))
            depths = pipe.execute()
        return [
            Observation(int(n), {telemetry.QUEUE: q}) for q, n in zip(queues, depths, strict=True)
        ]

    return _observe(read, cluster=True)


def _observe_dlq_size(options: CallbackOptions) -> Iterable[Observation]:
    def read(source: _Source) -> Iterable[Observation]:
        return [Observation(int(source.relier.redis.zcard(source.relier.keys.dlq)))]

    return _observe(read, cluster=True)


def _observe_live_workers(options: CallbackOptions) -> Iterable[Observation]:
    def read(source: _Source) -> Iterable[Observation]:
        client, keys = source.relier.redis, source.relier.keys
        ids = [text(i) for i in client.zrange(keys.workers, 0, -1)]
        with client.pipeline(transaction=False) as pipe:
            for worker_id in ids:
                pipe.exists(keys.worker(worker_id))
            alive = pipe.execute()
        return [Observation(sum(1 for a in alive if a))]

    return _observe(read, cluster=True)


CALLBACKS: dict[str, Callable[[CallbackOptions], Iterable[Observation]]] = {
    "relier.tasks.in_flight": _observe_in_flight,
    "relier.queue.depth": _observe_queue_depth,
    "relier.dlq.size": _observe_dlq_size,
    "relier.workers.live": _observe_live_workers,
}
"""Gauge name -> its callback."""
telemetry.OBSERVERS.update(CALLBACKS)

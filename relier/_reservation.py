"""Reserving a received task in the transaction kombu records its delivery in.

When kombu's Redis transport hands a message to the worker, it first records
it as unacknowledged: one MULTI/EXEC pipeline that writes the message to the
``unacked`` hash and its delivery time to ``unacked_index``
(``QoS.append``). Relier adds its own ``reserve.lua`` call to that very
transaction, instead of making a round trip of its own from the
``task_received`` signal. Two reasons:

* **Throughput.** The worker's event loop is its one serial resource: it
  receives, hands tasks to the pool and acknowledges them, and it waits for
  every Redis reply it asks for. A round trip of Relier's own per received
  task cost about 18 % of a no-op worker's throughput
  (``python -m tests.bench.throughput``); one more command in a pipeline
  kombu sends anyway costs a few microseconds.
* **No window.** kombu's record and Relier's ownership are written
  atomically, so a worker killed between the two cannot leave a task
  PENDING and unowned with its message parked in ``unacked`` (the orphan
  sweep of :mod:`relier.orphans` remains the backstop for anything that
  takes the signal path below).

The wrapper writes what kombu's own ``append`` writes (a test compares the
two on a real Redis, so a kombu upgrade that changes the record fails
loudly). A delivery it did not reserve (no Relier worker in this process,
a message that is not a registered Relier task, a script not loaded yet
after a Redis restart, a Redis error) is reserved the old way, from
``task_received``; a second reserve of the same task changes nothing
(``reserve.lua`` only takes a PENDING task).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import redis.exceptions

from .clock import now_ms
from .scripts import source

if TYPE_CHECKING:
    from .app import Relier

__all__ = ["activate", "deactivate", "install", "reserved_on_delivery"]

log = logging.getLogger("relier.worker")

# Task ids reserved inside kombu's transaction that task_received has not
# seen yet. Bounded: a message that never reaches task_received (refused as
# malformed) would otherwise stay here; forgetting an id only costs one
# redundant, harmless reserve.
_MAX_PENDING = 10_000
_reserved: set[str] = set()
_reserver: _Reserver | None = None


class _Reserver:
    """Queues ``reserve.lua`` for one worker incarnation on kombu's pipeline."""

    def __init__(self, relier: Relier, worker_id: str) -> None:
        from .app import is_registered

        self.relier = relier
        self.worker_id = worker_id
        self.sha = relier.scripts.sha("reserve")
        self.is_registered = is_registered

    def queue(self, pipe: Any, message: Any) -> str | None:
        """Add the reserve of ``message``'s task to ``pipe``; its id, or None
        (not a registered Relier task: nothing added)."""
        headers = getattr(message, "headers", None)
        if not isinstance(headers, dict):
            return None
        task_id, name = headers.get("id"), headers.get("task")
        if not isinstance(task_id, str) or not isinstance(name, str):
            return None
        if not self.is_registered(name):
            return None
        keys, argv = self.relier.scripts.args.reserve(task_id, self.worker_id, now_ms())
        pipe.evalsha(self.sha, len(keys), *keys, *argv)
        return task_id

    def settle(self, task_id: str, reply: Any) -> None:
        """Note the reserve's reply; an error leaves the task to task_received."""
        if isinstance(reply, Exception):
            if not isinstance(reply, redis.exceptions.NoScriptError):
                log.warning("relier: could not reserve [%s] on delivery: %s", task_id, reply)
            return  # task_received reserves it (and loads the script)
        if len(_reserved) >= _MAX_PENDING:
            _reserved.clear()
        _reserved.add(task_id)


def install() -> None:
    """Wrap kombu's Redis ``QoS.append`` (idempotent; inert until :func:`activate`)."""
    from kombu.transport import redis as kombu_redis
    from kombu.transport import virtual

    original: Any = kombu_redis.QoS.append
    # kombu is untyped: its record encoder and the base class's bookkeeping.
    record_of: Any = kombu_redis.dumps  # type: ignore[attr-defined]
    remember: Any = virtual.QoS.append
    if getattr(original, "_relier_reserve", False):
        return

    def append(self: Any, message: Any, delivery_tag: str) -> None:
        reserver = _reserver
        if reserver is None:
            return original(self, message, delivery_tag)  # type: ignore[no-any-return]
        delivery = message.delivery_info
        record = record_of([message._raw, delivery["exchange"], delivery["routing_key"]])
        with self.pipe_or_acquire() as pipe:
            pipe.zadd(self.unacked_index_key, {delivery_tag: time.time()})
            pipe.hset(self.unacked_key, delivery_tag, record)
            try:
                task_id = reserver.queue(pipe, message)
            except Exception as exc:  # never let Relier's part stop a delivery
                log.warning("relier: could not reserve on delivery: %s", exc)
                task_id = None
            replies = pipe.execute(raise_on_error=False)
        for reply in replies[:2]:
            if isinstance(reply, Exception):
                raise reply  # kombu's own commands fail as they would unwrapped
        remember(self, message, delivery_tag)
        if task_id is not None:
            reserver.settle(task_id, replies[2])

    append._relier_reserve = True  # type: ignore[attr-defined]
    kombu_redis.QoS.append = append  # type: ignore[method-assign]


def activate(relier: Relier, worker_id: str) -> None:
    """Reserve this process's deliveries for ``worker_id`` from now on."""
    global _reserver
    install()
    _reserver = _Reserver(relier, worker_id)
    _reserved.clear()
    try:
        # Loaded now, so the first deliveries need not take the signal path.
        relier.redis.script_load(source("reserve"))
    except Exception as exc:  # unreachable now: NOSCRIPT sends them that way
        log.warning("relier: could not load reserve.lua at worker start: %s", exc)


def deactivate() -> None:
    """Back to kombu's own ``append`` (the reserve goes back to task_received)."""
    global _reserver
    _reserver = None
    _reserved.clear()


def reserved_on_delivery(task_id: str) -> bool:
    """Whether ``task_id``'s delivery reserved it already (answers once per delivery)."""
    try:
        _reserved.remove(task_id)
    except KeyError:
        return False
    return True

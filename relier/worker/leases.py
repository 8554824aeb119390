"""Worker leases: how the cluster knows which workers are alive.

Each worker incarnation holds one key, ``rl:worker:<wid>``, with a short
PX TTL (``RELIER_LEASE_TTL_MS``) that its main process renews every
``RELIER_LEASE_RENEW_MS``; it is listed in ``rl:workers`` from start until
its work has been reaped. Redis load is one SET per worker per renewal,
whatever the number of tasks in flight. A worker whose key has expired is
dead: the resurrector takes back everything in its ``rl:owned:<wid>`` set.
:mod:`relier.ops.workers` reads the leases back for operators.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
from typing import TYPE_CHECKING

from relier.clock import now_ms

if TYPE_CHECKING:
    from relier.hub import Relier

__all__ = ["Lease", "new_worker_id"]


def new_worker_id(node: str) -> str:
    """A worker incarnation id: node name, pid and a random suffix."""
    return f"{node}#{os.getpid()}-{secrets.token_hex(3)}"


class Lease:
    """The lease of one worker incarnation."""

    def __init__(self, relier: Relier, worker_id: str, node: str) -> None:
        self.relier = relier
        self.worker_id = worker_id
        self.node = node
        self.started = now_ms()
        self._value = json.dumps(
            {
                "node": node,
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "started": self.started,
                "ttl": relier.settings.lease_ttl_ms,
            }
        )

    def register(self) -> None:
        """Take the lease and list the worker in ``rl:workers``."""
        keys = self.relier.keys
        with self.relier.redis.pipeline(transaction=True) as pipe:
            pipe.set(keys.worker(self.worker_id), self._value, px=self.relier.settings.lease_ttl_ms)
            pipe.zadd(keys.workers, {self.worker_id: self.started})
            pipe.execute()

    def renew(self) -> None:
        """Extend the lease by a full TTL, and stay listed (one round trip).

        Listing again matters for a worker that froze (SIGSTOP, a long GC or
        VM pause) past its lease: the resurrector took its work back and
        forgot it; once it wakes it is alive again, and must be reapable if
        it dies later.
        """
        keys = self.relier.keys
        with self.relier.redis.pipeline(transaction=False) as pipe:
            pipe.set(keys.worker(self.worker_id), self._value, px=self.relier.settings.lease_ttl_ms)
            pipe.zadd(keys.workers, {self.worker_id: self.started}, nx=True)
            pipe.execute()

    def release(self) -> None:
        """Drop the lease and the listing (only once the worker owns nothing)."""
        keys = self.relier.keys
        with self.relier.redis.pipeline(transaction=True) as pipe:
            pipe.delete(keys.worker(self.worker_id), keys.draining(self.worker_id))
            pipe.zrem(keys.workers, self.worker_id)
            pipe.execute()

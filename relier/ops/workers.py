"""The workers the cluster knows of, read back from their leases.

Each worker incarnation keeps ``rl:worker:<wid>`` alive and is listed in
``rl:workers`` (:mod:`relier.worker.leases` writes both); this module only
reads them, for ``rl workers``, the admin API and the chaos runner.

Redis keys: none of its own.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from relier.hub import Relier

__all__ = ["WorkerInfo", "list_workers"]


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """One listed worker incarnation.

    ``lease_ttl_ms`` is what is left of its lease (0 once expired);
    ``lease_period_ms`` the TTL it renews the lease to, so the time since its
    last renewal is their difference.
    """

    worker_id: str
    alive: bool
    node: str
    host: str
    pid: int
    started_ms: int
    lease_ttl_ms: int
    owned: int
    lease_period_ms: int


def list_workers(relier: Relier) -> list[WorkerInfo]:
    """Every worker in ``rl:workers``: alive ones and dead ones not yet reaped."""
    client = relier.redis
    keys = relier.keys
    ids = [i.decode() for i in client.zrange(keys.workers, 0, -1)]
    with client.pipeline(transaction=False) as pipe:
        for wid in ids:
            pipe.get(keys.worker(wid))
            pipe.pttl(keys.worker(wid))
            pipe.scard(keys.owned(wid))
        raw = pipe.execute()
    out = []
    for n, wid in enumerate(ids):
        value, ttl, owned = raw[3 * n : 3 * n + 3]
        info: dict[str, Any] = json.loads(value) if value else {}
        out.append(
            WorkerInfo(
                worker_id=wid,
                alive=value is not None,
                node=str(info.get("node", wid.split("#")[0])),
                host=str(info.get("host", "")),
                pid=int(info.get("pid", 0)),
                started_ms=int(info.get("started", 0)),
                lease_ttl_ms=max(int(ttl), 0),
                owned=int(owned),
                lease_period_ms=int(info.get("ttl", relier.settings.lease_ttl_ms)),
            )
        )
    return out

"""This process's worker incarnation id.

A worker's main process takes a new id (:func:`relier.worker.leases.new_worker_id`)
in its bootstep, before the pool forks, so every pool process inherits it and
claims tasks in its worker's name. Outside a Relier worker there is none.

Redis keys: none (the lease, :mod:`relier.worker.leases`, is the id's key).
"""

from __future__ import annotations

__all__ = ["current_worker_id", "set_worker_id", "worker_id"]


class _Identity:
    # One mutable holder instead of a module global rebound by ``global``.
    value: str | None = None


def set_worker_id(value: str) -> None:
    """Record the id of the worker incarnation this process belongs to."""
    _Identity.value = value


def worker_id() -> str | None:
    """This process's worker incarnation id, or None outside a Relier worker."""
    return _Identity.value


def current_worker_id(fallback: str) -> str:
    """This process's worker incarnation id (``fallback`` outside a Relier worker)."""
    return _Identity.value or fallback

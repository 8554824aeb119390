"""Traces and metrics for every task: the facade the rest of Relier calls.

Callers write ``from relier import telemetry`` and call ``telemetry.<hook>``;
the hooks live in the modules below (see :mod:`relier.telemetry.core` for the
names and the invariant: telemetry never changes what Relier does). This
module adds the process-level switches that need them all: the gauges a
process reports, the Prometheus endpoint, and a worker's start.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from relier.telemetry import core, gauges, prometheus
from relier.telemetry.attempts import (
    attempt_decoded,
    attempt_ended,
    attempt_failed,
    attempt_started,
    clock,
    committed,
    dead_lettered,
    flush_before_exit,
    soft_timeout,
    stale_fence,
    taken_back,
    unknown_task_dead_lettered,
)
from relier.telemetry.core import (
    EVENTS,
    INSTRUMENTS,
    SCOPE,
    Dispatch,
    enabled,
    meter_provider,
    set_enabled,
    trace_context,
    tracing,
    use_meter_provider,
)

if TYPE_CHECKING:
    from relier.hub import Relier

__all__ = [
    "EVENTS",
    "INSTRUMENTS",
    "SCOPE",
    "Dispatch",
    "attempt_decoded",
    "attempt_ended",
    "attempt_failed",
    "attempt_started",
    "clock",
    "committed",
    "dead_lettered",
    "enabled",
    "flush_before_exit",
    "meter_provider",
    "require_prometheus",
    "set_enabled",
    "soft_timeout",
    "stale_fence",
    "start_prometheus",
    "taken_back",
    "trace_context",
    "tracing",
    "unknown_task_dead_lettered",
    "unwatch",
    "use_meter_provider",
    "watch",
    "worker_preparing",
    "worker_started",
]


def watch(
    relier: Relier, worker_id: str | None = None, leader: Callable[[], bool] = lambda: True
) -> None:
    """Report the observable gauges of ``relier`` from this process.

    ``relier.tasks.in_flight`` is this worker's (``worker_id``); the cluster-wide
    ones (queue depth, DLQ size, live workers) are reported only while
    ``leader()`` is true, so one process reports them (every worker passes
    "holds the resurrector lock"). Redis is read only when a metric reader
    collects. Workers call this themselves; call it in a process of your own
    (a web app, say) to have the cluster gauges without a worker.
    """
    core.instruments()
    gauges.watch(relier, worker_id, leader)


def unwatch(relier: Relier) -> None:
    """Stop reporting the gauges of ``relier``."""
    gauges.unwatch(relier)


def require_prometheus(port: int | None) -> None:
    """Raise ``ConfigurationError`` now if ``port`` is set and the ``otel`` extra is missing."""
    prometheus.require(port)


def start_prometheus(port: int, addr: str = "0.0.0.0", registry: Any = None) -> Any:
    """Serve Relier's metrics for Prometheus on ``addr:port`` (``/metrics``), from this process.

    With no meter provider set yet, a global one is made with the Prometheus
    reader (so the application's own metrics are served too); with one set by
    the application, Relier's instruments move to a provider of their own.
    ``registry`` is the ``prometheus_client`` registry (its default one if
    None). Returns the HTTP server (``shutdown()`` stops it).

    Raises:
        ConfigurationError: the ``otel`` extra is not installed, or the port
            cannot be listened on.
    """
    return prometheus.start(port, addr, registry)


def worker_preparing(prometheus_port: int | None) -> None:
    """In a worker's main process, before its pool forks: refuse a Prometheus port
    without the ``otel`` extra now, and make the instruments once, so that pool
    processes inherit them instead of making them (a few ms) in their first attempt."""
    require_prometheus(prometheus_port)
    core.instruments()


def worker_started(relier: Relier, worker_id: str, leader: Callable[[], bool]) -> None:
    """A worker's main process is up: report its gauges, and serve Prometheus if
    ``RELIER_PROMETHEUS_PORT`` is set (:class:`ConfigurationError` when it cannot)."""
    watch(relier, worker_id, leader)
    port = relier.settings.prometheus_port
    if port is not None:
        start_prometheus(port)

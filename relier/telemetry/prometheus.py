"""Prometheus exposition of :mod:`relier.telemetry`'s metrics (``RELIER_PROMETHEUS_PORT``).

Invariant: it needs the ``otel`` extra (the SDK and ``opentelemetry-exporter-prometheus``)
and says so with a :class:`~relier.errors.ConfigurationError` when it is missing, never an
``ImportError``. It serves what the process it runs in records (a worker's main process).
It owns no Redis key.
"""

from __future__ import annotations

import logging
from typing import Any

from opentelemetry import metrics

from relier.errors import ConfigurationError
from relier.telemetry import core as telemetry

__all__ = ["require", "start"]

log = logging.getLogger("relier.telemetry")


def _modules(port: int) -> tuple[Any, Any, Any]:
    try:
        from opentelemetry.exporter.prometheus import PrometheusMetricReader
        from opentelemetry.sdk.metrics import MeterProvider
        from prometheus_client import start_http_server
    except ImportError as exc:
        raise ConfigurationError(
            f"RELIER_PROMETHEUS_PORT is {port}, but the OpenTelemetry SDK and Prometheus "
            f"exporter are not installed ({exc}); install them with "
            '`pip install "relier[otel]"`, or unset RELIER_PROMETHEUS_PORT'
        ) from None
    return PrometheusMetricReader, MeterProvider, start_http_server


def require(port: int | None) -> None:
    """See :func:`relier.telemetry.require_prometheus`."""
    if port is not None:
        _modules(port)


def start(port: int, addr: str, registry: Any) -> Any:
    """See :func:`relier.telemetry.start_prometheus`."""
    reader_class, provider_class, serve = _modules(port)
    kwargs = {} if registry is None else {"registry": registry}
    reader = reader_class(**kwargs)
    provider = provider_class(metric_readers=[reader])
    try:
        server, _ = serve(port, addr, **kwargs)
    except OSError as exc:
        provider.shutdown()
        raise ConfigurationError(
            f"RELIER_PROMETHEUS_PORT is {port}, but {addr}:{port} cannot be listened on "
            f"({exc}); choose a free port (one per worker on a host)"
        ) from None
    if registry is None and _no_meter_provider():
        metrics.set_meter_provider(provider)
        telemetry.use_meter_provider(None)
    else:
        telemetry.use_meter_provider(provider)
    log.info("relier: serving Prometheus metrics on %s:%d/metrics", addr, port)
    return server


def _no_meter_provider() -> bool:
    """Whether the application set no global meter provider (the API's proxy is in place)."""
    return type(metrics.get_meter_provider()).__name__ in (
        "_ProxyMeterProvider",
        "NoOpMeterProvider",
    )

"""One OpenTelemetry SDK for the test process: spans and metrics kept in memory.

OpenTelemetry's global providers can be set once per process, so every test
that looks at telemetry shares these; the ``otel`` fixtures switch Relier's
hooks on for their test only (:func:`relier.telemetry.set_enabled`), so other
tests push exactly as before.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from relier import telemetry

_installed: tuple[InMemorySpanExporter, InMemoryMetricReader] | None = None


@dataclass
class Otel:
    """What a test reads back: finished spans and collected metrics."""

    exporter: InMemorySpanExporter
    reader: InMemoryMetricReader

    def spans(self, name: str | None = None) -> list[ReadableSpan]:
        return [s for s in self.exporter.get_finished_spans() if name is None or s.name == name]

    def points(self, name: str) -> Iterator[Any]:
        data = self.reader.get_metrics_data()
        for resource in data.resource_metrics if data else []:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == name:
                        yield from metric.data.data_points

    def value(self, name: str, **attributes: str) -> float:
        """Sum of a counter (or count of a histogram) over points matching ``attributes``
        (keys without the ``relier.`` prefix: ``task=``, ``queue=``, ``reason=``)."""
        wanted = {f"relier.{k}": v for k, v in attributes.items()}
        total = 0.0
        for point in self.points(name):
            if all(point.attributes.get(k) == v for k, v in wanted.items()):
                total += cast(float, getattr(point, "count", None) or getattr(point, "value", 0))
        return total


def install() -> Otel:
    """The process's SDK (made on first use) with Relier's hooks on and no spans yet."""
    global _installed
    if _installed is None:
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        reader = InMemoryMetricReader()
        metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
        _installed = (exporter, reader)
    exporter, reader = _installed
    exporter.clear()
    telemetry.set_enabled(True)
    return Otel(exporter, reader)


def uninstall(otel: Otel) -> None:
    """Hooks off again for the tests that follow (the providers stay: they cannot be unset)."""
    otel.exporter.clear()
    telemetry.set_enabled(False)

"""Tasks for the telemetry integration test, and an OpenTelemetry SDK that writes spans to a file.

When ``TELEMETRY_SPANS`` names a file, this module (imported by the worker's main process
before it forks its pool) sets a global SDK tracer provider whose exporter appends one JSON
line per finished span to it, from every process of the worker. The test reads them back.
The exporter exports synchronously (``SimpleSpanProcessor``): no thread to lose in a fork,
nothing buffered when a pool process is replaced.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

import relier
from relier import TaskContext, rl_task

QUEUE = "tel"
THREADS_QUEUE = "tel-threads"


class JsonLinesExporter(SpanExporter):
    """Appends each span as one JSON line (one ``write`` per batch, ``O_APPEND``)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        data = b"".join(json.dumps(record(s)).encode() + b"\n" for s in spans)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


def record(span: ReadableSpan) -> dict[str, Any]:
    context = span.get_span_context()
    assert context is not None
    return {
        "name": span.name,
        "kind": span.kind.name,
        "trace_id": f"{context.trace_id:032x}",
        "span_id": f"{context.span_id:016x}",
        "parent_id": f"{span.parent.span_id:016x}" if span.parent else None,
        "links": [
            {"trace_id": f"{link.context.trace_id:032x}", "span_id": f"{link.context.span_id:016x}"}
            for link in span.links
        ],
        "attributes": dict(span.attributes or {}),
        "events": [{"name": e.name, "attributes": dict(e.attributes or {})} for e in span.events],
        "status": span.status.status_code.name,
        "pid": os.getpid(),
    }


if path := os.environ.get("TELEMETRY_SPANS"):
    _provider = TracerProvider()
    _provider.add_span_processor(SimpleSpanProcessor(JsonLinesExporter(path)))
    trace.set_tracer_provider(_provider)


def released(key: str) -> bool:
    return bool(relier.current().redis.exists(f"rl-test:release:{key}"))


@rl_task(name="tel.add", queue=QUEUE)
def add(a: int, b: int) -> int:
    return a + b


@rl_task(name="tel.flaky", queue=QUEUE, max_retries=2, retry_backoff=0.05, retry_jitter=False)
def flaky(ctx: TaskContext) -> int:
    if ctx.attempt == 1:
        raise ConnectionError("the first attempt fails")
    return ctx.attempt


@rl_task(name="tel.slow", queue=QUEUE, soft_timeout=0.2)
def slow() -> str:
    time.sleep(0.5)
    return "done"


@rl_task(name="tel.spin", queue=QUEUE, hard_timeout=0.5, max_retries=0)
def spin() -> None:
    while True:
        pass


@rl_task(name="tel.broken", queue=QUEUE, retry_on=(ConnectionError,))
def broken() -> None:
    raise KeyError("not retryable")


@rl_task(name="tel.hold", queue=QUEUE, max_retries=0)
def hold(ctx: TaskContext, key: str) -> int:
    """Runs until the test sets ``rl-test:release:<key>`` (30 s at most)."""
    deadline = time.monotonic() + 30
    while not released(key) and time.monotonic() < deadline:
        time.sleep(0.02)
    return ctx.attempt


@rl_task(name="tel.zombie", queue=THREADS_QUEUE, hard_timeout=0.5, max_retries=0)
def zombie(key: str) -> str:
    """Runs past its hard timeout until released: outside a pool process it is not stopped."""
    deadline = time.monotonic() + 30
    while not released(key) and time.monotonic() < deadline:
        time.sleep(0.02)
    return "late"

"""The admin API's response and request bodies, as pydantic models.

Each model mirrors one result of :mod:`relier.inspection`, :mod:`relier.stats`
or :mod:`relier.dlq` field for field (``tests/adapters/test_fastapi.py``
checks that they stay in step) and is built from it with
``model_validate(result)``; the models exist so that the OpenAPI schema
describes every field. Their names start with ``Relier`` so they cannot
collide with an application's own schemas in one OpenAPI document.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

__all__ = [
    "MAX_IDS",
    "MAX_ID_LENGTH",
    "RelierDeadSummary",
    "RelierDeadTask",
    "RelierDlqPage",
    "RelierHTTPError",
    "RelierHealth",
    "RelierInflightTask",
    "RelierMetrics",
    "RelierProblem",
    "RelierPurged",
    "RelierQueueDepth",
    "RelierRates",
    "RelierReleased",
    "RelierStatus",
    "RelierTaskDetail",
    "RelierTaskIds",
    "RelierWorker",
]

MAX_IDS = 1000
"""Most task ids one release or purge request may name."""

MAX_ID_LENGTH = 200
"""Longest task id the admin API accepts."""

# Braces are refused: no task id has them (they would change the Redis
# Cluster slot of its keys), so an id with one names no task.
TaskId = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_ID_LENGTH, pattern=r"^[^{}]+$")
]


class _Model(BaseModel):
    model_config = ConfigDict(from_attributes=True, frozen=True)


class RelierQueueDepth(_Model):
    """A Celery queue and the messages waiting in it."""

    name: str
    depth: int


class RelierRates(_Model):
    """Event counts over the last minute (see ``rl status``)."""

    window_ms: int = Field(description="Time the counts cover, 50 to 60 s.")
    counts: dict[str, int] = Field(description="Events in the window, by event name.")
    per_minute: dict[str, float] = Field(description="The counts scaled to one minute.")


class RelierStatus(_Model):
    """The whole cluster at a glance (``rl status``)."""

    now_ms: int
    workers_alive: int
    workers_dead: int = Field(description="Workers whose lease expired, not yet reaped.")
    queues: list[RelierQueueDepth]
    running: int
    reserved: int = Field(description="Tasks a worker received and has not started.")
    scheduled: int = Field(description="Retries, countdown pushes and waiting tasks.")
    overdue: int = Field(description="Scheduled entries already due.")
    retrying: int
    retrying_exact: bool
    dlq: int = Field(description="Tasks in the dead letter queue.")
    rates: RelierRates


class RelierInflightTask(_Model):
    """A task a worker holds: RUNNING, or RESERVED (received, not started)."""

    id: str
    task: str
    state: str
    queue: str
    worker_id: str
    worker_alive: bool
    pid: int | None
    attempt: int
    fence: int
    since_ms: int
    elapsed_ms: int


class RelierWorker(_Model):
    """A worker incarnation (``rl workers``)."""

    worker_id: str
    alive: bool
    node: str
    host: str
    pid: int
    started_ms: int
    uptime_ms: int
    lease_age_ms: int | None = Field(description="Since its lease was renewed; null once dead.")
    lease_left_ms: int
    owned: int
    running: int
    reserved: int


class RelierTaskDetail(_Model):
    """One task's journal entry and full history (``rl task ID``); times in ms since the epoch."""

    id: str
    task: str
    state: str
    queue: str
    attempt: int
    fence: int
    failures: int
    resurrections: int
    worker_deaths: int
    owner: str | None
    pid: int | None
    created_ms: int | None
    updated_ms: int | None
    started_ms: int | None
    finished_ms: int | None
    due_ms: int | None
    reason: str | None
    error: str | None
    traceback: str | None
    result: str | None = Field(description="The JSON text of a SUCCEEDED task's result.")
    progress: str | None
    envelope: str = Field(description="The stored envelope's JSON text, as pushed.")
    history: list[dict[str, Any]] = Field(description="History events, oldest first.")
    extra: dict[str, str] = Field(description="Other journal fields.")


class RelierDeadSummary(_Model):
    """One DLQ entry as listed."""

    id: str
    task: str
    queue: str
    reason: str
    error: str
    attempts: int
    died_ms: int


class RelierDlqPage(_Model):
    """DLQ entries, newest first."""

    entries: list[RelierDeadSummary]
    truncated: bool = Field(description="More entries match than the limit.")


class RelierDeadTask(_Model):
    """One DLQ entry in full (``rl dlq show ID``)."""

    id: str
    task: str
    reason: str
    error: str
    traceback: str
    attempts: int
    died_ms: int
    envelope: str
    history: list[dict[str, Any]]


class RelierTaskIds(BaseModel):
    """The DLQ entries a release or purge acts on."""

    model_config = ConfigDict(extra="forbid")

    ids: list[TaskId] = Field(min_length=1, max_length=MAX_IDS)


class RelierReleased(_Model):
    """What a release did."""

    released: dict[str, int] = Field(description="Task id -> the new fence of each released.")
    refused: dict[str, str] = Field(description="Task id -> its state, or MISSING.")


class RelierPurged(_Model):
    """What a purge did."""

    purged: list[str]
    refused: dict[str, str] = Field(description="Task id -> its state, or MISSING.")


class RelierHealth(_Model):
    """Whether this process reaches Redis, and how many workers hold a lease."""

    status: Literal["ok"]
    redis_ms: float = Field(description="Round trip of a PING, in ms.")
    workers_alive: int


class RelierMetrics(_Model):
    """Gauges and last-minute event rates, flat, for scrapers that read JSON."""

    now_ms: int
    workers_alive: int
    workers_dead: int
    running: int
    reserved: int
    scheduled: int
    overdue: int
    retrying: int
    dlq: int
    queue_depth: dict[str, int] = Field(description="Messages waiting, by queue.")
    events_window_ms: int
    events: dict[str, int] = Field(description="Events in the window, by event name.")
    events_per_minute: dict[str, float]


class RelierHTTPError(BaseModel):
    """An error response (FastAPI's ``{"detail": ...}`` shape)."""

    detail: str


class RelierProblem(BaseModel):
    """An RFC 9457 problem, as 429 responses carry it."""

    type: str
    title: str
    status: int
    detail: str
    retry_after: float = Field(description="Seconds until the call would be admitted.")
    reason: Literal["rate", "depth"]

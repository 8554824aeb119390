"""The admin API's framework-neutral core: limits, request and response models, 429 bodies, tokens.

The FastAPI, Flask and Django adapters all serve the same admin API and the
same 429 response; what does not depend on a framework lives here, once:
the limits on task ids and patterns, the pydantic models of query
parameters, request bodies and responses, the RFC 9457 problem body for an
:class:`~relier.AdmissionRejectedError` with its ``Retry-After`` value, and
the admin-token check (:class:`TokenDigest`). It imports no web framework.

Each response model mirrors one result of :mod:`relier.ops.inspection`,
:mod:`relier.ops.stats` or :mod:`relier.ops.dlq` field for field
(``tests/adapters/test_fastapi.py`` checks that they stay in step) and is
built from it with ``model_validate(result)``. Their names start with
``Relier`` so they cannot collide with an application's own schemas in one
OpenAPI document.

Redis keys: none.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from collections.abc import Mapping
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    TypeAdapter,
    ValidationError,
)

from relier.config import MIN_ADMIN_TOKEN_BYTES
from relier.errors import AdmissionRejectedError, ConfigurationError
from relier.journal.states import Reason

__all__ = [
    "MAX_IDS",
    "MAX_ID_LENGTH",
    "MAX_MS",
    "MAX_PATTERN_LENGTH",
    "PROBLEM_JSON",
    "TASK_ID",
    "TASK_ID_PATTERN",
    "DlqQuery",
    "InflightQuery",
    "InvalidRequest",
    "Pattern",
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
    "StatusQuery",
    "TaskId",
    "TokenDigest",
    "parse_query",
    "parse_task_id",
    "parse_task_ids",
    "problem_body",
    "retry_after_seconds",
]

MAX_IDS = 1000
"""Most task ids one release or purge request may name."""

MAX_ID_LENGTH = 200
"""Longest task id the admin API accepts."""

MAX_PATTERN_LENGTH = 200
"""Longest name or shell-style pattern a filter parameter accepts."""

MAX_MS = 2**53
"""Largest time (ms since the epoch) a parameter accepts: Redis always reads it as a number."""

TASK_ID_PATTERN = r"^[^{}]+$"
"""What a task id must match. Braces are refused: no task id has them (they
would change the Redis Cluster slot of its keys), so an id with one names no task."""

TaskId = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_ID_LENGTH, pattern=TASK_ID_PATTERN)
]
"""A task id as a path parameter or in a body."""

Pattern = Annotated[str, StringConstraints(max_length=MAX_PATTERN_LENGTH)]
"""A name, or a shell-style pattern (``billing.*``), as a filter parameter."""

TASK_ID: TypeAdapter[str] = TypeAdapter(TaskId)
"""Validates one task id (``TASK_ID.validate_python(value)``)."""

PROBLEM_JSON = "application/problem+json"
"""The media type of RFC 9457 problem details."""

M = TypeVar("M", bound=BaseModel)


class StatusQuery(BaseModel):
    """The query of ``GET /status``: the queues to report (all when none)."""

    queue: list[Annotated[str, StringConstraints(min_length=1, max_length=200)]] = Field(
        default_factory=list, max_length=50
    )


class InflightQuery(BaseModel):
    """The query of ``GET /inflight``: filters by queue and task name."""

    queue: Pattern | None = None
    task: Pattern | None = None


class DlqQuery(BaseModel):
    """The query of ``GET /dlq``: filters and a page size."""

    task: Pattern | None = None
    reason: Reason | None = None
    since_ms: int | None = Field(None, ge=0, le=MAX_MS)
    before_ms: int | None = Field(None, ge=0, le=MAX_MS)
    limit: int = Field(100, ge=1, le=1000)


class TokenDigest:
    """An admin token, kept only as its SHA-256 digest and compared in constant time.

    Args:
        token: the bearer token clients must send.

    Raises:
        ConfigurationError: the token is shorter than 16 bytes.
    """

    __slots__ = ("_digest",)

    def __init__(self, token: str | SecretStr) -> None:
        raw = (token.get_secret_value() if isinstance(token, SecretStr) else token).encode()
        if len(raw) < MIN_ADMIN_TOKEN_BYTES:
            raise ConfigurationError(
                f"the admin token is {len(raw)} bytes; it needs at least {MIN_ADMIN_TOKEN_BYTES} "
                "(make one with `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
            )
        self._digest = hashlib.sha256(raw).digest()

    def __repr__(self) -> str:
        return "<TokenDigest ***>"

    def matches(self, given: bytes | str) -> bool:
        """Whether ``given`` (a token as sent) is this token, compared by digest."""
        raw = given.encode() if isinstance(given, str) else given
        return hmac.compare_digest(hashlib.sha256(raw).digest(), self._digest)


def retry_after_seconds(retry_after: float) -> int:
    """The ``Retry-After`` value for a wait of ``retry_after`` seconds: rounded
    up to whole seconds (HTTP has no fractions), at least 1."""
    if not math.isfinite(retry_after):
        return 1
    return max(1, math.ceil(retry_after))


def problem_body(exc: AdmissionRejectedError, problem_type: str = "about:blank") -> dict[str, Any]:
    """The RFC 9457 problem body of the 429 response for a refused call.

    Its members are ``type``, ``title``, ``status``, ``detail``, and the
    extension members ``retry_after`` (seconds, not rounded) and ``reason``
    (``rate`` or ``depth``). It never names the task or limit that refused.
    """
    what = "a rate limit" if exc.reason == "rate" else "a queue's depth cap"
    # JSON has no infinity: an error raised by hand with one gets the header's wait.
    if math.isfinite(exc.retry_after):
        wait = max(exc.retry_after, 0.0)
    else:
        wait = float(retry_after_seconds(exc.retry_after))
    return {
        "type": problem_type,
        "title": "Too Many Requests",
        "status": 429,
        "detail": f"refused by {what}; retry after {wait:.3f} s",
        "retry_after": wait,
        "reason": exc.reason,
    }


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
    refused: dict[str, str] = Field(
        description="Task id -> its state, MISSING, or CORRUPT (a DLQ entry whose fence is "
        "not an integer: purge or repair it)."
    )


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


class InvalidRequest(Exception):
    """Raised when a request's parameters or body do not validate: a 422.

    ``detail`` lists what was wrong, as pydantic and FastAPI word it, each
    ``loc`` starting with ``where`` (``query``, ``path`` or ``body``).
    """

    def __init__(self, where: str, error: ValidationError) -> None:
        super().__init__(where)
        self.where = where
        self.detail = [
            {**e, "loc": [where, *e["loc"]]}
            for e in error.errors(include_url=False, include_context=False)
        ]


def parse_query(model: type[M], args: Mapping[str, Any]) -> M:
    """``model`` from query parameters, ignoring those it has no field for.

    Raises:
        InvalidRequest: a parameter does not validate.
    """
    try:
        return model.model_validate({k: v for k, v in args.items() if k in model.model_fields})
    except ValidationError as exc:
        raise InvalidRequest("query", exc) from None


def parse_task_id(value: str) -> str:
    """A task id from a path.

    Raises:
        InvalidRequest: it is empty, too long or has braces.
    """
    try:
        return TASK_ID.validate_python(value)
    except ValidationError as exc:
        raise InvalidRequest("path", exc) from None


def parse_task_ids(body: Any) -> list[str]:
    """The ids of a release or purge body (``{"ids": [...]}``, decoded JSON).

    Raises:
        InvalidRequest: the body is not such an object.
    """
    try:
        return RelierTaskIds.model_validate(body).ids
    except ValidationError as exc:
        raise InvalidRequest("body", exc) from None

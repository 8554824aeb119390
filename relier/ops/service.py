"""The admin API's endpoints, once: what each does and what it answers.

Every adapter (FastAPI, Flask, Django) serves the same ten endpoints. What
an endpoint reads, how it parses what the client sent and the response it
gives live here, on :class:`AdminService`; an adapter keeps only its routing,
its authentication and the mapping of errors to statuses. Every answer is a
response model of :mod:`relier.ops.admin`: FastAPI returns it (its OpenAPI
schema comes from the same model) and Flask and Django send :func:`to_json`
of it, so the three cannot serialise one result two ways.

Errors a caller maps: :class:`~relier.ops.admin.InvalidRequest` (422),
:class:`NotJsonError` (400), :class:`~relier.TaskNotFoundError` (404) and
:class:`~relier.RedisUnavailableError` (503).

Redis keys: none of its own; it reads through :mod:`relier.ops.inspection`,
:mod:`relier.ops.dlq` and :mod:`relier.ops.workers`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from relier.journal.connection import translate_errors
from relier.ops import dlq, inspection
from relier.ops.admin import (
    DlqQuery,
    InflightQuery,
    RelierDeadTask,
    RelierDlqPage,
    RelierHealth,
    RelierInflightTask,
    RelierMetrics,
    RelierPurged,
    RelierReleased,
    RelierStatus,
    RelierTaskDetail,
    RelierWorker,
    StatusQuery,
    parse_query,
    parse_task_id,
    parse_task_ids,
)
from relier.ops.workers import list_workers

if TYPE_CHECKING:
    from relier.hub import Relier

__all__ = ["AdminService", "NotJsonError", "QueryArgs", "body_ids", "to_json"]

QueryArgs = Mapping[str, Sequence[str]]
"""A request's query parameters, each name with all the values it was given."""


class NotJsonError(Exception):
    """Raised when a release or purge body is not JSON at all: a 400."""


def _flat(args: QueryArgs, lists: tuple[str, ...] = ()) -> dict[str, Any]:
    # A repeated parameter is a list only where the model wants one (``queue``);
    # elsewhere the last value wins, as Flask's and Django's ``args[k]`` read it.
    return {k: list(v) if k in lists else v[-1] for k, v in args.items() if v}


def body_ids(raw: bytes) -> list[str]:
    """The ids of a release or purge request's raw body (``{"ids": [...]}``).

    Raises:
        NotJsonError: the body is not JSON.
        InvalidRequest: it is JSON but not such an object.
    """
    body: Any = None
    if raw.strip():
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise NotJsonError(f"the body is not JSON: {exc}") from None
    return parse_task_ids(body)


def to_json(result: BaseModel | Sequence[BaseModel]) -> Any:
    """A response model (or a list of them) as JSON values, for Flask and Django."""
    if isinstance(result, BaseModel):
        return result.model_dump(mode="json")
    return [item.model_dump(mode="json") for item in result]


class AdminService:
    """The admin API over one :class:`~relier.Relier`.

    The ``*_args`` methods take the query parameters as the client sent them
    and validate them here (Flask, Django); FastAPI validates its own
    parameters from its signature and calls the typed methods.
    """

    def __init__(self, relier: Relier) -> None:
        self.relier = relier

    def health(self) -> RelierHealth:
        """Redis answers this process (503 otherwise); workers holding a lease."""
        with translate_errors(self.relier.settings.redis_url):
            started = time.perf_counter()
            self.relier.redis.ping()
            elapsed = (time.perf_counter() - started) * 1000
            alive = sum(1 for w in list_workers(self.relier) if w.alive)
        return RelierHealth(status="ok", redis_ms=round(elapsed, 3), workers_alive=alive)

    def status(self, queues: Sequence[str] = ()) -> RelierStatus:
        """The cluster at a glance: workers, queues, work in flight, DLQ, rates."""
        return RelierStatus.model_validate(inspection.status(self.relier, queues=queues))

    def status_args(self, args: QueryArgs) -> RelierStatus:
        """:meth:`status` of a request's query (``?queue=a&queue=b``)."""
        return self.status(parse_query(StatusQuery, _flat(args, ("queue",))).queue)

    def workers(self) -> list[RelierWorker]:
        """Every listed worker incarnation, oldest first, with the tasks it holds."""
        return [RelierWorker.model_validate(w) for w in inspection.workers(self.relier)]

    def inflight(
        self, queue: str | None = None, task: str | None = None
    ) -> list[RelierInflightTask]:
        """Every task a worker holds (RUNNING or RESERVED), longest-running first."""
        found = inspection.inflight(self.relier, queue=queue, task=task)
        return [RelierInflightTask.model_validate(t) for t in found]

    def inflight_args(self, args: QueryArgs) -> list[RelierInflightTask]:
        """:meth:`inflight` of a request's query."""
        query = parse_query(InflightQuery, _flat(args))
        return self.inflight(queue=query.queue, task=query.task)

    def task(self, task_id: str) -> RelierTaskDetail:
        """One task's journal entry and full history (``task_id`` from a path)."""
        found = inspection.task_detail(self.relier, parse_task_id(task_id))
        return RelierTaskDetail.model_validate(found)

    def dlq(self, query: DlqQuery) -> RelierDlqPage:
        """Dead letter queue entries, newest first, matching every filter given."""
        found = dlq.find_dead(
            self.relier,
            task=query.task,
            reason=None if query.reason is None else query.reason.value,
            since_ms=query.since_ms,
            before_ms=query.before_ms,
            limit=query.limit + 1,
        )
        return RelierDlqPage.model_validate(
            {"entries": found[: query.limit], "truncated": len(found) > query.limit}
        )

    def dlq_args(self, args: QueryArgs) -> RelierDlqPage:
        """:meth:`dlq` of a request's query."""
        return self.dlq(parse_query(DlqQuery, _flat(args)))

    def dead(self, task_id: str) -> RelierDeadTask:
        """One DLQ entry in full: error, traceback, envelope, history."""
        return RelierDeadTask.model_validate(dlq.get_dead(self.relier, parse_task_id(task_id)))

    def release(self, ids: Sequence[str]) -> RelierReleased:
        """Run DLQ entries again: original payload, attempts from 0, a new fence."""
        return RelierReleased.model_validate(dlq.release(self.relier, list(ids)))

    def purge(self, ids: Sequence[str]) -> RelierPurged:
        """Delete DLQ entries for good (journal, history, DLQ entry), each atomically."""
        return RelierPurged.model_validate(dlq.purge(self.relier, list(ids)))

    def metrics(self) -> RelierMetrics:
        """Gauges and last-minute event counts, flat (the numbers of ``/status``)."""
        st = inspection.status(self.relier)
        return RelierMetrics(
            now_ms=st.now_ms,
            workers_alive=st.workers_alive,
            workers_dead=st.workers_dead,
            running=st.running,
            reserved=st.reserved,
            scheduled=st.scheduled,
            overdue=st.overdue,
            retrying=st.retrying,
            dlq=st.dlq,
            queue_depth={q.name: q.depth for q in st.queues},
            events_window_ms=st.rates.window_ms,
            events=st.rates.counts,
            events_per_minute=st.rates.per_minute,
        )

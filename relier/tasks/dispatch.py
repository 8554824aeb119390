"""Pushing calls: one atomic journal-and-publish per task.

Every push runs ``dispatch.lua`` once: the task is journaled and its Celery
message published in the same atomic step (or, with a countdown, journaled
and scheduled). ``push_many`` hands up to 100 calls to each run of that
script, and pipelines up to 10 runs in one round trip. Everything that can
be refused (arguments that are not JSON, an oversized payload) is refused
here, before Redis is touched.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from relier.clock import now_ms
from relier.errors import AdmissionRejectedError, ConfigurationError, IdempotencyConflictError
from relier.journal.connection import translate_errors, translate_errors_async
from relier.journal.envelope import encode_call
from relier.journal.message import message_template, new_delivery_tag, random_uuid
from relier.journal.scripts import NewTask
from relier.journal.states import text
from relier.tasks.handle import TaskHandle
from relier.telemetry import Dispatch, trace_context

if TYPE_CHECKING:
    from relier.hub import Relier
    from relier.tasks.decorator import RlTask

__all__ = ["Call", "CallOptions", "apush", "apush_many", "push", "push_many"]

# One pipeline holds at most this many dispatches: large batches stay one
# round trip per chunk without building one huge reply in Redis.
_CHUNK = 1000
# One dispatch.lua call handles at most this many of them: a call is atomic,
# and Redis serves nobody else while it runs (~3 ms for 100 tasks), while
# each call saves Redis and the client the per-command work of the rest.
_BATCH = 100


@dataclass(frozen=True, slots=True)
class CallOptions:
    """Per-call options, set through ``task.with_options(...)``.

    Attributes:
        countdown: seconds to wait before the task becomes runnable.
        queue: the Celery queue, overriding the task's.
        idempotency_key: carried in the envelope for idempotent tasks.
        task_id: a caller-chosen task id; pushing an id that exists already
            enqueues nothing and returns a handle with ``created=False``.
    """

    countdown: float | None = None
    queue: str | None = None
    idempotency_key: str | None = None
    task_id: str | None = None

    def __post_init__(self) -> None:
        if self.countdown is not None and not self.countdown >= 0:
            raise ConfigurationError(f"countdown must be >= 0 seconds, got {self.countdown!r}")
        if self.queue is not None and not self.queue:
            raise ConfigurationError("queue must be a non-empty name")
        if self.task_id is not None and (not self.task_id or "}" in self.task_id):
            raise ConfigurationError(
                f"task_id must be non-empty and without '}}': {self.task_id!r}"
            )


@dataclass(frozen=True, slots=True)
class Call:
    """One call of a task: arguments plus options (``task.call(...)`` builds it)."""

    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    options: CallOptions = field(default_factory=CallOptions)


def canonical(args: Any, kwargs: Any) -> bytes:
    """The arguments of a call as canonical JSON (sorted keys, no spaces)."""
    return json.dumps(
        [list(args), kwargs], sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode()


def _idempotency(
    task: RlTask[Any, Any], opts: CallOptions, args: Sequence[Any], kwargs: dict[str, Any]
) -> tuple[str, str, str] | None:
    """(key, task id, argument fingerprint) of an idempotent call, else None.

    The task id derives from the task name and the key, so every push of the
    same logical call names the same journal entry and dispatch.lua's "id
    exists" check is the deduplication, atomically.
    """
    if opts.idempotency_key is None and not task.idempotent:
        return None
    if opts.task_id is not None:
        raise ConfigurationError(
            f"{task.name}: an idempotent call's task id derives from its key; do not pass "
            "task_id as well"
        )
    encoded = canonical(args, kwargs)
    fingerprint = hashlib.sha256(encoded).hexdigest()[:32]
    if opts.idempotency_key is not None:
        key = opts.idempotency_key
    elif task.idempotency_key_fn is not None:
        key = str(task.idempotency_key_fn(*args, **kwargs))
    else:
        key = fingerprint
    digest = hashlib.sha256(f"{task.name}\x00{key}".encode()).hexdigest()[:40]
    return key, f"i-{digest}", fingerprint


def _prepare(relier: Relier, task: RlTask[Any, Any], call: Call) -> NewTask:
    """What dispatch.lua is to do for ``call`` (see :meth:`Scripts.dispatch`).

    Everything is checked here, before Redis is touched: the arguments
    against the signature and hints, their JSON form, the payload size.
    """
    opts = call.options
    settings = relier.settings
    args, kwargs = task.validator.to_json(call.args, call.kwargs)
    idem = _idempotency(task, opts, args, kwargs)
    if idem is not None:
        ik, task_id, fingerprint = idem
    else:
        ik, task_id, fingerprint = None, opts.task_id or random_uuid(), ""
    queue = opts.queue or task.queue or _routed(relier, task, call) or settings.default_queue
    now = now_ms()
    keys = settings.signing_keys
    data = encode_call(
        task_id, task.name, args, kwargs, now, task.schema_version, ik, trace_context(),
        max_bytes=settings.max_payload_bytes, key=keys[0] if keys else None,
    )  # fmt: skip
    due = now + round(opts.countdown * 1000) if opts.countdown else 0
    template = message_template(task_id, task.name, queue)
    tag = new_delivery_tag()
    adm = task.admission
    if not adm.active:
        return NewTask(task_id, task.name, queue, data, template, tag, now, due, fingerprint)
    return NewTask(
        task_id, task.name, queue, data, template, tag, now, due, fingerprint,
        rate_bucket=adm.bucket(task.name, args, kwargs) if adm.interval_ms else "",
        interval_ms=adm.interval_ms,
        burst=adm.burst,
        max_depth=adm.max_queue_depth,
        depth_retry_ms=round(settings.depth_retry_after * 1000),
    )  # fmt: skip


def _routed(relier: Relier, task: RlTask[Any, Any], call: Call) -> str | None:
    """The queue Celery's ``task_routes`` give this call, as Celery would route it;
    None without routes or when none matches (then ``RELIER_DEFAULT_QUEUE``).

    Raises:
        ConfigurationError: a matching route names no queue (only an exchange or
            a routing key: Relier publishes to a queue).
    """
    # Celery's own router, cached by Celery with the routes it read when first
    # used: Relier sees the routes Celery's own sending would.
    router = relier.celery_app.amqp.router
    if not router.routes:
        return None
    route = router.lookup_route(task.name, call.args, call.kwargs, {}, None)
    if not route:
        return None
    queue = route if isinstance(route, str) else route.get("queue")
    name = getattr(queue, "name", queue)  # a kombu Queue, or its name
    if not isinstance(name, str) or not name:
        raise ConfigurationError(
            f"task_routes route {task.name} to {route!r}, which names no queue; Relier "
            "publishes to a queue: give the route a 'queue'"
        )
    return name


def _handle(relier: Relier, task: RlTask[Any, Any], prepared: NewTask, reply: Any) -> TaskHandle:
    """The handle for a dispatch reply; raises for a conflict or a rejection."""
    created, state = bool(int(reply[0])), text(reply[1])
    if not created and state == "CONFLICT":
        key = json.loads(prepared.envelope).get("ik", "")
        raise IdempotencyConflictError(task.name, key, prepared.task_id)
    if not created and state == "REJECTED":
        raise AdmissionRejectedError(task.name, int(reply[2]) / 1000, text(reply[3]))
    return TaskHandle(relier, prepared.task_id, task.name, created)


def _collect(
    relier: Relier, task: RlTask[Any, Any], prepared: list[NewTask], replies: list[Any]
) -> list[TaskHandle]:
    """Handles for a batch; one AdmissionRejectedError after it for refused calls."""
    handles: list[TaskHandle | None] = []
    rejected: list[int] = []
    worst: AdmissionRejectedError | None = None
    for index, (item, reply) in enumerate(zip(prepared, replies, strict=True)):
        try:
            handles.append(_handle(relier, task, item, reply))
        except AdmissionRejectedError as exc:
            handles.append(None)
            rejected.append(index)
            if worst is None or exc.retry_after > worst.retry_after:
                worst = exc
    if worst is not None:
        raise AdmissionRejectedError(task.name, worst.retry_after, worst.reason, rejected, handles)
    return [h for h in handles if h is not None]


def _as_calls(calls: Iterable[Call | Sequence[Any]], options: CallOptions) -> list[Call]:
    out = []
    for item in calls:
        if isinstance(item, str | bytes | dict):
            raise ConfigurationError(
                f"push_many takes tuples of positional arguments or task.call(...) items, got "
                f"{type(item).__name__} {item!r:.60}; wrap a single argument as ({item!r:.40},)"
            )
        if isinstance(item, Call):
            out.append(
                item if item.options != CallOptions() else Call(item.args, item.kwargs, options)
            )
        else:
            out.append(Call(tuple(item), {}, options))
    return out


def _batches(prepared: list[NewTask]) -> list[list[NewTask]]:
    return [prepared[i : i + _BATCH] for i in range(0, len(prepared), _BATCH)]


def _flatten(results: list[Any]) -> list[Any]:
    """The per-task replies of a pipeline of batched dispatch.lua calls.

    A batch of several tasks replies with the list of their replies; a batch
    of one, with its reply (whose first element is 0 or 1, not a list).
    """
    replies: list[Any] = []
    for result in results:
        if isinstance(result[0], list):
            replies += result
        else:
            replies.append(result)
    return replies


def push(relier: Relier, task: RlTask[Any, Any], call: Call) -> TaskHandle:
    """Journal and publish one call; returns its handle."""
    with Dispatch(task.name, "push") as telemetry:
        prepared = _prepare(relier, task, call)
        with translate_errors(relier.settings.redis_url):
            reply = relier.scripts.dispatch_raw(prepared)
        telemetry.done([prepared], [reply])
        return _handle(relier, task, prepared, reply)


async def apush(relier: Relier, task: RlTask[Any, Any], call: Call) -> TaskHandle:
    """Async :func:`push` on the running loop's Redis client."""
    with Dispatch(task.name, "push") as telemetry:
        prepared = _prepare(relier, task, call)
        async with translate_errors_async(relier.settings.redis_url):
            reply = await (await relier.ascripts()).dispatch_raw(prepared)
        telemetry.done([prepared], [reply])
        return _handle(relier, task, prepared, reply)


def push_many(
    relier: Relier,
    task: RlTask[Any, Any],
    calls: Iterable[Call | Sequence[Any]],
    options: CallOptions | None = None,
) -> list[TaskHandle]:
    """Push many calls, one pipelined round trip per 1,000 (one script call per
    100 of those); handles in order.

    Every call is validated before anything is sent, so a bad argument in
    the last call enqueues none of them.
    """
    with Dispatch(task.name, "push_many") as telemetry:
        prepared = [_prepare(relier, task, c) for c in _as_calls(calls, options or CallOptions())]
        replies: list[Any] = []
        scripts = relier.scripts
        with translate_errors(relier.settings.redis_url):
            for start in range(0, len(prepared), _CHUNK):
                with relier.redis.pipeline(transaction=False) as pipe:
                    for batch in _batches(prepared[start : start + _CHUNK]):
                        scripts.dispatch_many_in(pipe, batch)
                    replies += _flatten(pipe.execute())
        telemetry.done(prepared, replies)
        return _collect(relier, task, prepared, replies)


async def apush_many(
    relier: Relier,
    task: RlTask[Any, Any],
    calls: Iterable[Call | Sequence[Any]],
    options: CallOptions | None = None,
) -> list[TaskHandle]:
    """Async :func:`push_many`."""
    with Dispatch(task.name, "push_many") as telemetry:
        prepared = [_prepare(relier, task, c) for c in _as_calls(calls, options or CallOptions())]
        replies: list[Any] = []
        scripts = await relier.ascripts()
        async with translate_errors_async(relier.settings.redis_url):
            for start in range(0, len(prepared), _CHUNK):
                async with scripts.client.pipeline(transaction=False) as pipe:
                    for batch in _batches(prepared[start : start + _CHUNK]):
                        await scripts.dispatch_many_in(pipe, batch)
                    replies += _flatten(await pipe.execute())
        telemetry.done(prepared, replies)
        return _collect(relier, task, prepared, replies)

"""``@rl_task``: a plain function becomes a Relier task.

The decorated object is an :class:`RlTask`. Calling it runs the function
locally, as if undecorated; ``push``/``apush`` send it to a worker. Under the
hood each task is a real Celery task (acks_late, JSON, no Celery result
backend) whose only argument is the task id: the worker reads the payload
from the journal.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Concatenate, Generic, ParamSpec, Protocol, TypeVar, cast, overload

from relier import hub as _app
from relier import registry as _registry
from relier.context import TaskContext, wants_context
from relier.errors import ConfigurationError
from relier.registry import CELERY_TIME_LIMIT_MARGIN_S, Migration
from relier.tasks import dispatch
from relier.tasks.admission import Admission
from relier.tasks.dispatch import Call, CallOptions
from relier.tasks.handle import TaskHandle
from relier.tasks.retry import RetryPolicy
from relier.tasks.validation import Validator, check_migrations

__all__ = ["BoundTask", "RlTask", "rl_task"]

P = ParamSpec("P")
R = TypeVar("R")


class _Pusher(Generic[P, R]):
    """push / apush / push_many shared by a task and a task with options."""

    task: RlTask[P, R]
    options: CallOptions

    def hub(self) -> _app.Relier:
        """The :class:`~relier.Relier` this task pushes through: its own, else ``current()``."""
        return self.task.relier or _app.current()

    def push(self, *args: P.args, **kwargs: P.kwargs) -> TaskHandle:
        """Send one call to a worker; returns at once with its handle.

        Works with or without a running event loop (it uses the sync Redis
        client). Raises ``PayloadError`` subclasses for arguments that cannot
        travel and ``RedisUnavailableError`` when Redis is down; nothing is
        enqueued in either case.
        """
        return dispatch.push(self.hub(), self.task, Call(args, kwargs, self.options))

    async def apush(self, *args: P.args, **kwargs: P.kwargs) -> TaskHandle:
        """Async :meth:`push`, native asyncio (redis.asyncio)."""
        return await dispatch.apush(self.hub(), self.task, Call(args, kwargs, self.options))

    def push_many(self, calls: Iterable[Call | Sequence[Any]]) -> list[TaskHandle]:
        """Send many calls in one round trip (per 1,000).

        Each item is a tuple of positional arguments or a ``task.call(...)``.
        """
        return dispatch.push_many(self.hub(), self.task, calls, self.options)

    async def apush_many(self, calls: Iterable[Call | Sequence[Any]]) -> list[TaskHandle]:
        """Async :meth:`push_many`."""
        return await dispatch.apush_many(self.hub(), self.task, calls, self.options)


class BoundTask(_Pusher[P, R]):
    """A task plus per-call options; made by :meth:`RlTask.with_options`."""

    def __init__(self, task: RlTask[P, R], options: CallOptions) -> None:
        self.task = task
        self.options = options


class RlTask(_Pusher[P, R]):
    """A function registered as a Relier task (made by :func:`rl_task`).

    Attributes:
        name: the registered name (``module.qualname`` unless given).
        fn: the wrapped function.
        is_async: whether ``fn`` is a coroutine function.
        queue: the task's default queue (``None``: ``RELIER_DEFAULT_QUEUE``).
        retry: the retry policy.
        schema_version: the argument schema version calls are made for.
        migrations: ``{from_version: function}``, sorted; empty when none.
        celery_task: the Celery task that runs it on workers.
    """

    def __init__(
        self,
        fn: Callable[P, R],
        *,
        name: str | None = None,
        queue: str | None = None,
        retry: RetryPolicy | None = None,
        schema_version: int = 1,
        migrations: Mapping[int, Migration] | None = None,
        celery_app: Any = None,
        relier: _app.Relier | None = None,
        idempotent: bool = False,
        idempotency_key: Callable[..., Any] | None = None,
        idempotency_ttl: float | None = None,
        admission: Admission | None = None,
        max_concurrency: int | None = None,
        soft_timeout: float | None = None,
        hard_timeout: float | None = None,
        on_soft_timeout: Callable[[TaskContext], Any] | None = None,
    ) -> None:
        if not callable(fn):
            raise ConfigurationError(f"@rl_task needs a function, got {fn!r}")
        self.migrations = check_migrations(
            name or f"{fn.__module__}.{fn.__qualname__}", schema_version, migrations
        )
        if idempotency_key is not None and not callable(idempotency_key):
            raise ConfigurationError(
                f"key= must be a callable over the arguments, got {idempotency_key!r}"
            )
        if idempotency_ttl is not None and idempotency_ttl <= 0:
            raise ConfigurationError(f"idempotency_ttl must be > 0 seconds, got {idempotency_ttl}")
        if max_concurrency is not None and (
            isinstance(max_concurrency, bool)
            or not isinstance(max_concurrency, int)
            or max_concurrency < 1
        ):
            raise ConfigurationError(
                f"max_concurrency must be an int >= 1, got {max_concurrency!r}"
            )
        _check_timeouts(soft_timeout, hard_timeout, on_soft_timeout)
        self.max_concurrency = max_concurrency
        self.soft_timeout = soft_timeout
        self.hard_timeout = hard_timeout
        self.on_soft_timeout = on_soft_timeout
        self.idempotent = idempotent or idempotency_key is not None
        self.idempotency_key_fn = idempotency_key
        self.idempotency_ttl = idempotency_ttl
        self.admission = admission or Admission()
        self.fn = fn
        self.task = self
        self.options = CallOptions()
        self.name = name or f"{fn.__module__}.{fn.__qualname__}"
        self.queue = queue
        self.retry = retry or RetryPolicy()
        self.schema_version = schema_version
        self.relier = relier
        self.is_async = inspect.iscoroutinefunction(fn)
        self.takes_context = wants_context(fn)
        self.validator = Validator(fn, self.name, skip_first=self.takes_context)
        self.qualified_source = f"{fn.__module__}.{fn.__qualname__}"
        if name is None and fn.__name__ == "<lambda>":
            raise ConfigurationError(
                "@rl_task on a lambda needs name=...: lambdas have no name of their own"
            )
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn
        previous = _registry.registry().get(self.name)
        _registry.register(self)
        if previous is not None and celery_app is None:
            # The same task defined again (importlib.reload): the Celery
            # task already runs whatever the registry holds under this name.
            self.celery_task: Any = previous.celery_task
        else:
            self.celery_task = self._register_with_celery(celery_app)

    def _register_with_celery(self, celery_app: Any) -> Any:
        name = self.name

        def run(celery_task: Any, *args: Any, **kwargs: Any) -> None:
            # Imported on the first run, in a worker: a process that only pushes
            # never loads the worker runtime (tests/test_producer.py).
            from relier.worker.executor import execute

            # Looked up at run time, so a redefined task runs its newest code.
            execute(_registry.lookup(name), celery_task.request, args, kwargs)

        run.__name__ = self.fn.__name__ if self.fn.__name__.isidentifier() else "run"
        run.__module__ = self.fn.__module__
        options = {
            "name": self.name,
            "bind": True,
            "acks_late": True,
            "ignore_result": True,
            # Celery must not check arguments: a malformed message has to
            # reach Relier so it is dead-lettered with a reason, not dropped.
            "typing": False,
            "serializer": "json",
            "reject_on_worker_lost": False,
        }
        if self.hard_timeout is not None:
            # The last resort, for code holding the GIL so that Relier's own
            # watchdog thread cannot run: Celery's prefork pool then kills the
            # process from outside, which Relier sees as a crash.
            options["time_limit"] = self.hard_timeout + CELERY_TIME_LIMIT_MARGIN_S
        # Imported here, as celery itself: a process that imports relier and
        # defines no task does not load them.
        from relier.tasks.celery_task import RelierCeleryTask

        # Celery's own ways of sending (delay, apply_async, signatures) go
        # journal-first through this class, and its results read the journal.
        options["base"] = RelierCeleryTask
        if celery_app is not None:
            # shared=False: registered with this app only, as app= promises.
            return celery_app.task(shared=False, **options)(run)
        from celery import shared_task

        return shared_task(**options)(run)

    def __repr__(self) -> str:
        return f"<RlTask {self.name}>"

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run the function here and now, as if it were not decorated.

        A task that takes a context gets a local one (attempt 1, fence 0,
        checkpoints kept in memory).
        """
        if self.takes_context:
            ctx = TaskContext(task_id="local", task_name=self.name, attempt=1, fence=0)
            return self.fn(ctx, *args, **kwargs)  # type: ignore[arg-type]
        return self.fn(*args, **kwargs)

    def call(self, *args: P.args, **kwargs: P.kwargs) -> Call:
        """One call for :meth:`push_many`, with keyword arguments."""
        return Call(args, kwargs)

    # -- Celery's calling API, journal-first (relier.tasks.celery_task) ------

    def delay(self, *args: P.args, **kwargs: P.kwargs) -> Any:
        """Celery's ``delay``: :meth:`push`, returning a Celery ``AsyncResult``."""
        return self.apply_async(args, kwargs)

    def apply_async(
        self,
        args: Sequence[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        **options: Any,
    ) -> Any:
        """Celery's ``apply_async`` (``countdown``, ``eta``, ``queue``, ``task_id``, ...),
        journal-first; a Celery ``AsyncResult`` that reads the journal."""
        # What celery_task.apply_async does, without going through its proxy twice.
        from relier.tasks.celery_task import send

        celery_task = self.celery_task
        enable_utc = lambda: bool(celery_task._get_app().conf.enable_utc)  # noqa: E731
        task_id = send(self, args, kwargs, options, enable_utc)
        return celery_task.AsyncResult(task_id)

    def signature(self, args: Sequence[Any] | None = None, *starargs: Any, **options: Any) -> Any:
        """Celery's ``signature``: its ``apply_async`` and ``delay`` go journal-first."""
        return self.celery_task.signature(args, *starargs, **options)

    def s(self, *args: Any, **kwargs: Any) -> Any:
        """Celery's ``s``: a signature of this call, or of its first arguments
        (a partial: ``add.s(1).delay(2)``)."""
        return self.celery_task.s(*args, **kwargs)

    def AsyncResult(self, task_id: str) -> Any:
        """Celery's ``AsyncResult`` of a task id, read from the journal."""
        return self.celery_task.AsyncResult(task_id)

    def si(self, *args: Any, **kwargs: Any) -> Any:
        """Celery's ``si``: an immutable signature of this call."""
        return self.celery_task.si(*args, **kwargs)

    def with_options(
        self,
        *,
        countdown: float | None = None,
        queue: str | None = None,
        idempotency_key: str | None = None,
        task_id: str | None = None,
    ) -> BoundTask[P, R]:
        """This task with per-call options: ``task.with_options(countdown=5).push(x)``."""
        return BoundTask(
            self,
            CallOptions(
                countdown=countdown, queue=queue, idempotency_key=idempotency_key, task_id=task_id
            ),
        )


def _check_timeouts(
    soft: float | None, hard: float | None, hook: Callable[..., Any] | None
) -> None:
    for label, value in (("soft_timeout", soft), ("hard_timeout", hard)):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int | float) or not value > 0
        ):
            raise ConfigurationError(f"{label} must be a number of seconds > 0, got {value!r}")
    if soft is not None and hard is not None and soft >= hard:
        raise ConfigurationError(
            f"soft_timeout ({soft} s) must be shorter than hard_timeout ({hard} s): "
            "the soft one warns before the hard one stops the task"
        )
    if hook is not None and not callable(hook):
        raise ConfigurationError(f"on_soft_timeout must be a callable, got {hook!r}")
    if hook is not None and soft is None:
        raise ConfigurationError("on_soft_timeout needs soft_timeout=<seconds> to ever be called")


class _Decorator(Protocol):
    """What ``rl_task(...)`` with options returns: the decorator itself."""

    @overload
    def __call__(self, fn: Callable[Concatenate[TaskContext, P], R], /) -> RlTask[P, R]: ...
    @overload
    def __call__(self, fn: Callable[P, R], /) -> RlTask[P, R]: ...


# A task whose first parameter is ``ctx: TaskContext`` is pushed without it:
# these overloads make type checkers see push(...) take the other parameters.
@overload
def rl_task(fn: Callable[Concatenate[TaskContext, P], R], /) -> RlTask[P, R]: ...


@overload
def rl_task(fn: Callable[P, R], /) -> RlTask[P, R]: ...


@overload
def rl_task(
    *,
    name: str | None = None,
    queue: str | None = None,
    max_retries: int | None = None,
    retry_on: tuple[type[BaseException], ...] = (Exception,),
    retry_backoff: float | None = None,
    retry_backoff_max: float | None = None,
    retry_jitter: bool | None = None,
    schema_version: int = 1,
    migrations: Mapping[int, Migration] | None = None,
    app: Any = None,
    idempotent: bool = False,
    key: Callable[..., Any] | None = None,
    idempotency_ttl: float | None = None,
    rate_limit: str | None = None,
    rate_burst: int = 1,
    rate_key: Callable[..., Any] | None = None,
    max_queue_depth: int | None = None,
    max_concurrency: int | None = None,
    soft_timeout: float | None = None,
    hard_timeout: float | None = None,
    on_soft_timeout: Callable[[TaskContext], Any] | None = None,
) -> _Decorator: ...


def rl_task(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    queue: str | None = None,
    max_retries: int | None = None,
    retry_on: tuple[type[BaseException], ...] = (Exception,),
    retry_backoff: float | None = None,
    retry_backoff_max: float | None = None,
    retry_jitter: bool | None = None,
    schema_version: int = 1,
    migrations: Mapping[int, Migration] | None = None,
    app: Any = None,
    idempotent: bool = False,
    key: Callable[..., Any] | None = None,
    idempotency_ttl: float | None = None,
    rate_limit: str | None = None,
    rate_burst: int = 1,
    rate_key: Callable[..., Any] | None = None,
    max_queue_depth: int | None = None,
    max_concurrency: int | None = None,
    soft_timeout: float | None = None,
    hard_timeout: float | None = None,
    on_soft_timeout: Callable[[TaskContext], Any] | None = None,
) -> RlTask[Any, Any] | _Decorator:
    """Make ``fn`` (sync or async) a Relier task; usable bare or with options.

    Args:
        name: registered name; defaults to ``module.qualname``.
        queue: Celery queue; defaults to ``RELIER_DEFAULT_QUEUE``.
        max_retries: retries after the first attempt (default
            ``RELIER_MAX_RETRIES``); then the task goes to the DLQ.
        retry_on: exception classes that are retried; any other exception
            sends the task to the DLQ at once (reason ``not_retryable``).
        retry_backoff: base of the exponential backoff, in seconds.
        retry_backoff_max: longest delay between attempts, in seconds.
        retry_jitter: draw each delay uniformly from [0, backoff].
        schema_version: the version of the task's argument schema (an int >=
            1), recorded in every call. Bump it when the arguments change: a
            worker whose code has an older version defers a newer call (back
            to PENDING, re-scheduled with backoff, no retry used up) for the
            newer workers of a rolling deploy, and dead-letters it with reason
            ``schema_too_new`` after ``RELIER_SCHEMA_DEFER_MAX`` seconds.
        migrations: ``{k: function}`` for ``k`` = 1 to ``schema_version - 1``
            exactly: ``migrations[k]`` turns a version-``k`` call
            ``{"args": [...], "kwargs": {...}}`` into a version-``k+1`` call of
            the same shape. A worker migrates an older call step by step
            before running it; a step that raises sends the task to the DLQ
            with reason ``migration_failed``. Without migrations, older calls
            run as they are.
        app: the Celery app to register with; by default the task is
            registered with every Celery app (like ``shared_task``).
        idempotent: the same logical call (same key) runs to a successful
            commit at most once within ``idempotency_ttl``: a duplicate push
            while it is pending or running gets its handle, one after success
            gets its result, one after it died in the DLQ runs it anew. The
            key defaults to the task name plus the canonical JSON of the
            arguments.
        key: a callable over the call's arguments returning the idempotency
            key (implies ``idempotent=True``), e.g. ``lambda order_id, **_:
            order_id``.
        idempotency_ttl: seconds a succeeded idempotent call (and its result)
            is remembered; default ``RELIER_RESULT_TTL``.
        rate_limit: the most calls pushed per time unit, cluster-wide:
            ``"100/s"``, ``"30/m"``, ``"5/h"``. A push over it raises
            ``AdmissionRejectedError`` with ``retry_after`` and enqueues
            nothing.
        rate_burst: how many calls may be pushed at once before the rate
            spacing applies (default 1: evenly spaced).
        rate_key: a callable over the arguments naming a separate limit per
            value, e.g. ``lambda tenant, **_: tenant`` for a limit per tenant.
        max_queue_depth: refuse pushes while the task's queue holds this many
            messages (``retry_after`` is ``RELIER_DEPTH_RETRY_AFTER``).
        max_concurrency: the most attempts of this task running at once
            across the whole cluster. A delivery over the limit waits (the
            task stays PENDING) and is re-published when a slot frees; the
            slots of a worker that dies come back when its tasks are
            resurrected.
        soft_timeout: seconds after an attempt starts when
            ``on_soft_timeout(ctx)`` is called (sync or async), while the
            task keeps running.
        hard_timeout: seconds after which an attempt is stopped
            unconditionally (async: cancelled, and its process replaced if it
            ignores the cancellation; sync: its pool process is replaced). It
            counts as a failure (``HardTimeoutError``): retried by the retry
            policy, then dead-lettered with reason ``hard_timeout``.
        on_soft_timeout: the soft-timeout hook; it gets the task's
            :class:`TaskContext` and may ``ctx.checkpoint(...)``.

    Raises:
        ConfigurationError: an option is invalid or the name is taken.
    """
    if isinstance(retry_on, type):
        retry_on = (retry_on,)
    admission = Admission.build(rate_limit, rate_burst, rate_key, max_queue_depth)
    policy = RetryPolicy(
        max_retries=max_retries,
        retry_on=tuple(retry_on),
        backoff=retry_backoff,
        backoff_max=retry_backoff_max,
        jitter=retry_jitter,
    )

    def decorate(func: Callable[..., Any]) -> RlTask[Any, Any]:
        return RlTask(
            func,
            name=name,
            queue=queue,
            retry=policy,
            schema_version=schema_version,
            migrations=migrations,
            celery_app=app,
            idempotent=idempotent,
            idempotency_key=key,
            idempotency_ttl=idempotency_ttl,
            admission=admission,
            max_concurrency=max_concurrency,
            soft_timeout=soft_timeout,
            hard_timeout=hard_timeout,
            on_soft_timeout=on_soft_timeout,
        )

    if fn is not None:
        return decorate(fn)
    return cast(_Decorator, decorate)

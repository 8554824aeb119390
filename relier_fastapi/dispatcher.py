"""The app's Relier: opened in the lifespan, handed to endpoints as a dispatcher.

:func:`relier_lifespan` puts one :class:`~relier.Relier` on ``app.state``
for the life of the application, opens its Redis clients on startup (so a
Redis that cannot be reached stops the app from starting, with the URL in
the error) and closes them on shutdown. :func:`relier_dispatcher` is the
dependency that hands endpoints a :class:`Dispatcher` bound to it.

State: ``app.state.relier`` and ``app.state.relier_dispatcher``, set while
the lifespan runs. Redis keys: none of its own.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any, ParamSpec, TypeVar

import anyio.to_thread
from starlette.applications import Starlette
from starlette.requests import HTTPConnection

from relier import (
    BoundTask,
    Call,
    ConfigurationError,
    Relier,
    RelierSettings,
    RlTask,
    TaskHandle,
    current,
)
from relier.journal.connection import translate_errors, translate_errors_async
from relier.tasks.dispatch import apush, apush_many

__all__ = ["Dispatcher", "relier_dispatcher", "relier_lifespan", "relier_of"]

P = ParamSpec("P")
R = TypeVar("R")

_STATE = "relier"
_DISPATCHER = "relier_dispatcher"


class Dispatcher:
    """Pushes tasks with the app's :class:`~relier.Relier` (its settings and Redis clients).

    Get one with ``Depends(relier_dispatcher)``. Pushing through it rather
    than ``task.apush`` makes the task use the app's settings whatever the
    process-wide default is, and the Redis clients the lifespan opened.

    Attributes:
        relier: the app's Relier.
    """

    __slots__ = ("relier",)

    def __init__(self, relier: Relier) -> None:
        self.relier = relier

    def __repr__(self) -> str:
        return f"<Dispatcher key_prefix={self.relier.settings.key_prefix!r}>"

    async def push(
        self, task: RlTask[P, R] | BoundTask[P, R], /, *args: P.args, **kwargs: P.kwargs
    ) -> TaskHandle:
        """Journal and publish one call of ``task``; returns its handle at once.

        ``task`` may carry options: ``dispatcher.push(send.with_options(countdown=5), x)``.

        Raises:
            AdmissionRejectedError: the task's rate limit or queue-depth cap
                refused the call (with :class:`AdmissionMiddleware` in place,
                the request ends in 429).
            PayloadError: the arguments cannot travel (nothing is enqueued).
            RedisUnavailableError: Redis cannot be reached.
        """
        return await apush(self.relier, task.task, Call(args, kwargs, task.options))

    async def push_many(
        self, task: RlTask[P, R] | BoundTask[P, R], calls: Iterable[Call | Sequence[Any]], /
    ) -> list[TaskHandle]:
        """Push many calls in one round trip per 1,000 (see ``RlTask.push_many``)."""
        return await apush_many(self.relier, task.task, calls, task.options)

    def handle(self, task_id: str, task_name: str = "") -> TaskHandle:
        """A handle for a task pushed earlier (an id from a previous request), to
        await its ``astate()`` or ``aresult()``."""
        return TaskHandle(self.relier, task_id, task_name, created=False)


@contextlib.asynccontextmanager
async def relier_lifespan(
    app: Starlette, relier: Relier | None = None, *, settings: RelierSettings | None = None
) -> AsyncIterator[None]:
    """Open Relier for the app's life: usable as ``FastAPI(lifespan=relier_lifespan)``,
    or entered from your own lifespan with ``async with relier_lifespan(app):``.

    On startup it sets ``app.state.relier``, opens the async Redis client of
    the server's event loop and the sync one (the admin API's queries run in
    the thread pool), and checks that Redis answers. On shutdown it closes
    both and removes the state.

    Args:
        app: the FastAPI (or Starlette) application.
        relier: the Relier to use; by default a new one built from
            ``settings``, or the process-wide :func:`relier.current` (the one
            ``relier.bind(celery_app)`` made) when no settings are given.
        settings: settings for a new Relier (``RELIER_*`` when omitted).

    Raises:
        ConfigurationError: both ``relier`` and ``settings`` were given, or
            the lifespan is already running for this app.
        RedisUnavailableError: Redis did not answer on startup.
    """
    if relier is not None and settings is not None:
        raise ConfigurationError(
            "relier_lifespan takes a Relier or settings to build one from, not both"
        )
    state = app.state
    if getattr(state, _STATE, None) is not None:
        raise ConfigurationError(
            "relier_lifespan is already running for this app; enter it once, in the app's lifespan"
        )
    instance = relier or (Relier(settings) if settings is not None else current())
    try:
        async with translate_errors_async(instance.settings.redis_url):
            client = await instance.connections.for_loop()
            await client.ping()
        # Building the key names imports Celery and builds its app: do it now,
        # off the event loop, rather than in the first request.
        await anyio.to_thread.run_sync(_open_sync, instance)
        setattr(state, _STATE, instance)
        setattr(state, _DISPATCHER, Dispatcher(instance))
        yield
    finally:
        for name in (_DISPATCHER, _STATE):
            if getattr(state, name, None) is not None:
                delattr(state, name)
        await instance.aclose()
        await anyio.to_thread.run_sync(instance.close)


def _open_sync(relier: Relier) -> None:
    with translate_errors(relier.settings.redis_url):
        relier.redis.ping()
    relier.keys  # noqa: B018 - builds and caches the key names (and the Celery app)


def relier_of(connection: HTTPConnection) -> Relier:
    """The Relier :func:`relier_lifespan` put on the request's app.

    Raises:
        ConfigurationError: the app runs without ``relier_lifespan``.
    """
    relier = getattr(connection.app.state, _STATE, None)
    if relier is None:
        raise ConfigurationError(
            "this app has no Relier: give it relier_lifespan (FastAPI(lifespan=relier_lifespan), "
            "or `async with relier_lifespan(app):` inside your own lifespan)"
        )
    if not isinstance(relier, Relier):
        raise ConfigurationError(f"app.state.relier is {relier!r}, not a relier.Relier")
    return relier


def relier_dispatcher(connection: HTTPConnection) -> Dispatcher:
    """FastAPI dependency: the app's :class:`Dispatcher`.

    Use it as ``dispatcher: Dispatcher = Depends(relier_dispatcher)``.

    Raises:
        ConfigurationError: the app runs without :func:`relier_lifespan`.
    """
    relier_of(connection)
    dispatcher: Dispatcher = getattr(connection.app.state, _DISPATCHER)
    return dispatcher

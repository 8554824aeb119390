"""Redis clients, and the boundary where redis-py errors become ours.

One sync client per process (redis-py's pool re-creates its connections
after ``fork``, so prefork pool children are safe; the two script calls of
every task run, claim and complete, use a connection of the calling
thread's own instead, see ``Scripts._direct``) and one asyncio client per
event loop: an asyncio connection belongs to the loop that opened it, and a
producer may run several loops over its life (``asyncio.run`` twice, test
suites, a thread with its own loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from urllib.parse import urlsplit, urlunsplit

import redis
import redis.asyncio
import redis.exceptions

from relier.config import RelierSettings
from relier.errors import RedisFullError, RedisUnavailableError

__all__ = ["Connections", "redact", "translate_errors", "translate_errors_async"]


def redact(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for messages and logs)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = f"{parts.username}:" if parts.username else ":"
    return urlunsplit(parts._replace(netloc=f"{user}***@{netloc}"))


_UNAVAILABLE = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


def _unavailable(url: str, exc: BaseException) -> RedisUnavailableError:
    return RedisUnavailableError(
        f"Redis at {redact(url)} is unreachable ({exc}); check that it runs and that "
        "RELIER_REDIS_URL points at it"
    )


def _full(url: str, exc: BaseException) -> RedisFullError:
    return RedisFullError(
        f"Redis at {redact(url)} refused the write: it is at its maxmemory limit ({exc}); "
        "nothing was enqueued. Free memory (raise maxmemory, purge the DLQ, lower "
        "RELIER_RESULT_TTL) and try again"
    )


@contextlib.contextmanager
def translate_errors(url: str) -> Iterator[None]:
    """Turn redis-py connection failures into :class:`RedisUnavailableError`, and
    Redis's out-of-memory refusal into :class:`RedisFullError`."""
    try:
        yield
    except _UNAVAILABLE as exc:
        raise _unavailable(url, exc) from exc
    except redis.exceptions.OutOfMemoryError as exc:
        raise _full(url, exc) from exc


@contextlib.asynccontextmanager
async def translate_errors_async(url: str) -> AsyncIterator[None]:
    """Async twin of :func:`translate_errors`."""
    try:
        yield
    except _UNAVAILABLE as exc:
        raise _unavailable(url, exc) from exc
    except redis.exceptions.OutOfMemoryError as exc:
        raise _full(url, exc) from exc


class Connections:
    """Lazily opened clients for one settings object."""

    def __init__(self, settings: RelierSettings) -> None:
        self.settings = settings
        self._sync: redis.Redis | None = None
        self._async: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, tuple[redis.asyncio.Redis, AsyncGenerator[None, None]]
        ] = weakref.WeakKeyDictionary()

    def _options(self) -> dict[str, object]:
        return {
            "socket_timeout": self.settings.socket_timeout,
            "socket_connect_timeout": self.settings.socket_connect_timeout,
            "health_check_interval": 30,
            "client_name": "relier",
        }

    @property
    def sync(self) -> redis.Redis:
        """The process's sync client."""
        if self._sync is None:
            self._sync = redis.Redis.from_url(self.settings.redis_url, **self._options())
        return self._sync

    async def for_loop(self) -> redis.asyncio.Redis:
        """The asyncio client of the running event loop.

        The client closes itself when the loop shuts down: a keeper async
        generator is registered with the loop, and ``asyncio.run`` (and
        uvicorn, and any runner that calls ``loop.shutdown_asyncgens()``)
        finalises it before closing the loop.
        """
        loop = asyncio.get_running_loop()
        entry = self._async.get(loop)
        if entry is None:
            client = redis.asyncio.Redis.from_url(self.settings.redis_url, **self._options())  # type: ignore[arg-type]
            keeper = _close_on_loop_shutdown(client, lambda: self._async.pop(loop, None))
            await keeper.__anext__()
            entry = (client, keeper)
            self._async[loop] = entry
        return entry[0]

    def close(self) -> None:
        """Close the sync client (async ones close with :meth:`aclose`)."""
        if self._sync is not None:
            self._sync.close()
            self._sync = None

    async def aclose(self) -> None:
        """Close the running loop's async client."""
        entry = self._async.pop(asyncio.get_running_loop(), None)
        if entry is not None:
            await entry[1].aclose()


async def _close_on_loop_shutdown(
    client: redis.asyncio.Redis, forget: Callable[[], object]
) -> AsyncGenerator[None, None]:
    try:
        yield
        await asyncio.Event().wait()  # never resumed: only closed
    finally:
        # Forget first: the entry's client refers to the loop, which would
        # otherwise keep the finished loop (a weak key) alive forever.
        forget()
        await client.aclose()

"""``idempotency_lock``: one holder at a time for code outside tasks.

A lock is the key ``rl:lock:{<key>}`` holding a random holder token, with a
TTL so a holder that dies cannot keep it for ever. Each acquisition also
hands out a **fence**, a number strictly larger than every earlier holder's
(``rl:lock:{<key>}:fence``): make your writes conditional on it
(``... WHERE fence < :fence``) and a holder whose lock expired while it
stalled cannot overwrite its successor's work. Release and extension check
the token, so nobody ever releases a lock someone else holds now.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from types import TracebackType
from typing import TYPE_CHECKING

from relier.errors import ConfigurationError, LockNotAcquiredError
from relier.hub import current
from relier.journal.connection import translate_errors, translate_errors_async

if TYPE_CHECKING:
    from relier.hub import Relier

__all__ = ["IdempotencyLock", "idempotency_lock"]

log = logging.getLogger("relier.locks")


class IdempotencyLock:
    """A fenced lock; use it with ``with`` or ``async with``.

    Attributes:
        key: the lock's name.
        fence: this holder's fence token (set once acquired).
        lost: ``True`` when the release found the lock expired and possibly
            taken by someone else: the work done under it was not exclusive.
    """

    def __init__(self, key: str, ttl: float, wait: float, relier: Relier | None) -> None:
        if not key or "}" in key:
            raise ConfigurationError(f"lock key must be non-empty and without '}}': {key!r}")
        if ttl <= 0 or wait < 0:
            raise ConfigurationError(f"lock ttl must be > 0 and wait >= 0 (got {ttl}, {wait})")
        self.key = key
        self.ttl_ms = max(1, round(ttl * 1000))
        self.wait = wait
        self._relier = relier
        self.token = secrets.token_hex(16)
        self.fence = 0
        self.lost = False

    def _r(self) -> Relier:
        return self._relier or current()

    def _pause(self, held_ms: int, deadline: float) -> float:
        """Seconds to sleep before the next try, or raise when out of time."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise LockNotAcquiredError(self.key, -held_ms / 1000)
        return min(remaining, max(-held_ms / 1000, 0.005), 0.05)

    # -- sync ------------------------------------------------------------
    def acquire(self) -> int:
        """Take the lock, waiting up to ``wait`` seconds; returns the fence."""
        r = self._r()
        deadline = time.monotonic() + self.wait
        with translate_errors(r.settings.redis_url):
            while True:
                got = r.scripts.lock_acquire(self.key, self.token, self.ttl_ms)
                if got > 0:
                    self.fence = got
                    return got
                time.sleep(self._pause(got, deadline))

    def extend(self, ttl: float | None = None) -> bool:
        """Reset the lock's TTL (to ``ttl`` seconds); False if it was lost."""
        r = self._r()
        ms = self.ttl_ms if ttl is None else max(1, round(ttl * 1000))
        with translate_errors(r.settings.redis_url):
            return r.scripts.lock_release(self.key, self.token, ms)

    def release(self) -> None:
        """Give the lock back (only if still held; else ``lost`` is set)."""
        r = self._r()
        with translate_errors(r.settings.redis_url):
            self.lost = not r.scripts.lock_release(self.key, self.token, 0)
        if self.lost:
            log.warning("relier: idempotency lock %r expired before it was released", self.key)

    def __enter__(self) -> IdempotencyLock:
        self.acquire()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()

    # -- async -----------------------------------------------------------
    async def aacquire(self) -> int:
        """Async :meth:`acquire`."""
        r = self._r()
        deadline = time.monotonic() + self.wait
        scripts = await r.ascripts()
        async with translate_errors_async(r.settings.redis_url):
            while True:
                got = await scripts.lock_acquire(self.key, self.token, self.ttl_ms)
                if got > 0:
                    self.fence = got
                    return got
                await asyncio.sleep(self._pause(got, deadline))

    async def aextend(self, ttl: float | None = None) -> bool:
        """Async :meth:`extend`."""
        r = self._r()
        ms = self.ttl_ms if ttl is None else max(1, round(ttl * 1000))
        scripts = await r.ascripts()
        async with translate_errors_async(r.settings.redis_url):
            return await scripts.lock_release(self.key, self.token, ms)

    async def arelease(self) -> None:
        """Async :meth:`release`."""
        r = self._r()
        scripts = await r.ascripts()
        async with translate_errors_async(r.settings.redis_url):
            self.lost = not await scripts.lock_release(self.key, self.token, 0)
        if self.lost:
            log.warning("relier: idempotency lock %r expired before it was released", self.key)

    async def __aenter__(self) -> IdempotencyLock:
        await self.aacquire()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.arelease()


def idempotency_lock(
    key: str, ttl: float, *, wait: float = 0.0, relier: Relier | None = None
) -> IdempotencyLock:
    """A fenced, expiring lock named ``key``, for ``with`` or ``async with``.

    Args:
        key: the lock's name, e.g. ``f"charge:{order_id}"``.
        ttl: seconds after which the lock frees itself if never released.
        wait: seconds to wait for a held lock before giving up.
        relier: the instance to use (default: :func:`relier.current`).

    Raises:
        LockNotAcquiredError: still held by someone else after ``wait``.
        RedisUnavailableError: Redis cannot be reached.

    Example::

        with relier.idempotency_lock(f"refund:{order_id}", ttl=30) as lock:
            db.execute("UPDATE orders SET refunded = true, fence = %s "
                       "WHERE id = %s AND fence < %s", (lock.fence, order_id, lock.fence))
    """
    return IdempotencyLock(key, ttl, wait, relier)

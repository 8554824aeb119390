"""Admission control: cluster-wide rate limits and queue-depth caps.

The decision is made inside ``dispatch.lua``, in the same atomic call that
journals and publishes, so any number of producers share one limit exactly
and a rejected call changes nothing. The rate limiter is GCRA (the
"generic cell rate algorithm"): one key per limit holds the theoretical
arrival time of the next call; a call is admitted when that time is at most
``(burst - 1) * interval`` ahead of now. It needs one small key per limit
(no per-call bookkeeping), spaces calls evenly, and says exactly how long
until the next call would be admitted: that is the ``retry_after`` of
:class:`~relier.errors.AdmissionRejectedError`, and the HTTP adapters'
``Retry-After``.

:func:`admit` and :func:`aadmit` take a call from a named limit without
pushing anything (``admit.lua``, the same GCRA): the web adapters' per-route
limits use them.

Keys: ``rl:rate:<task>`` or ``rl:rate:<task>:<rate key>``, and ``rl:rate:<name>``
of :func:`admit` (string, PX about one interval).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from relier.errors import AdmissionRejectedError, ConfigurationError
from relier.journal.connection import translate_errors, translate_errors_async

if TYPE_CHECKING:
    from relier.hub import Relier

__all__ = ["Admission", "aadmit", "admit", "parse_rate"]

_UNITS = {"s": 1_000.0, "m": 60_000.0, "h": 3_600_000.0}
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(s|m|h)\s*$")


def parse_rate(rate: str) -> float:
    """Milliseconds between calls for a rate like ``"100/s"``, ``"30/m"``, ``"5/h"``.

    Raises:
        ConfigurationError: not of that form, or zero.
    """
    match = _RATE.match(rate)
    if match is None or float(match.group(1)) <= 0:
        raise ConfigurationError(
            f"rate_limit {rate!r} is not a rate: write it as N/s, N/m or N/h (e.g. '100/s')"
        )
    return _UNITS[match.group(2)] / float(match.group(1))


@dataclass(frozen=True, slots=True)
class Admission:
    """A task's admission options."""

    interval_ms: float = 0.0
    burst: int = 1
    rate_key: Callable[..., Any] | None = None
    max_queue_depth: int = 0

    @classmethod
    def build(
        cls,
        rate_limit: str | None,
        rate_burst: int,
        rate_key: Callable[..., Any] | None,
        max_queue_depth: int | None,
    ) -> Admission:
        if rate_burst < 1:
            raise ConfigurationError(f"rate_burst must be >= 1, got {rate_burst}")
        if max_queue_depth is not None and max_queue_depth < 1:
            raise ConfigurationError(f"max_queue_depth must be >= 1, got {max_queue_depth}")
        if rate_key is not None and (rate_limit is None or not callable(rate_key)):
            raise ConfigurationError("rate_key= needs rate_limit= and must be a callable")
        return cls(
            interval_ms=parse_rate(rate_limit) if rate_limit is not None else 0.0,
            burst=rate_burst,
            rate_key=rate_key,
            max_queue_depth=max_queue_depth or 0,
        )

    @property
    def active(self) -> bool:
        return self.interval_ms > 0 or self.max_queue_depth > 0

    def bucket(self, task_name: str, args: Any, kwargs: Any) -> str:
        """The rate limit's name for a call: the task's, or the task's per key."""
        if self.rate_key is None:
            return task_name
        key = str(self.rate_key(*args, **kwargs))
        if "}" in key or "{" in key:
            raise ConfigurationError(f"rate_key returned {key!r}; braces are not allowed")
        return f"{task_name}:{key}"


def _check_limit(name: str, interval_ms: float, burst: int) -> None:
    if not name or "{" in name or "}" in name:
        raise ConfigurationError(f"rate limit name {name!r} must be non-empty, without braces")
    if not interval_ms > 0:
        raise ConfigurationError(f"a rate limit's interval must be > 0 ms, got {interval_ms!r}")
    if burst < 1:
        raise ConfigurationError(f"rate_burst must be >= 1, got {burst}")


def admit(relier: Relier, name: str, interval_ms: float, burst: int = 1) -> None:
    """Take one call from the cluster-wide rate limit ``name``; nothing is pushed.

    Args:
        name: the limit's name (its key is ``rl:rate:<name>``); every caller
            that names it shares one limit.
        interval_ms: milliseconds between calls (:func:`parse_rate` of ``"10/s"``).
        burst: calls admitted at once after a quiet spell.

    Raises:
        AdmissionRejectedError: the limit is used up (reason ``"rate"``);
            ``retry_after`` is the exact wait until this call would be admitted.
        ConfigurationError: an empty name or one with braces, an interval <= 0
            or a burst < 1.
    """
    _check_limit(name, interval_ms, burst)
    with translate_errors(relier.settings.redis_url):
        wait_ms = relier.scripts.admit(name, interval_ms, burst)
    if wait_ms:
        raise AdmissionRejectedError(name, wait_ms / 1000, "rate")


async def aadmit(relier: Relier, name: str, interval_ms: float, burst: int = 1) -> None:
    """Async :func:`admit`, on the running loop's Redis client."""
    _check_limit(name, interval_ms, burst)
    async with translate_errors_async(relier.settings.redis_url):
        wait_ms = await (await relier.ascripts()).admit(name, interval_ms, burst)
    if wait_ms:
        raise AdmissionRejectedError(name, wait_ms / 1000, "rate")

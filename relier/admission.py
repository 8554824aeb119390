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

Keys: ``rl:rate:<task>`` or ``rl:rate:<task>:<rate key>`` (string, PX about
one interval).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import ConfigurationError

__all__ = ["Admission", "parse_rate"]

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

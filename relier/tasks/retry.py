"""When a failed attempt runs again: exponential backoff with full jitter.

Retries are kept in Redis (``rl:schedule``), never as Celery ETA messages, so
a retry survives any worker's death and never depends on kombu's visibility
timeout. This module only decides *whether* and *when*; ``fail.lua`` records
the decision atomically, guarded by the attempt's fence.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from relier.config import RelierSettings
from relier.errors import ConfigurationError

__all__ = ["RetryPolicy"]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """A task's retry options; ``None`` fields take the settings' defaults."""

    max_retries: int | None = None
    retry_on: tuple[type[BaseException], ...] = (Exception,)
    backoff: float | None = None
    backoff_max: float | None = None
    jitter: bool | None = None

    def __post_init__(self) -> None:
        if self.max_retries is not None and self.max_retries < 0:
            raise ConfigurationError(f"max_retries must be >= 0, got {self.max_retries}")
        for name in ("backoff", "backoff_max"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ConfigurationError(f"retry_{name} must be > 0 seconds, got {value}")
        for kind in self.retry_on:
            if not (isinstance(kind, type) and issubclass(kind, BaseException)):
                raise ConfigurationError(f"retry_on must hold exception classes, got {kind!r}")

    def retries_allowed(self, settings: RelierSettings) -> int:
        return settings.max_retries if self.max_retries is None else self.max_retries

    def should_retry(self, exc: BaseException, failures: int, settings: RelierSettings) -> bool:
        """Whether a task whose ``failures``-th exception (1-based) is ``exc`` runs again."""
        return isinstance(exc, self.retry_on) and failures <= self.retries_allowed(settings)

    def delay(self, failures: int, settings: RelierSettings, rng: random.Random) -> float:
        """Seconds before the retry after the ``failures``-th exception (1-based)."""
        base = settings.retry_backoff if self.backoff is None else self.backoff
        cap = settings.retry_backoff_max if self.backoff_max is None else self.backoff_max
        jitter = settings.retry_jitter if self.jitter is None else self.jitter
        delay = min(cap, base * 2 ** (failures - 1))
        # Full jitter (as Celery's retry_jitter): spreads a burst of failures
        # so the retries do not hit the failing dependency in lockstep.
        return rng.uniform(0, delay) if jitter else delay

"""The registry of every ``@rl_task`` in this process, and what the runtime sees of a task.

Task objects are defined at module level, like the functions they wrap, and
register here when they are decorated, whichever :class:`~relier.hub.Relier`
later pushes them. The worker runtime finds the task of a delivery here by
name and sees it only through :class:`TaskSpec`, so it never imports the task
API (:mod:`relier.tasks`) that builds tasks: the layers point one way.

Redis keys: none.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from relier.errors import ConfigurationError, UnknownTaskError

if TYPE_CHECKING:
    import random

    from relier.config import RelierSettings
    from relier.context import TaskContext
    from relier.hub import Relier

__all__ = [
    "CELERY_TIME_LIMIT_MARGIN_S",
    "ArgumentCodec",
    "Migration",
    "RetrySpec",
    "TaskSpec",
    "is_registered",
    "lookup",
    "register",
    "registry",
]

# Celery's own time_limit, set to hard_timeout plus this, is the last resort
# for code that holds the GIL (so no watchdog thread can run). Generous, so
# that it never races the watchdog, which may have to wait out a Redis outage
# to record the failure before it replaces the process.
CELERY_TIME_LIMIT_MARGIN_S = 30.0

Migration = Callable[[dict[str, Any]], dict[str, Any]]
"""One step: a version-*k* call in, the same call as a version-*k+1* call out."""


class ArgumentCodec(Protocol):
    """How a task's arguments and result cross JSON (:class:`relier.tasks.validation.Validator`)."""

    def from_json(
        self, args: list[Any], kwargs: dict[str, Any]
    ) -> tuple[list[Any], dict[str, Any]]: ...

    def result_to_json(self, value: Any) -> Any: ...

    def result_from_json(self, value: Any) -> Any: ...


class RetrySpec(Protocol):
    """When and after how long a failed attempt runs again.

    :class:`relier.tasks.retry.RetryPolicy` is the one implementation.
    """

    @property
    def retry_on(self) -> tuple[type[BaseException], ...]: ...

    def should_retry(self, exc: BaseException, failures: int, settings: RelierSettings) -> bool: ...

    def delay(self, failures: int, settings: RelierSettings, rng: random.Random) -> float: ...


class TaskSpec(Protocol):
    """What the worker runtime reads of a task (:class:`relier.tasks.decorator.RlTask` is one)."""

    @property
    def name(self) -> str: ...
    @property
    def qualified_source(self) -> str: ...
    @property
    def fn(self) -> Callable[..., Any]: ...
    @property
    def is_async(self) -> bool: ...
    @property
    def takes_context(self) -> bool: ...
    @property
    def relier(self) -> Relier | None: ...
    @property
    def validator(self) -> ArgumentCodec: ...
    @property
    def retry(self) -> RetrySpec: ...
    @property
    def schema_version(self) -> int: ...
    @property
    def migrations(self) -> Mapping[int, Migration]: ...
    @property
    def max_concurrency(self) -> int | None: ...
    @property
    def soft_timeout(self) -> float | None: ...
    @property
    def hard_timeout(self) -> float | None: ...
    @property
    def on_soft_timeout(self) -> Callable[[TaskContext], Any] | None: ...
    @property
    def idempotency_ttl(self) -> float | None: ...
    @property
    def celery_task(self) -> Any: ...


# Task objects are module-level, like the functions they wrap; they register
# here at decoration time, whichever Relier instance later pushes them.
_registry: dict[str, TaskSpec] = {}
_registry_lock = threading.Lock()


def registry() -> dict[str, TaskSpec]:
    """Every ``@rl_task`` defined in this process, by name (a copy)."""
    with _registry_lock:
        return dict(_registry)


def register(task: TaskSpec) -> None:
    """Record ``task``; a different function under a taken name is an error."""
    with _registry_lock:
        existing = _registry.get(task.name)
        if existing is not None and existing.qualified_source != task.qualified_source:
            raise ConfigurationError(
                f"task name {task.name!r} is used by both {existing.qualified_source} and "
                f"{task.qualified_source}; give one of them name=..."
            )
        _registry[task.name] = task


def is_registered(name: str) -> bool:
    """Whether an ``@rl_task`` named ``name`` exists (no copy: a worker asks per message)."""
    return name in _registry


def lookup(name: str) -> TaskSpec:
    """The task registered as ``name``.

    Raises:
        UnknownTaskError: no ``@rl_task`` has that name in this process.
    """
    task = _registry.get(name)
    if task is None:
        known = ", ".join(sorted(_registry)) or "none"
        raise UnknownTaskError(
            f"no @rl_task is named {name!r} in this process (known: {known}); import the "
            "module that defines it, or check the spelling"
        )
    return task

"""@rl_task: decorator options, local calls, with_options, names, Celery registration."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from typing import Any

import pytest
from celery import Celery

from relier import BoundTask, CallOptions, ConfigurationError, RlTask, TaskContext, rl_task
from relier.registry import registry
from relier.tasks.dispatch import Call


@rl_task
def plain(x: int, y: int = 1) -> int:
    """Add two numbers."""
    return x + y


@rl_task()
async def coro(x: int) -> int:
    await asyncio.sleep(0)
    return x * 2


@rl_task(
    name="tests.task.configured",
    queue="reports",
    max_retries=5,
    retry_on=(ConnectionError, TimeoutError),
    retry_backoff=0.25,
    retry_backoff_max=8,
    retry_jitter=False,
    schema_version=3,
)
def configured(ctx: TaskContext, report_id: int) -> dict[str, Any]:
    ctx.checkpoint({"seen": report_id})
    return {"id": ctx.task_id, "attempt": ctx.attempt, "fence": ctx.fence, "p": ctx.progress}


class Holder:
    @staticmethod
    @rl_task
    def nested(x: int) -> int:
        return x


# --- names -------------------------------------------------------------------------------


def test_name_defaults_to_module_and_qualname() -> None:
    assert plain.name == "tests.tasks.test_decorator.plain"
    assert coro.name == "tests.tasks.test_decorator.coro"
    assert Holder.nested.name == "tests.tasks.test_decorator.Holder.nested"
    assert configured.name == "tests.task.configured"


def test_tasks_are_registered_by_name() -> None:
    tasks = registry()
    for task in (plain, coro, configured, Holder.nested):
        assert tasks[task.name] is task


def test_duplicate_name_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"tests\.tasks\.test_decorator\.plain"):

        @rl_task(name="tests.tasks.test_decorator.plain")
        def impostor(x: int) -> int:
            return x


# --- the decorated object ----------------------------------------------------------------


def test_decorated_object_describes_the_function() -> None:
    assert isinstance(plain, RlTask)
    assert plain.__doc__ == "Add two numbers."
    assert plain.__wrapped__ is plain.fn
    assert plain.fn.__name__ == "plain"
    assert repr(plain) == "<RlTask tests.tasks.test_decorator.plain>"
    assert plain.is_async is False
    assert coro.is_async is True
    assert plain.takes_context is False
    assert configured.takes_context is True
    assert plain.queue is None
    assert plain.relier is None
    assert plain.schema_version == 1


def test_decorator_options_are_kept() -> None:
    assert configured.queue == "reports"
    assert configured.schema_version == 3
    policy = configured.retry
    assert policy.max_retries == 5
    assert policy.retry_on == (ConnectionError, TimeoutError)
    assert (policy.backoff, policy.backoff_max, policy.jitter) == (0.25, 8, False)


def test_default_retry_policy_defers_to_settings() -> None:
    policy = plain.retry
    assert policy.max_retries is None
    assert policy.retry_on == (Exception,)
    assert (policy.backoff, policy.backoff_max, policy.jitter) == (None, None, None)


def test_single_exception_class_for_retry_on() -> None:
    def fn() -> None: ...

    # A bare class is accepted at runtime; the annotation asks for a tuple.
    task = rl_task(name="tests.task.single_retry_on", retry_on=KeyError)(fn)  # type: ignore[call-overload]
    assert task.retry.retry_on == (KeyError,)


@pytest.mark.parametrize(
    "options",
    [
        {"schema_version": 0},
        {"max_retries": -1},
        {"retry_backoff": 0},
        {"retry_backoff_max": -1},
        {"retry_on": ("ValueError",)},
    ],
)
def test_invalid_decorator_options_are_refused(options: dict[str, Any]) -> None:
    def fn() -> None: ...

    with pytest.raises(ConfigurationError):
        rl_task(name="tests.task.invalid", **options)(fn)
    assert "tests.task.invalid" not in registry()


def test_non_callable_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="needs a function"):
        rl_task(42)  # type: ignore[call-overload]


# --- local calls -------------------------------------------------------------------------


def test_calling_runs_the_function_locally() -> None:
    assert plain(2) == 3
    assert plain(2, y=5) == 7


async def test_calling_an_async_task_returns_a_coroutine() -> None:
    call = coro(21)
    assert asyncio.iscoroutine(call)
    assert await call == 42


def test_local_call_gets_a_local_context() -> None:
    assert configured(7) == {"id": "local", "attempt": 1, "fence": 0, "p": {"seen": 7}}


def test_local_call_raises_like_the_function() -> None:
    with pytest.raises(TypeError):
        plain()  # type: ignore[call-arg]


# --- with_options / call -----------------------------------------------------------------


def test_with_options_binds_call_options() -> None:
    bound = plain.with_options(countdown=5, queue="q2", idempotency_key="k", task_id="id-1")
    assert isinstance(bound, BoundTask)
    assert bound.task is plain
    assert bound.options == CallOptions(
        countdown=5, queue="q2", idempotency_key="k", task_id="id-1"
    )
    assert plain.options == CallOptions()  # the task itself is unchanged


def test_with_options_validates() -> None:
    with pytest.raises(ConfigurationError, match="countdown"):
        plain.with_options(countdown=-1)


def test_call_builds_a_call() -> None:
    assert plain.call(1, y=2) == Call((1,), {"y": 2})


# --- Celery registration -----------------------------------------------------------------


def test_celery_task_is_registered_with_an_app() -> None:
    app = Celery("tests.task", set_as_current=False)

    def fn(x: int) -> int:
        return x

    task = rl_task(name="tests.task.on_app", app=app)(fn)
    celery_task = app.tasks["tests.task.on_app"]
    assert task.celery_task.name == celery_task.name == task.name
    assert celery_task.acks_late is True
    assert celery_task.ignore_result is True
    assert celery_task.typing is False
    assert celery_task.serializer == "json"
    assert celery_task.reject_on_worker_lost is False


def test_shared_tasks_reach_every_app() -> None:
    app = Celery("tests.task.shared", set_as_current=False)
    app.finalize()
    celery_task = app.tasks["tests.tasks.test_decorator.plain"]
    assert celery_task.acks_late is True
    assert celery_task.name == plain.name


def test_a_lambda_task_does_not_break_celery_apps() -> None:
    # Celery compiles a stub named after the function; "<lambda>" is no name.
    app = Celery("tests.task.lambda", set_as_current=False)
    rl_task(name="tests.task.lambda", app=app)(lambda x: x)
    app.finalize()
    assert app.tasks["tests.task.lambda"].name == "tests.task.lambda"


REDEFINE = """
import warnings
from celery import Celery
from relier import rl_task
from relier.registry import registry

warnings.simplefilter("error")
app = Celery("redefined", set_as_current=False)

def same(x):
    return x

first = rl_task(name="tests.task.redefined")(same)
second = rl_task(name="tests.task.redefined", queue="new")(same)
assert first is not second
assert registry()["tests.task.redefined"] is second
app.finalize()
print(app.tasks["tests.task.redefined"].name)
"""


def test_redefining_a_task_keeps_celery_and_the_registry_in_step() -> None:
    # importlib.reload() defines the same function again: Relier's registry
    # takes the new task, and Celery must not keep the first one and warn
    # (DuplicateTaskNameWarning, an error under -W error) when an app
    # finalizes. A subprocess: Celery tasks are shared with every app.
    result = subprocess.run(
        [sys.executable, "-c", REDEFINE], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "tests.task.redefined"


# --- max_concurrency -------------------------------------------------------------------


def test_max_concurrency_is_kept_on_the_task() -> None:
    @rl_task(name="tests.task.limited_one", max_concurrency=3)
    def limited_one() -> None: ...

    assert limited_one.max_concurrency == 3
    assert plain_default_has_no_limit().max_concurrency is None


def plain_default_has_no_limit() -> RlTask[[], None]:
    @rl_task(name="tests.task.unlimited_one")
    def unlimited_one() -> None: ...

    return unlimited_one


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_max_concurrency_must_be_a_positive_int(bad: Any) -> None:
    with pytest.raises(ConfigurationError, match="max_concurrency must be an int >= 1"):

        @rl_task(name="tests.task.bad_limit", max_concurrency=bad)
        def bad_limit() -> None: ...


# --- timeouts ----------------------------------------------------------------------------


def test_timeouts_are_kept_on_the_task_and_bound_celerys_time_limit() -> None:
    from relier.registry import CELERY_TIME_LIMIT_MARGIN_S

    def hook(ctx: TaskContext) -> None: ...

    @rl_task(name="tests.task.timed", soft_timeout=1, hard_timeout=2.5, on_soft_timeout=hook)
    def timed() -> None: ...

    assert (timed.soft_timeout, timed.hard_timeout, timed.on_soft_timeout) == (1, 2.5, hook)
    # Celery's own limit is only the last resort, well behind Relier's.
    assert timed.celery_task.time_limit == 2.5 + CELERY_TIME_LIMIT_MARGIN_S
    assert timed.celery_task.soft_time_limit is None

    @rl_task(name="tests.task.soft_only", soft_timeout=0.5)
    async def soft_only() -> None: ...

    assert (soft_only.soft_timeout, soft_only.hard_timeout, soft_only.on_soft_timeout) == (
        0.5,
        None,
        None,
    )
    assert soft_only.celery_task.time_limit is None
    assert plain.soft_timeout is None and plain.hard_timeout is None


@pytest.mark.parametrize("option", ["soft_timeout", "hard_timeout"])
@pytest.mark.parametrize("bad", [0, -1, True, "2", float("nan")])
def test_timeouts_must_be_positive_numbers_of_seconds(option: str, bad: Any) -> None:
    with pytest.raises(ConfigurationError, match=f"{option} must be a number of seconds > 0"):

        @rl_task(name="tests.task.bad_timeout", **{option: bad})
        def bad_timeout() -> None: ...


@pytest.mark.parametrize(("soft", "hard"), [(2, 2), (3, 1.5)])
def test_soft_timeout_must_come_before_the_hard_one(soft: float, hard: float) -> None:
    with pytest.raises(ConfigurationError, match="must be shorter than hard_timeout"):

        @rl_task(name="tests.task.bad_order", soft_timeout=soft, hard_timeout=hard)
        def bad_order() -> None: ...


def test_on_soft_timeout_needs_a_callable_and_a_soft_timeout() -> None:
    with pytest.raises(ConfigurationError, match="on_soft_timeout must be a callable"):
        # Not a callable, on purpose.
        @rl_task(name="tests.task.bad_hook", soft_timeout=1, on_soft_timeout="cleanup")  # type: ignore[call-overload, untyped-decorator]
        def bad_hook() -> None: ...

    with pytest.raises(ConfigurationError, match="needs soft_timeout"):

        @rl_task(name="tests.task.hook_alone", hard_timeout=1, on_soft_timeout=lambda ctx: None)
        def hook_alone() -> None: ...

    assert "tests.task.bad_hook" not in registry() and "tests.task.hook_alone" not in registry()

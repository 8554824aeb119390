"""The Celery task behind each ``@rl_task``: Celery's ways of sending go journal-first.

Every ``@rl_task`` is registered with Celery as a :class:`RelierCeleryTask`.
Its ``apply_async`` — and so ``.delay()``, ``.s()``/``.si()``/
``.signature()`` with ``.apply_async()`` or ``.delay()``, and
``app.signature(name).apply_async()`` — does what ``push`` does: the
arguments are validated, the call is journaled and published in one atomic
script (idempotency, admission, signing and schema version included), and a
refused call raises before anything is enqueued. It returns an
:class:`~celery.result.AsyncResult` that reads the journal
(:mod:`relier.tasks.celery_results`).

Options of ``apply_async``: ``countdown``, ``eta`` (through the journal's own
schedule, never Celery's ETA), ``queue`` (a name or a kombu ``Queue``),
``routing_key`` (the queue, when no ``queue`` is given), ``task_id``, and
Relier's ``idempotency_key``. Publishing knobs that do not change what
runs (``producer``, ``connection``, ``retry``, ``retry_policy``,
``ignore_result``, ``add_to_parent``, ``serializer="json"``) are accepted
and have no effect: the journal's script publishes, and results always go
to the journal. Any other option raises :class:`~relier.ConfigurationError`
naming it, instead of being dropped: ``expires``, ``priority``, ``headers``,
``link``, ``link_error`` and canvas options are not supported yet.

Redis keys: those of ``dispatch.lua`` (see :mod:`relier.tasks.dispatch`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

from celery import Task

from relier.errors import ConfigurationError
from relier.registry import lookup
from relier.tasks import dispatch
from relier.tasks.celery_results import JournalBackend
from relier.tasks.dispatch import Call, CallOptions

if TYPE_CHECKING:
    from relier.tasks.decorator import RlTask

__all__ = ["IGNORED_OPTIONS", "RelierCeleryTask", "celery_call", "send"]

IGNORED_OPTIONS = frozenset(
    {"producer", "connection", "retry", "retry_policy", "ignore_result", "add_to_parent"}
)
"""``apply_async`` options accepted with no effect (how Celery would publish)."""

_SUPPORTED = ("countdown", "eta", "queue", "routing_key", "task_id", "idempotency_key")


def _queue_name(value: Any, option: str) -> str | None:
    if value is None:
        return None
    name = getattr(value, "name", value)  # a kombu Queue
    if not isinstance(name, str) or not name:
        raise ConfigurationError(f"{option} must be a queue name or a kombu Queue, got {value!r}")
    return name


def _seconds_until(eta: Any, enable_utc: bool) -> float:
    if isinstance(eta, str):
        try:
            eta = datetime.fromisoformat(eta)
        except ValueError:
            raise ConfigurationError(
                f"eta must be a datetime or ISO 8601 text, got {eta!r}"
            ) from None
    if not isinstance(eta, datetime):
        raise ConfigurationError(f"eta must be a datetime or ISO 8601 text, got {eta!r}")
    if eta.tzinfo is None:
        # As Celery reads a naive eta: UTC under enable_utc, else local time.
        eta = eta.replace(tzinfo=UTC) if enable_utc else eta.astimezone()
    when: datetime = eta
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)


def celery_call(
    task: RlTask[Any, Any],
    args: Any,
    kwargs: Any,
    options: dict[str, Any],
    enable_utc: Callable[[], bool] = lambda: True,
) -> Call:
    """The :class:`~relier.Call` that Celery's ``apply_async(args, kwargs, **options)`` means.

    ``enable_utc`` is read only for a naive ``eta`` (Celery's setting of that name).

    Raises:
        ConfigurationError: an option Relier does not support, or a bad value.
    """
    if args is not None and (isinstance(args, str | bytes | dict) or not hasattr(args, "__iter__")):
        raise ConfigurationError(f"{task.name}: args must be a list or tuple, got {args!r}")
    if kwargs is not None and not isinstance(kwargs, dict):
        raise ConfigurationError(f"{task.name}: kwargs must be a dict, got {kwargs!r}")
    given = {k: v for k, v in options.items() if v is not None and k not in IGNORED_OPTIONS}
    if not given:  # .delay(): the common case, kept lean
        return Call(tuple(args or ()), dict(kwargs or {}))
    serializer = given.pop("serializer", "json")
    if serializer != "json":
        raise ConfigurationError(f"{task.name}: serializer must be 'json', got {serializer!r}")
    unknown = sorted(set(given) - set(_SUPPORTED))
    if unknown:
        raise ConfigurationError(
            f"{task.name}.apply_async: {', '.join(unknown)} not supported by Relier (it "
            f"takes {', '.join(_SUPPORTED)}); nothing was sent"
        )
    countdown = given.get("countdown")
    if "eta" in given:
        if countdown is not None:
            raise ConfigurationError(f"{task.name}: give countdown or eta, not both")
        countdown = _seconds_until(given["eta"], enable_utc())
    if countdown is not None and (
        isinstance(countdown, bool) or not isinstance(countdown, int | float)
    ):
        raise ConfigurationError(f"{task.name}: countdown must be seconds, got {countdown!r}")
    queue = _queue_name(given.get("queue"), "queue") or _queue_name(
        given.get("routing_key"), "routing_key"
    )
    return Call(
        tuple(args or ()),
        dict(kwargs or {}),
        CallOptions(
            countdown=countdown,
            queue=queue,
            task_id=given.get("task_id"),
            idempotency_key=given.get("idempotency_key"),
        ),
    )


def send(
    task: RlTask[Any, Any],
    args: Any,
    kwargs: Any,
    options: dict[str, Any],
    enable_utc: Callable[[], bool],
) -> str:
    """Push Celery's ``apply_async(args, kwargs, **options)`` of ``task`` through the
    Relier ``push`` uses (:meth:`RlTask.hub`); its task id."""
    call = celery_call(task, args, kwargs, options, enable_utc)
    return dispatch.push(task.hub(), task, call).id


def _task(name: str) -> RlTask[Any, Any]:
    # The registry holds RlTask objects; its lookup is typed by what workers need.
    return cast("RlTask[Any, Any]", lookup(name))


class RelierCeleryTask(Task):  # type: ignore[misc]
    """Celery's task class for ``@rl_task`` functions (their ``celery_task``)."""

    def _enable_utc(self) -> bool:
        return bool(self._get_app().conf.enable_utc)

    @property
    def backend(self) -> JournalBackend:
        """The journal, read as a Celery result backend."""
        found: JournalBackend | None = self.__dict__.get("_journal_backend")
        if found is None:
            found = JournalBackend(self._get_app(), lambda: _task(self.name).hub())
            self.__dict__["_journal_backend"] = found
        return found

    @backend.setter
    def backend(self, value: Any) -> None:
        # Celery may set the app's backend here; a Relier task's results are
        # the journal's, whatever backend the app has for its other tasks.
        pass

    def apply_async(
        self,
        args: Any = None,
        kwargs: Any = None,
        task_id: str | None = None,
        producer: Any = None,
        link: Any = None,
        link_error: Any = None,
        shadow: str | None = None,
        **options: Any,
    ) -> Any:
        """Journal and publish this call as ``push`` does; an ``AsyncResult`` of it.

        Raises:
            ConfigurationError: an unsupported option (nothing is sent).
            PayloadError: the arguments cannot travel or do not fit.
            AdmissionRejectedError: the task's admission control refused it.
            RedisUnavailableError: Redis cannot be reached.
        """
        if task_id is not None or link is not None or link_error is not None or shadow:
            options.update(task_id=task_id, link=link, link_error=link_error, shadow=shadow)
        return self.AsyncResult(send(_task(self.name), args, kwargs, options, self._enable_utc))

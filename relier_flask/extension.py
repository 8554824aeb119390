"""The Flask extension: ``Relier(app)``, or ``rl = Relier()`` then ``rl.init_app(app)``.

Registering it on an app does three things, once per app (a second
registration is refused):

* puts the app's :class:`relier.Relier` hub in ``app.extensions["relier"]``
  (:mod:`relier_flask.hub`: settings from ``app.config["RELIER_*"]``);
* registers the admin API blueprint at ``/relier`` (:mod:`relier_flask.admin`),
  which refuses to exist without authentication unless told otherwise;
* registers the error handler that turns :class:`~relier.AdmissionRejectedError`
  into ``429`` with ``Retry-After`` (:mod:`relier_flask.admission`).

Nothing connects to Redis at registration (``flask routes`` or an import
in a test must not need it); the hub's clients open on first use.

State: ``app.extensions["relier"]``. Redis keys: none of its own.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from typing import Any, ParamSpec, TypeVar

from flask import Flask
from pydantic import SecretStr

from relier import (
    AdmissionRejectedError,
    BoundTask,
    Call,
    ConfigurationError,
    RlTask,
    TaskHandle,
    current,
)
from relier import Relier as RelierHub
from relier.config import ENV_PREFIX
from relier.tasks import dispatch

from .admin import AdminToken, AuthCallable, admin_blueprint
from .admission import problem_response
from .hub import EXTENSION_KEY, relier_of, settings_from_config

__all__ = ["Relier"]

P = ParamSpec("P")
R = TypeVar("R")


class Relier:
    """Relier for a Flask app: its hub, the admin API and the 429 handler.

    Use ``Relier(app)``, or ``rl = Relier(...)`` at import time and
    ``rl.init_app(app)`` in the app factory; the options apply to every app
    it is registered on.

    The hub is ``relier`` when given; otherwise, when ``app.config`` has
    ``RELIER_*`` keys, a hub of the app's own built from them (the
    environment fills in the rest); otherwise the process-wide default
    :func:`relier.current` (the one ``relier.bind(celery_app)`` made, or
    built from the ``RELIER_*`` environment variables), which is what a bare
    ``task.push(...)`` uses. :meth:`push` always uses the app's hub.

    Args:
        app: the app to register on now.
        relier: the hub to use (then ``app.config`` may hold no ``RELIER_*`` key).
        token: the admin API's bearer token; by default the hub's
            ``RELIER_ADMIN_TOKEN`` when no ``auth`` is given either.
        auth: your own check run before every admin endpoint
            (:data:`relier_flask.admin.AuthCallable`); with ``token`` too,
            both must pass.
        allow_unauthenticated: register the admin API without authentication.
        admin: register the admin API at all.
        url_prefix: where the admin API is mounted.
        admission_handler: register the 429 error handler.
        problem_type: the ``type`` member of the 429 problem body (a URI).
    """

    def __init__(
        self,
        app: Flask | None = None,
        *,
        relier: RelierHub | None = None,
        token: str | SecretStr | None = None,
        auth: AuthCallable | None = None,
        allow_unauthenticated: bool = False,
        admin: bool = True,
        url_prefix: str = "/relier",
        admission_handler: bool = True,
        problem_type: str = "about:blank",
    ) -> None:
        if relier is not None and not isinstance(relier, RelierHub):
            raise ConfigurationError(f"relier= must be a relier.Relier, got {relier!r}")
        if token is not None:
            AdminToken(token)  # refuses a short token now, not at init_app
        self.relier = relier
        # Kept as a SecretStr so no repr or log shows it.
        self._token = SecretStr(token) if isinstance(token, str) else token
        self.auth = auth
        self.allow_unauthenticated = allow_unauthenticated
        self.admin = admin
        self.url_prefix = url_prefix
        self.admission_handler = admission_handler
        self.problem_type = problem_type
        if app is not None:
            self.init_app(app)

    def __repr__(self) -> str:
        return f"<relier_flask.Relier url_prefix={self.url_prefix!r} admin={self.admin}>"

    def init_app(self, app: Flask) -> None:
        """Register on ``app``: its hub, the admin API and the 429 handler.

        Raises:
            ConfigurationError: the extension is already registered on
                ``app``; an unknown or invalid ``RELIER_*`` key in its config
                (the message names it); ``relier=`` given and ``RELIER_*``
                keys in the config; the admin API without authentication
                (see ``allow_unauthenticated``) or with a token shorter than
                16 bytes.
        """
        if EXTENSION_KEY in app.extensions:
            raise ConfigurationError(
                f"Relier is already registered on the Flask app {app.name!r} "
                f"(app.extensions[{EXTENSION_KEY!r}]); call init_app once per app"
            )
        hub = self._hub(app)
        if self.admin:
            token = self._token
            if token is None and self.auth is None:
                token = hub.settings.admin_token
            blueprint = admin_blueprint(
                token=token, auth=self.auth, allow_unauthenticated=self.allow_unauthenticated
            )
            app.register_blueprint(blueprint, url_prefix=self.url_prefix)
        if self.admission_handler:
            app.register_error_handler(
                AdmissionRejectedError,
                functools.partial(problem_response, problem_type=self.problem_type),
            )
        app.extensions[EXTENSION_KEY] = hub

    def _hub(self, app: Flask) -> RelierHub:
        settings = settings_from_config(app.config)
        if self.relier is not None:
            if settings is not None:
                keys = sorted(
                    k for k in app.config if isinstance(k, str) and k.startswith(ENV_PREFIX)
                )
                raise ConfigurationError(
                    f"Relier(relier=...) uses that hub's settings, so app.config's "
                    f"{', '.join(keys)} would be ignored; remove them, or drop relier= to build "
                    "the app's hub from app.config"
                )
            return self.relier
        return current() if settings is None else RelierHub(settings)

    # -- pushing from views -------------------------------------------------------------
    def push(
        self, task: RlTask[P, R] | BoundTask[P, R], /, *args: P.args, **kwargs: P.kwargs
    ) -> TaskHandle:
        """Journal and publish one call of ``task`` with the current app's hub.

        ``task`` may carry options: ``rl.push(send.with_options(countdown=5), x)``.
        Sync, like a Flask view; it never needs an event loop.

        Raises:
            AdmissionRejectedError: the task's rate limit or queue-depth cap
                refused the call (with the handler registered, the request
                ends in 429).
            PayloadError: the arguments cannot travel (nothing is enqueued).
            RedisUnavailableError: Redis cannot be reached.
            ConfigurationError: the current app has no Relier.
        """
        return dispatch.push(relier_of(), task.task, Call(args, kwargs, task.options))

    def push_many(
        self, task: RlTask[P, R] | BoundTask[P, R], calls: Iterable[Call | Sequence[Any]], /
    ) -> list[TaskHandle]:
        """Push many calls in one round trip per 1,000 (see ``RlTask.push_many``)."""
        return dispatch.push_many(relier_of(), task.task, calls, task.options)

    def handle(self, task_id: str, task_name: str = "") -> TaskHandle:
        """A handle for a task pushed earlier (an id from a previous request), on
        the current app's hub: ``rl.handle(task_id).result(timeout=5)``."""
        return TaskHandle(relier_of(), task_id, task_name, created=False)

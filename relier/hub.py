"""The Relier hub: settings, connections and the Celery app, together.

One :class:`Relier` object ties a settings object to its Redis clients and
its Celery app. Most programs use the process-wide default returned by
:func:`current` (built from ``RELIER_*`` variables on first use);
:func:`bind` makes a user's own Celery app the default's, and frameworks can
hold their own instance (one per FastAPI app, say).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from relier.config import RelierSettings, load_settings
from relier.errors import ConfigurationError
from relier.journal.connection import Connections, redact
from relier.journal.keys import Keys
from relier.journal.scripts import AsyncScripts, Scripts
from relier.registry import TaskSpec, lookup

if TYPE_CHECKING:
    from celery import Celery

__all__ = ["WORKER_STEP", "Relier", "bind", "current", "reset"]

WORKER_STEP = "relier.worker.bootstep:RelierStep"
"""The bootstep every Celery app bound to Relier runs in its workers."""


def _redis_identity(url: str) -> tuple[str, int, int]:
    """(address, port, db) of a Redis URL; ``localhost`` and ``127.0.0.1`` are one server."""
    parts = urlsplit(url)
    db_text = parts.path.lstrip("/") or parse_qs(parts.query).get("db", ["0"])[0]
    try:
        db = int(db_text)
    except ValueError:
        db = -1
    host = parts.hostname or "localhost"
    with contextlib.suppress(OSError):  # unresolvable now: compare the names as written
        host = socket.gethostbyname(host)
    return (host, parts.port or 6379, db)


class Relier:
    """Settings, Redis clients, scripts and the Celery app, together.

    Args:
        settings: the configuration; read from ``RELIER_*`` when omitted.
        celery_app: the Celery app whose workers run the tasks; a default
            app on the settings' broker is built on first use when omitted.
    """

    def __init__(
        self, settings: RelierSettings | None = None, celery_app: Celery | None = None
    ) -> None:
        self.settings = settings or load_settings()
        self.connections = Connections(self.settings)
        self._celery_app: Celery | None = None
        self._keys: Keys | None = None
        self._scripts: Scripts | None = None
        self._lock = threading.Lock()
        if celery_app is not None:
            self.use_celery_app(celery_app)

    # -- Celery ---------------------------------------------------------
    @property
    def celery_app(self) -> Celery:
        """The Celery app (built from the settings when none was given)."""
        if self._celery_app is None:
            with self._lock:
                if self._celery_app is None:
                    from celery import Celery

                    app = Celery("relier", broker=self.settings.effective_broker_url)
                    self._configure(app)
                    self._celery_app = app
        return self._celery_app

    def use_celery_app(self, app: Celery) -> None:
        """Run tasks on ``app``: check it and set Relier's worker options on it.

        Raises:
            ConfigurationError: the app's broker is not the journal's Redis,
                or it accepts a content type other than JSON.
        """
        if not app.conf.broker_url:
            app.conf.broker_url = self.settings.effective_broker_url
        self._configure(app)
        self._celery_app = app
        self._keys = None

    def _configure(self, app: Celery) -> None:
        broker = str(app.conf.broker_url)
        if _redis_identity(broker) != _redis_identity(
            self.settings.redis_url
        ) or not broker.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigurationError(
                f"the Celery broker ({redact(broker)}) must be the Redis that holds Relier's "
                f"journal (RELIER_REDIS_URL={redact(self.settings.redis_url)}): dispatch "
                "journals and publishes in one atomic Redis script. Set broker_url to the same "
                "URL, or RELIER_REDIS_URL to the broker's"
            )
        accepted = set(app.conf.accept_content or ["json"])
        if accepted - {"json", "application/json"}:
            raise ConfigurationError(
                f"the Celery app accepts {sorted(accepted)}; Relier workers accept JSON only "
                "(pickle lets a forged message run code). Set accept_content=['json']"
            )
        app.conf.update(
            accept_content=["json"],
            task_serializer="json",
            result_serializer="json",
            event_serializer="json",
            worker_prefetch_multiplier=1,
            broker_connection_retry_on_startup=True,
        )
        app._relier = self
        if not getattr(app, "_relier_step", False):
            # By dotted path: Celery imports the step (and with it the worker
            # runtime) only when it builds a worker, so a process that only
            # pushes never loads it (tests/test_producer.py).
            app.steps["worker"].add(WORKER_STEP)
            app._relier_step = True

    # -- Redis -----------------------------------------------------------
    @property
    def keys(self) -> Keys:
        """Key names for this instance's prefix and kombu's queue prefix."""
        if self._keys is None:
            options = self.celery_app.conf.broker_transport_options or {}
            self._keys = Keys(
                prefix=self.settings.key_prefix,
                queue_prefix=str(options.get("global_keyprefix", "")),
            )
        return self._keys

    @property
    def redis(self) -> Any:
        """The process's synchronous Redis client."""
        return self.connections.sync

    @property
    def scripts(self) -> Scripts:
        """Typed Lua transitions on the sync client."""
        if self._scripts is None:
            self._scripts = Scripts(self.redis, self.keys, self.settings.history_max)
        return self._scripts

    async def ascripts(self) -> AsyncScripts:
        """Typed Lua transitions on the running loop's async client."""
        client = await self.connections.for_loop()
        cached: AsyncScripts | None = getattr(client, "_relier_scripts", None)
        if cached is None:
            cached = AsyncScripts(client, self.keys, self.settings.history_max)
            client._relier_scripts = cached  # type: ignore[attr-defined]
        return cached

    def task(self, name: str) -> TaskSpec:
        """The registered task called ``name`` (raises :class:`UnknownTaskError`)."""
        return lookup(name)

    def close(self) -> None:
        """Close the sync Redis client (and the connections its scripts keep per thread)."""
        if self._scripts is not None:
            self._scripts.close()
        self.connections.close()
        self._scripts = None

    async def aclose(self) -> None:
        """Close the running loop's async Redis client."""
        await self.connections.aclose()


_current: Relier | None = None
_current_lock = threading.Lock()


def current() -> Relier:
    """The process-wide default :class:`Relier` (built from ``RELIER_*`` on first use)."""
    global _current
    if _current is None:
        with _current_lock:
            if _current is None:
                _current = Relier()
    return _current


def bind(celery_app: Celery, settings: RelierSettings | None = None) -> Relier:
    """Make ``celery_app`` the app Relier's tasks run on, process-wide.

    Sets JSON-only serialisation and prefetch 1 on the app, checks that its
    broker is the journal's Redis, and adds Relier's worker step.

    Raises:
        ConfigurationError: the app's broker or accepted content is unfit.
    """
    global _current
    with _current_lock:
        instance = Relier(settings or (_current.settings if _current else None), celery_app)
        _current = instance
    return instance


def reset() -> None:
    """Forget the default instance (tests; a new one is built on next use)."""
    global _current
    with _current_lock:
        if _current is not None:
            _current.close()
        _current = None

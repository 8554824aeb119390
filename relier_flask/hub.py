"""The app's Relier hub: built from ``app.config``, kept in ``app.extensions["relier"]``.

Each Flask app that :class:`relier_flask.Relier` is registered on holds one
:class:`relier.Relier` (settings, Redis clients, the Celery app) under
``app.extensions["relier"]``; :func:`relier_of` returns it. Its settings
are the app's ``RELIER_*`` config keys, named like the environment
variables (``app.config["RELIER_REDIS_URL"]`` sets ``redis_url``), with
the environment filling in the keys the config does not set. An app whose
config has no ``RELIER_*`` key shares the process-wide default hub,
:func:`relier.current`, so a bare ``task.push(...)`` in a view uses it.

Redis keys: none of its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask, current_app

from relier import ConfigurationError, RelierSettings, load_settings
from relier import Relier as RelierHub
from relier.config import ENV_PREFIX

__all__ = ["EXTENSION_KEY", "relier_of", "settings_from_config"]

EXTENSION_KEY = "relier"
"""The key of the app's hub in ``app.extensions``."""


def settings_from_config(config: Mapping[str, Any]) -> RelierSettings | None:
    """Settings from the ``RELIER_*`` keys of a Flask config, or None when it has none.

    Keys are named like the environment variables (``RELIER_KEY_PREFIX``
    sets ``key_prefix``); each is validated by :class:`relier.RelierSettings`,
    and the ``RELIER_*`` environment variables fill in the keys the config
    does not set.

    Raises:
        ConfigurationError: a ``RELIER_*`` key that is no setting (a typo),
            or an invalid value; the message names the key, never a secret.
    """
    found = {k: v for k, v in config.items() if isinstance(k, str) and k.startswith(ENV_PREFIX)}
    if not found:
        return None
    known = {f"{ENV_PREFIX}{name.upper()}": name for name in RelierSettings.model_fields}
    unknown = sorted(set(found) - set(known))
    if unknown:
        # The value is not shown: a misspelt RELIER_ADMIN_TOKEN is still a secret.
        raise ConfigurationError(
            f"app.config has {', '.join(unknown)}, which Relier does not know; its settings "
            f"are {', '.join(sorted(known))} (see docs/configuration.md). Check the spelling"
        )
    try:
        return load_settings(**{known[key]: value for key, value in found.items()})
    except ConfigurationError as exc:
        raise ConfigurationError(
            f"{exc} (read from app.config's RELIER_* keys, then the environment)"
        ) from None


def relier_of(app: Flask | None = None) -> RelierHub:
    """The :class:`relier.Relier` hub of ``app`` (the current app by default).

    Use it for your own calls of the core functions, say
    ``relier.inspection.status(relier_of())``.

    Raises:
        ConfigurationError: ``relier_flask.Relier`` was not registered on the app.
        RuntimeError: no ``app`` given outside an application context (Flask's error).
    """
    target = current_app if app is None else app
    hub = target.extensions.get(EXTENSION_KEY)
    if hub is None:
        raise ConfigurationError(
            "this Flask app has no Relier: register the extension with "
            "relier_flask.Relier(app), or rl.init_app(app) in your app factory"
        )
    if not isinstance(hub, RelierHub):
        raise ConfigurationError(
            f"app.extensions[{EXTENSION_KEY!r}] is {hub!r}, not a relier.Relier; another "
            "extension took the name"
        )
    return hub

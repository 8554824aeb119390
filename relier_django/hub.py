"""The project's Relier hub, built from ``settings.RELIER`` when Django starts.

``settings.RELIER`` is one dict whose keys are Relier's settings, named like
the ``RELIER_*`` environment variables without the prefix, in lower or upper
case (``"redis_url"`` or ``"REDIS_URL"``; ``"RELIER_REDIS_URL"`` is accepted
too), plus the adapter's own keys (:data:`ADAPTER_KEYS`). Each value is
validated by :class:`relier.RelierSettings`; the environment fills in the
keys the dict does not set.

Redis keys: none.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.apps import apps
from django.core.exceptions import AppRegistryNotReady, ImproperlyConfigured

from relier import ConfigurationError, RelierSettings, load_settings
from relier import Relier as RelierHub
from relier.config import ENV_PREFIX

__all__ = ["ADAPTER_KEYS", "adapter_options", "relier_of", "settings_from_django"]

ADAPTER_KEYS = {"allow_unauthenticated": bool, "staff_auth": bool, "celery_app": str}
"""``settings.RELIER`` keys that are the adapter's, not :class:`RelierSettings` fields:
``allow_unauthenticated`` (serve the admin API without authentication when neither
a token nor staff sessions are configured),
``staff_auth`` (let staff users in with their session, default True) and
``celery_app`` (``"module:attribute"`` of the project's Celery app)."""


def _normalise(raw: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if not isinstance(key, str):
            raise ImproperlyConfigured(f"settings.RELIER has a key {key!r} that is not a string")
        name = key.lower()
        name = name.removeprefix(ENV_PREFIX.lower())
        if name in out:
            raise ImproperlyConfigured(f"settings.RELIER sets {name!r} twice (key {key!r})")
        out[name] = value
    return out


def _raw() -> dict[str, Any]:
    from django.conf import settings

    raw = getattr(settings, "RELIER", {})
    if not isinstance(raw, Mapping):
        raise ImproperlyConfigured(
            f"settings.RELIER must be a dict of Relier settings, got {type(raw).__name__}"
        )
    return _normalise(raw)


def adapter_options() -> dict[str, Any]:
    """The adapter's own keys of ``settings.RELIER`` (see :data:`ADAPTER_KEYS`), checked.

    Raises:
        ImproperlyConfigured: a value of the wrong type.
    """
    options = {k: v for k, v in _raw().items() if k in ADAPTER_KEYS}
    for key, value in options.items():
        if not isinstance(value, ADAPTER_KEYS[key]):
            raise ImproperlyConfigured(
                f'settings.RELIER["{key}"] must be a {ADAPTER_KEYS[key].__name__}, '
                f"got {type(value).__name__}"
            )
    return options


def settings_from_django(raw: Mapping[str, Any] | None = None) -> RelierSettings:
    """:class:`RelierSettings` from ``settings.RELIER`` (or ``raw``) and the environment.

    Raises:
        ImproperlyConfigured: a key that is no setting (a typo) or an invalid
            value; the message names the key, never a secret's value.
    """
    values = _raw() if raw is None else _normalise(raw)
    values = {k: v for k, v in values.items() if k not in ADAPTER_KEYS}
    unknown = sorted(set(values) - set(RelierSettings.model_fields))
    if unknown:
        # The value is not shown: a misspelt admin_token is still a secret.
        known = sorted([*RelierSettings.model_fields, *ADAPTER_KEYS])
        raise ImproperlyConfigured(
            f"settings.RELIER has {', '.join(map(repr, unknown))}, which Relier does not know; "
            f"its keys are {', '.join(known)} (see docs/configuration.md). Check the spelling"
        )
    try:
        return load_settings(**values)
    except ConfigurationError as exc:
        raise ImproperlyConfigured(
            f"{exc} (read from settings.RELIER, then the environment)"
        ) from None


def relier_of() -> RelierHub:
    """The project's :class:`relier.Relier` hub (built by ``relier_django``'s ``ready()``).

    Raises:
        ConfigurationError: ``relier_django`` is not in ``INSTALLED_APPS``
            or Django is not set up yet.
    """
    try:
        config = apps.get_app_config("relier_django")
    except (LookupError, ImproperlyConfigured, AppRegistryNotReady) as exc:
        raise ConfigurationError(
            'add "relier_django" to INSTALLED_APPS (and call django.setup()) before using '
            f"relier_of(): {exc}"
        ) from None
    hub = getattr(config, "hub", None)
    if not isinstance(hub, RelierHub):
        raise ConfigurationError("relier_django's AppConfig has not run ready() yet")
    return hub

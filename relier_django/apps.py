"""The Django app: ``"relier_django"`` in ``INSTALLED_APPS``.

At ``ready()`` :class:`RelierConfig` builds the project's hub from
``settings.RELIER`` (:mod:`relier_django.hub`) and makes it the process-wide
default (:func:`relier.bind`), so ``task.push(...)`` in a view, the admin
API and ``manage.py rl`` all use it. Invalid settings stop Django from
starting with :class:`~django.core.exceptions.ImproperlyConfigured` naming
the key. Nothing connects to Redis here: the hub's clients open on first use.

State: ``apps.get_app_config("relier_django").hub``. Redis keys: none.
"""

from __future__ import annotations

import importlib

from django.apps import AppConfig
from django.core.exceptions import ImproperlyConfigured

from relier import Relier as RelierHub
from relier import bind

from .hub import adapter_options, settings_from_django

__all__ = ["RelierConfig"]


class RelierConfig(AppConfig):  # type: ignore[misc]  # Django ships no type hints
    """Builds the project's Relier hub from ``settings.RELIER`` when Django starts."""

    name = "relier_django"
    verbose_name = "Relier"
    default = True
    hub: RelierHub | None = None

    def ready(self) -> None:
        """Build the hub and make it the process-wide default.

        Raises:
            ImproperlyConfigured: ``settings.RELIER`` has an unknown key or
                an invalid value, or its ``celery_app`` cannot be imported.
        """
        from celery import Celery

        from . import checks as _checks  # noqa: F401  (registers the system check)

        settings = settings_from_django()
        spec = adapter_options().get("celery_app")
        if spec is None:
            app = Celery("relier", broker=settings.effective_broker_url)
        else:
            module, _, attr = spec.partition(":")
            try:
                app = getattr(importlib.import_module(module), attr or "app")
            except (ImportError, AttributeError) as exc:
                raise ImproperlyConfigured(
                    f'settings.RELIER["celery_app"] is {spec!r}, which cannot be imported '
                    f'({exc}); give "module:attribute" of your Celery app'
                ) from exc
            if not isinstance(app, Celery):
                raise ImproperlyConfigured(
                    f'settings.RELIER["celery_app"] ({spec!r}) is a {type(app).__name__}, '
                    "not a Celery app"
                )
        self.hub = bind(app, settings)

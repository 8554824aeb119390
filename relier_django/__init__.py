"""Relier for Django projects.

::

    # settings.py
    INSTALLED_APPS = [..., "relier_django"]
    MIDDLEWARE = [..., "relier_django.middleware.AdmissionMiddleware"]
    RELIER = {"redis_url": "redis://redis:6379/0", "admin_token": "..."}

    # urls.py
    urlpatterns = [..., path("relier/", include("relier_django.urls"))]

* ``relier_django`` (its :class:`~relier_django.apps.RelierConfig`): at
  ``ready()`` builds the project's :class:`relier.Relier` hub from
  ``settings.RELIER`` (the ``RELIER_*`` settings, keys in lower or upper
  case, the environment filling in the rest) and makes it the process-wide
  default, so ``task.push(...)`` in a view and ``manage.py rl`` use it.
* :class:`AdmissionMiddleware`: ``AdmissionRejectedError`` raised by a view
  becomes ``429`` with ``Retry-After`` and an RFC 9457 problem body.
* ``relier_django.urls``: the admin API (the FastAPI router's endpoints),
  for a bearer token (``RELIER["admin_token"]``) or staff users.
* ``python manage.py rl ...``: the ``rl`` command line on the project's settings.
* :func:`relier_of`: the project's hub, for the core functions.
"""

from __future__ import annotations

try:
    import django as _framework  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised by the packaging test's bare venv
    raise ImportError(
        'relier_django needs Django: install it with pip install "relier[django]"'
    ) from exc

from .admission import problem_response
from .hub import relier_of, settings_from_django
from .middleware import AdmissionMiddleware

__all__ = ["AdmissionMiddleware", "problem_response", "relier_of", "settings_from_django"]

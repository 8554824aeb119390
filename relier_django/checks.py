"""The system check of ``settings.RELIER`` (``python manage.py check``).

``ready()`` already refuses invalid settings; this check adds what is legal
but probably a mistake: the 429 middleware missing from ``MIDDLEWARE``.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks

__all__ = ["check_middleware"]

MIDDLEWARE_PATH = "relier_django.middleware.AdmissionMiddleware"


@checks.register("relier")  # type: ignore[untyped-decorator]
def check_middleware(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """Warn when :class:`~relier_django.AdmissionMiddleware` is not in ``MIDDLEWARE``."""
    if MIDDLEWARE_PATH in getattr(settings, "MIDDLEWARE", []):
        return []
    return [
        checks.Warning(
            f"{MIDDLEWARE_PATH} is not in MIDDLEWARE: a push refused by admission control "
            "(AdmissionRejectedError) will be a 500, not a 429 with Retry-After",
            hint=f'add "{MIDDLEWARE_PATH}" to MIDDLEWARE',
            id="relier.W001",
        )
    ]

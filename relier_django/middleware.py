"""``AdmissionMiddleware``: :class:`~relier.AdmissionRejectedError` from a view becomes a 429.

Add ``"relier_django.middleware.AdmissionMiddleware"`` to ``MIDDLEWARE``.
Django calls its ``process_exception`` for an exception a view raised (a
push refused by a task's rate limit or queue-depth cap, or your own
:func:`relier.admission.admit`); any other exception goes on to Django's
own handling.

Redis keys: none.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from relier import AdmissionRejectedError

from .admission import problem_response

__all__ = ["AdmissionMiddleware"]


class AdmissionMiddleware:
    """Django middleware answering ``429`` with ``Retry-After`` for a refused push.

    Args:
        get_response: the next middleware or view (Django passes it).
    """

    sync_capable = True
    async_capable = False
    problem_type = "about:blank"
    """The ``type`` member of the problem body; subclass to set your own URI."""

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        return self.get_response(request)

    def process_exception(self, request: Any, exception: Exception) -> Any:
        """The 429 response for an :class:`~relier.AdmissionRejectedError`, else None."""
        if isinstance(exception, AdmissionRejectedError):
            return problem_response(exception, self.problem_type)
        return None

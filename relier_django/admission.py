"""Admission over HTTP: a refused push becomes ``429 Too Many Requests``.

:func:`problem_response` is the response :class:`~relier_django.AdmissionMiddleware`
gives for an :class:`~relier.AdmissionRejectedError`: an integer
``Retry-After`` header (the exact wait rounded up, at least 1 s) and an RFC
9457 ``application/problem+json`` body, the same the FastAPI and Flask
adapters give. The body never names the task or limit that refused.

Redis keys: none.
"""

from __future__ import annotations

import json

from django.http import HttpResponse

from relier import AdmissionRejectedError
from relier.ops.admin import PROBLEM_JSON, problem_body, retry_after_seconds

__all__ = ["PROBLEM_JSON", "problem_response", "retry_after_seconds"]


def problem_response(
    exc: AdmissionRejectedError, problem_type: str = "about:blank"
) -> HttpResponse:
    """The 429 response for a refused call.

    Its body is an RFC 9457 problem: ``type``, ``title``, ``status``,
    ``detail``, and the extension members ``retry_after`` (seconds, not
    rounded) and ``reason`` (``rate`` or ``depth``).
    """
    body = problem_body(exc, problem_type)
    response = HttpResponse(json.dumps(body), status=429, content_type=PROBLEM_JSON)
    response["Retry-After"] = str(retry_after_seconds(exc.retry_after))
    return response

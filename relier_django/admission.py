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
import math

from django.http import HttpResponse

from relier import AdmissionRejectedError

__all__ = ["PROBLEM_JSON", "problem_response", "retry_after_seconds"]

PROBLEM_JSON = "application/problem+json"
"""The media type of RFC 9457 problem details."""


def retry_after_seconds(retry_after: float) -> int:
    """The ``Retry-After`` value for a wait of ``retry_after`` seconds: rounded
    up to whole seconds (HTTP has no fractions), at least 1."""
    if not math.isfinite(retry_after):
        return 1
    return max(1, math.ceil(retry_after))


def problem_response(
    exc: AdmissionRejectedError, problem_type: str = "about:blank"
) -> HttpResponse:
    """The 429 response for a refused call.

    Its body is an RFC 9457 problem: ``type``, ``title``, ``status``,
    ``detail``, and the extension members ``retry_after`` (seconds, not
    rounded) and ``reason`` (``rate`` or ``depth``).
    """
    header = retry_after_seconds(exc.retry_after)
    # A non-finite float would make invalid JSON ("Infinity").
    wait = max(exc.retry_after, 0.0) if math.isfinite(exc.retry_after) else float(header)
    what = "a rate limit" if exc.reason == "rate" else "a queue's depth cap"
    body = {
        "type": problem_type,
        "title": "Too Many Requests",
        "status": 429,
        "detail": f"refused by {what}; retry after {wait:.3f} s",
        "retry_after": wait,
        "reason": exc.reason,
    }
    response = HttpResponse(json.dumps(body), status=429, content_type=PROBLEM_JSON)
    response["Retry-After"] = str(header)
    return response

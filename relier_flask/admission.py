"""Admission over HTTP: a refused push becomes ``429 Too Many Requests``.

:func:`handle_admission_rejected` is the error handler
:class:`relier_flask.Relier` registers on the app: an
:class:`~relier.AdmissionRejectedError` raised by a view (a push refused by
a task's rate limit or queue-depth cap, or your own
:func:`relier.admission.admit`) becomes a 429 response with an integer
``Retry-After`` header (the exact wait rounded up, at least 1 s) and an RFC
9457 ``application/problem+json`` body, the same response the FastAPI
adapter gives.

The body never names the task or limit that refused: a public client has
no business learning internal task names. The exception
(``AdmissionRejectedError.task_name``) and your logs have it.

Redis keys: none.
"""

from __future__ import annotations

import json

from flask import Response

from relier import AdmissionRejectedError
from relier.ops.admin import PROBLEM_JSON, problem_body, retry_after_seconds

__all__ = ["PROBLEM_JSON", "handle_admission_rejected", "problem_response", "retry_after_seconds"]


def problem_response(exc: AdmissionRejectedError, problem_type: str = "about:blank") -> Response:
    """The 429 response for a refused call.

    Its body is an RFC 9457 problem: ``type``, ``title``, ``status``,
    ``detail``, and the extension members ``retry_after`` (seconds, not
    rounded) and ``reason`` (``rate`` or ``depth``). Needs no app context.
    """
    header = retry_after_seconds(exc.retry_after)
    return Response(
        json.dumps(problem_body(exc, problem_type)),
        status=429,
        headers={"Retry-After": str(header)},
        mimetype=PROBLEM_JSON,
    )


def handle_admission_rejected(exc: AdmissionRejectedError) -> Response:
    """Error handler for ``app.register_error_handler(AdmissionRejectedError, ...)``.

    :class:`relier_flask.Relier` registers it (with its ``problem_type``);
    use it yourself only with ``Relier(app, admission_handler=False)``.
    """
    return problem_response(exc)

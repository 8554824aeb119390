"""Relier for Flask applications.

::

    from flask import Flask
    from relier_flask import Relier

    from myproject.tasks import send_email

    app = Flask(__name__)
    app.config["RELIER_REDIS_URL"] = "redis://redis:6379/0"  # or the environment
    app.config["RELIER_ADMIN_TOKEN"] = "..."  # the admin API's bearer token
    rl = Relier(app)  # or rl = Relier() and rl.init_app(app) in a factory

    @app.post("/emails")
    def send():
        handle = rl.push(send_email, request.form["to"])
        return {"task_id": handle.id}

* :class:`Relier`: the extension. It keeps the app's :class:`relier.Relier`
  hub in ``app.extensions["relier"]`` (settings from ``app.config["RELIER_*"]``),
  registers the admin API at ``/relier`` and the error handler that turns
  :class:`~relier.AdmissionRejectedError` into ``429`` with ``Retry-After``
  and an RFC 9457 problem body. ``rl.push(task, ...)`` pushes with the
  app's hub; a bare ``task.push(...)`` uses the process-wide default.
* :func:`relier_of`: the current app's hub, for the core functions.
* :class:`AdminToken`: the admin API's bearer-token check, for your own
  blueprints.
* :func:`problem_response`: the 429 response, for code that catches the
  error itself.
"""

from __future__ import annotations

try:
    import flask as _framework  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised by the packaging test's bare venv
    raise ImportError(
        'relier_flask needs Flask: install it with pip install "relier[flask]"'
    ) from exc

from .admin import AdminToken
from .admission import problem_response
from .extension import Relier
from .hub import relier_of

__all__ = ["AdminToken", "Relier", "problem_response", "relier_of"]

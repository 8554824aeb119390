"""A Flask app that pushes Relier tasks, limits its traffic, and mounts the admin API.

Run it with a worker: ``python run.py`` (see README.md). Its settings come
from the environment (``RELIER_REDIS_URL``, ``RELIER_ADMIN_TOKEN``), the
same variables the worker reads, so a bare ``task.push(...)`` in a view
uses the app's Redis.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, request
from relier import ResultTimeoutError, TaskFailedError, TaskNotFoundError
from relier.tasks.admission import admit, parse_rate
from relier_flask import Relier, relier_of

import tasks

app = Flask(__name__)
# app.extensions["relier"]: the hub; /relier: the admin API, behind
# RELIER_ADMIN_TOKEN; AdmissionRejectedError from a view becomes 429 + Retry-After.
rl = Relier(app)

QUOTE_INTERVAL_MS = parse_rate("5/s")


@app.post("/signup")
def signup() -> dict[str, str]:
    """Push the welcome mail and answer at once; a worker sends it."""
    handle = tasks.send_welcome.push(request.args["email"])
    return {"task_id": handle.id}


@app.post("/notify/<user>")
def notify(user: str) -> dict[str, str]:
    """The task's own rate limit (1/s per user) answers 429 when exceeded."""
    handle = tasks.notify.push(user, request.args.get("text", ""))
    return {"task_id": handle.id}


@app.post("/exports/<report>")
def export(report: str) -> dict[str, str]:
    """``sales`` and ``signups`` succeed; any other report ends in the DLQ."""
    handle = tasks.export.push(report)
    return {"task_id": handle.id}


@app.get("/tasks/<task_id>")
def task_result(task_id: str) -> dict[str, Any]:
    """A task's outcome, waiting up to ``?wait=`` seconds for it to end."""
    handle = rl.handle(task_id)
    wait = min(request.args.get("wait", 0.0, type=float), 30.0)
    try:
        result = handle.result(timeout=wait)
    except ResultTimeoutError:
        return {"id": task_id, "state": handle.state()}
    except TaskFailedError as exc:
        return {"id": task_id, "state": "DEAD", "reason": exc.reason, "error": exc.error}
    except TaskNotFoundError:
        return {"id": task_id, "state": "MISSING"}
    return {"id": task_id, "state": "SUCCEEDED", "result": result}


@app.get("/quote")
def quote() -> dict[str, str]:
    """A route limit without any task: 5 requests per second per client address,
    cluster-wide (a refusal raises AdmissionRejectedError: a 429)."""
    admit(relier_of(), f"http:quote:{request.remote_addr}", QUOTE_INTERVAL_MS, burst=5)
    return {"quote": "Nothing is lost."}

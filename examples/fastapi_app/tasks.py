"""The tasks of the FastAPI example, run by ``rl worker -A tasks``.

They live in their own module, imported by both the web app and the worker,
because a task's name is ``module.qualname``: both sides must agree on it.
"""

from __future__ import annotations

import asyncio

from relier import rl_task
@rl_task
async def send_welcome(email: str) -> str:
    """An async task: it runs on the worker process's persistent event loop."""
    await asyncio.sleep(0.1)  # stands in for a call to the mail provider
    return f"welcome mail sent to {email}"


@rl_task(rate_limit="1/s", rate_key=lambda user, text: user)
def notify(user: str, text: str) -> str:
    """At most one notification per user per second, cluster-wide: a faster
    push raises ``AdmissionRejectedError``, which the app answers with 429."""
    return f"notified {user}: {text}"


REPORTS = {"sales": [120, 80, 200], "signups": [3, 5, 8]}


@rl_task(max_retries=2, retry_on=(ConnectionError,))
def export(report: str) -> dict[str, int]:
    """A sync task. An unknown report raises ``KeyError``, which is not in
    ``retry_on``: the task goes straight to the dead letter queue, where the
    dashboard shows it with its traceback and a Release button."""
    rows = REPORTS[report]
    return {"rows": len(rows), "total": sum(rows)}

"""Version 1 of ``deploy.greet``: the code before a rolling deploy (see deploy_common)."""

from __future__ import annotations

from relier import TaskContext, rl_task
from tests.integration.apps.deploy_common import record, say


@rl_task(name="deploy.greet")
def greet(ctx: TaskContext, name: str) -> str:
    record(ctx, "v1")
    return say("Hello", name)

"""Version 2 of ``deploy.greet``: ``name`` split in two, plus an optional argument."""

from __future__ import annotations

from relier import TaskContext, rl_task
from tests.integration.apps.deploy_common import name_to_first_last, record, say


@rl_task(name="deploy.greet", schema_version=2, migrations={1: name_to_first_last})
def greet(ctx: TaskContext, first: str, last: str = "", *, greeting: str = "Hello") -> str:
    record(ctx, "v2")
    return say(greeting, first, last)

"""Version 3 of ``deploy.greet``: first and last name as one object."""

from __future__ import annotations

from relier import TaskContext, rl_task
from tests.integration.apps.deploy_common import (
    first_last_to_person,
    name_to_first_last,
    record,
    say,
)


@rl_task(
    name="deploy.greet",
    schema_version=3,
    migrations={1: name_to_first_last, 2: first_last_to_person},
)
def greet(ctx: TaskContext, person: dict[str, str], *, greeting: str = "Hello") -> str:
    record(ctx, "v3")
    return say(greeting, person["first"], person["last"])

"""Tasks the test project's views push (no worker runs them in the test-client tests)."""

from __future__ import annotations

from relier import rl_task


@rl_task
def django_welcome(email: str) -> str:
    """Pushed by ``POST /signup``."""
    return f"welcome {email}"


@rl_task(rate_limit="1/m")
def django_limited(n: int) -> int:
    """One push a minute: the second is refused (a 429 from the view)."""
    return n

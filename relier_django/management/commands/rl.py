"""``python manage.py rl ...``: the ``rl`` command line on the project's settings.

It hands its arguments to :func:`relier.cli.main` unchanged; by then
``relier_django``'s ``ready()`` has made the project's hub (from
``settings.RELIER``) the process-wide default, which every ``rl`` command
uses. ``manage.py rl status --json`` prints what ``rl status --json``
prints; a non-zero exit code of ``rl`` is the command's.
"""

from __future__ import annotations

import argparse
from typing import Any, ClassVar

from django.core.management.base import BaseCommand, CommandError

from relier.cli.main import main

__all__ = ["Command"]

# manage.py reads these wherever they stand; rl must not see them.
_DJANGO_OPTIONS = ("--settings", "--pythonpath")


def _without_django_options(args: list[str]) -> list[str]:
    out: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg in _DJANGO_OPTIONS:
            skip = True
        elif not arg.startswith(tuple(f"{o}=" for o in _DJANGO_OPTIONS)):
            out.append(arg)
    return out


class Command(BaseCommand):  # type: ignore[misc]  # Django ships no type hints
    """``rl`` on the project's Relier settings."""

    help = "Relier's rl command line (status, inflight, task, workers, dlq, worker, ...)."
    # rl's commands print to the terminal themselves and need no checks of the project.
    requires_system_checks: ClassVar[list[str]] = []

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "args", nargs=argparse.REMAINDER, metavar="COMMAND", help="an rl command and options"
        )

    def handle(self, *args: str, **options: Any) -> None:
        argv = _without_django_options(list(args))
        code = main(argv or ["--help"])
        if code:
            raise CommandError(f"rl {' '.join(args)} exited with {code}", returncode=code)

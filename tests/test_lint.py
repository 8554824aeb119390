"""The code style and typing rules hold: ruff (lint + format) and mypy --strict."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ["relier", "relier_fastapi", "relier_flask", "relier_django"]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def test_ruff_check_passes() -> None:
    proc = _run("ruff", "check", *PACKAGES, "tests")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ruff_format_is_applied() -> None:
    proc = _run("ruff", "format", "--check", *PACKAGES, "tests")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy_strict_passes_on_the_packages() -> None:
    proc = _run("mypy")
    assert proc.returncode == 0, proc.stdout + proc.stderr

"""Relier for FastAPI applications.

This version ships the package and its dependency check only; the
FastAPI integration arrives with the adapters release (see the docs).
"""

from __future__ import annotations

try:
    import fastapi as _framework  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised by the packaging test's bare venv
    raise ImportError(
        'relier_fastapi needs FastAPI: install it with pip install "relier[fastapi]"'
    ) from exc

__all__: list[str] = []

"""Relier for Flask applications.

This version ships the package and its dependency check only; the
Flask integration arrives with the adapters release (see the docs).
"""

from __future__ import annotations

try:
    import flask as _framework  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised by the packaging test's bare venv
    raise ImportError(
        'relier_flask needs Flask: install it with pip install "relier[flask]"'
    ) from exc

__all__: list[str] = []

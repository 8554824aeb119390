"""Relier for Django applications.

This version ships the package and its dependency check only; the
Django integration arrives with the adapters release (see the docs).
"""

from __future__ import annotations

try:
    import django as _framework  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised by the packaging test's bare venv
    raise ImportError(
        'relier_django needs Django: install it with pip install "relier[django]"'
    ) from exc

__all__: list[str] = []

"""The one clock.

Every timestamp Relier writes comes from :func:`now_ms` and reaches Lua as an
ARGV value, so tests can control time and no script calls ``TIME``.
"""

from __future__ import annotations

import time

__all__ = ["now_ms"]


def now_ms() -> int:
    """Wall-clock milliseconds since the epoch."""
    return time.time_ns() // 1_000_000

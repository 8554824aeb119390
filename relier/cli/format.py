"""Text output of ``rl``: tables, times, durations, and the progress bar.

Nothing here touches Redis; :mod:`relier.cli.main` calls the library and hands
the results to these helpers.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sys
import time
from collections.abc import Sequence
from typing import Any, TextIO

__all__ = [
    "EXIT_ERROR",
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_UNAVAILABLE",
    "Progress",
    "ago",
    "clip",
    "duration",
    "envelope_data",
    "error",
    "history_table",
    "parse_duration",
    "parse_when",
    "print_json",
    "stamp",
    "table",
]

# Exit codes of every ``rl`` command (docs/cli-reference.md): success; a check
# failed, an id was not found or an action was refused; bad usage or settings;
# Redis unreachable (worth retrying, unlike the others).
EXIT_OK, EXIT_FAILED, EXIT_ERROR, EXIT_UNAVAILABLE = 0, 1, 2, 3

_UNITS_MS = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")


def parse_duration(text: str) -> int:
    """``90s``, ``15m``, ``2h30m``, ``7d`` (units ms, s, m, h, d, w) -> milliseconds.

    Raises:
        ValueError: the text is not a duration.
    """
    compact = text.strip().lower().replace(" ", "")
    parts = _DURATION.findall(compact)
    if not compact or "".join(n + u for n, u in parts) != compact:
        raise ValueError(f"{text!r} is not a duration; write it like 90s, 15m, 2h30m or 7d")
    return round(sum(float(n) * _UNITS_MS[u] for n, u in parts))


def parse_when(text: str, now_ms: int) -> int:
    """A point in time: a duration ago (``15m``) or an ISO 8601 date and time
    (``2026-01-31``, ``2026-01-31T12:00``; local time unless it has an offset).

    Raises:
        ValueError: neither.
    """
    try:
        return now_ms - parse_duration(text)
    except ValueError:
        pass
    try:
        when = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"{text!r} is neither a duration (15m, 2h, 7d) nor an ISO date and time "
            "(2026-01-31T12:00)"
        ) from None
    return int(when.timestamp() * 1000)


def duration(ms: int | None) -> str:
    """A short human duration: ``850ms``, ``4.2s``, ``3m05s``, ``2h07m``, ``3d04h``."""
    if ms is None:
        return "-"
    if ms < 1_000:
        return f"{ms}ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f}s"
    seconds = ms // 1000
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    if seconds < 86_400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86_400}d{seconds % 86_400 // 3600:02d}h"


def stamp(ms: int | None) -> str:
    """Local date and time of an epoch-ms timestamp, to the millisecond."""
    if ms is None:
        return "-"
    return dt.datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def ago(ms: int | None, now_ms: int) -> str:
    """``2026-01-31 12:00:00.000 (4.2s ago)``."""
    if ms is None:
        return "-"
    return f"{stamp(ms)} ({duration(max(now_ms - ms, 0))} ago)"


def clip(text: str, width: int) -> str:
    """One line of at most ``width`` characters."""
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1] + "…"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Left-aligned columns under upper-case headers, two spaces apart."""
    cells = [[str(h).upper() for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[n]) for row in cells) for n in range(len(headers))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    )


class Progress:
    """A progress bar on standard error, drawn only when it is a terminal.

    Redrawn at most 10 times a second; :meth:`close` ends the line.
    """

    def __init__(self, total: int, label: str, stream: TextIO | None = None) -> None:
        self.total = total
        self.label = label
        self.stream = stream or sys.stderr
        self.done = 0
        self.enabled = self.stream.isatty() and total > 0
        self._drawn = 0.0
        self._shown = -1

    def __call__(self, n: int) -> None:
        """Count ``n`` more items done."""
        self.done += n
        if self.enabled and (time.monotonic() - self._drawn > 0.1 or self.done >= self.total):
            self._draw()

    def _draw(self) -> None:
        width = 30
        filled = width * min(self.done, self.total) // self.total
        bar = "#" * filled + "." * (width - filled)
        self.stream.write(f"\r{self.label} [{bar}] {self.done}/{self.total}")
        self.stream.flush()
        self._drawn = time.monotonic()
        self._shown = self.done

    def close(self) -> None:
        """Draw the final count (if not shown yet) and end the line."""
        if self.enabled:
            if self._shown != self.done:
                self._draw()
            self.stream.write("\n")
            self.stream.flush()


def print_json(value: Any) -> None:
    """One JSON object on one line of standard output."""
    print(json.dumps(value, ensure_ascii=False), flush=True)


def error(message: str) -> None:
    """``rl: <message>`` on standard error."""
    print(f"rl: {message}", file=sys.stderr)


def envelope_data(text: str) -> Any:
    """A stored envelope as JSON data (the text itself when it is not JSON)."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def history_table(events: Sequence[dict[str, Any]]) -> str:
    """A task's history: time, offset from the first event, event, its other fields."""
    first = int(events[0].get("t", 0)) if events else 0
    rows = []
    for event in events:
        t = int(event.get("t", 0))
        details = " ".join(f"{k}={v}" for k, v in event.items() if k not in ("t", "e"))
        rows.append([stamp(t), f"+{duration(t - first)}", event.get("e", "?"), details])
    return table(["time", "since first", "event", "details"], rows)

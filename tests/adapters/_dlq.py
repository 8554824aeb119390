"""Dead-lettering a task the way a worker refusing it would, for the adapters' DLQ tests."""

from __future__ import annotations

import relier
from relier.clock import now_ms

_last_ms = 0


def dead_letter(hub: relier.Relier, task_id: str) -> None:
    """Move ``task_id`` to the DLQ as ``unknown_task``, each call at a later millisecond
    than the one before: the DLQ lists newest first by that time, and two entries of
    the same millisecond would be ordered by id instead of by when they died."""
    global _last_ms
    _last_ms = max(now_ms(), _last_ms + 1)
    assert hub.scripts.dead_letter(task_id, _last_ms, "unknown_task", "no such task here")

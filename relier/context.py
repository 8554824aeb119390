"""What a running task knows about itself: :class:`TaskContext`.

A task asks for it by annotating its first parameter ``ctx: TaskContext``;
Relier passes it there and the caller's arguments fill the rest.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from relier.errors import StaleFenceError
from relier.journal.envelope import dumps

__all__ = ["TaskContext", "wants_context"]


@dataclass
class TaskContext:
    """One attempt of one task.

    Attributes:
        task_id: the task's id (the same across retries and resurrections).
        task_name: the registered task name.
        attempt: 1 for the first run, 2 for the first retry, ...
        fence: this attempt's fence token; strictly larger than any earlier
            attempt's. Use it for your own conditional writes.
        progress: what the last ``checkpoint`` of an earlier attempt saved,
            or ``None``.
    """

    task_id: str
    task_name: str
    attempt: int
    fence: int
    progress: Any = None
    _save: Callable[[bytes], bool] | None = field(default=None, repr=False)

    def checkpoint(self, state: Any) -> None:
        """Save ``state`` (JSON) so a later attempt resumes from it as ``progress``.

        Raises:
            StaleFenceError: this attempt was superseded; stop working.
            PayloadNotSerializableError: ``state`` is not JSON-native.
        """
        data = dumps(state, what="checkpoint state")
        if self._save is not None and not self._save(data):
            raise StaleFenceError(
                f"task {self.task_id}: attempt with fence {self.fence} was superseded; its "
                "checkpoint was refused"
            )
        self.progress = state


def wants_context(fn: Callable[..., Any]) -> bool:
    """Whether ``fn``'s first parameter is annotated as :class:`TaskContext`."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return False
    if not params:
        return False
    annotation = params[0].annotation
    if annotation is TaskContext:
        return True
    # Under ``from __future__ import annotations`` the annotation is a string;
    # resolving it could import user modules, the name is enough.
    return isinstance(annotation, str) and annotation.rsplit(".", 1)[-1] == "TaskContext"

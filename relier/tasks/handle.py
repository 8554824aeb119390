"""A pushed task, as the caller holds it: :class:`TaskHandle`."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from relier.errors import ResultTimeoutError, TaskFailedError, TaskNotFoundError
from relier.journal.connection import translate_errors, translate_errors_async
from relier.journal.states import TERMINAL_STATES, text
from relier.registry import registry

if TYPE_CHECKING:
    from relier.hub import Relier

__all__ = ["TERMINAL_STATES", "TaskHandle", "decode_result", "wait_done"]

# Each blocking wait is bounded (and kept under half the socket timeout, or
# the socket would time out first) so a silent connection is noticed and the
# deadline is honoured precisely.
_MAX_BLOCK = 1.0


def decode_result(task_name: str, raw: bytes | str | None) -> Any:
    """A SUCCEEDED task's stored result (JSON text) as its value.

    The task's return annotation rebuilds its type (a datetime, a model)
    when this process knows the task.
    """
    value = json.loads(raw or b"null")
    task = registry().get(task_name)
    return value if task is None else task.validator.result_from_json(value)


def wait_done(relier: Relier, task_id: str, deadline: float | None) -> bool:
    """Wait, at most ``_MAX_BLOCK`` s and not past ``deadline`` (``time.monotonic``),
    for the task to end; False when the deadline has passed (nothing waited).

    The caller reads the job hash again afterwards: a wake-up is a hint.
    """
    block = _MAX_BLOCK if deadline is None else min(_MAX_BLOCK, deadline - time.monotonic())
    if block <= 0:
        return False
    done = relier.keys.task(task_id).done
    # BLMOVE from a list to itself waits without consuming, so any number of
    # waiters see the one "done" element.
    relier.redis.blmove(done, done, max(block, 0.01), "RIGHT", "LEFT")
    return True


class TaskHandle:
    """The handle ``push``/``apush`` return.

    Attributes:
        id: the task id.
        task_name: the task's registered name.
        created: ``False`` when the push found an existing task with this id
            (it enqueued nothing).
    """

    __slots__ = ("_relier", "created", "id", "task_name")

    def __init__(self, relier: Relier, task_id: str, task_name: str, created: bool = True) -> None:
        self._relier = relier
        self.id = task_id
        self.task_name = task_name
        self.created = created

    def __repr__(self) -> str:
        return f"<TaskHandle {self.task_name}[{self.id}]>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TaskHandle) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def _fields(self) -> tuple[str, ...]:
        return ("state", "result", "reason", "error")

    def _outcome(self, row: Sequence[bytes | str | None]) -> tuple[bool, Any]:
        state = row[0]
        if state is None:
            raise TaskNotFoundError(
                f"no task {self.id} in the journal (never pushed here, or finished more than "
                "RELIER_RESULT_TTL seconds ago)"
            )
        name = text(state)
        if name == "SUCCEEDED":
            return True, decode_result(self.task_name, row[1])
        if name in TERMINAL_STATES:
            raise TaskFailedError(self.id, text(row[2]) or name.lower(), text(row[3]))
        return False, None

    def state(self) -> str:
        """The task's journal state (``PENDING`` ... ``DEAD``), or ``MISSING``."""
        r = self._relier
        with translate_errors(r.settings.redis_url):
            value = r.redis.hget(r.keys.task(self.id).job, "state")
        return value.decode() if value else "MISSING"

    async def astate(self) -> str:
        """Async :meth:`state`."""
        r = self._relier
        async with translate_errors_async(r.settings.redis_url):
            client = await r.connections.for_loop()
            value = await client.hget(r.keys.task(self.id).job, "state")
        return text(value) or "MISSING"

    def result(self, timeout: float | None = None) -> Any:
        """Block until the task ends; return its result.

        Args:
            timeout: seconds to wait; ``None`` waits forever.

        Raises:
            TaskFailedError: the task ended in the DLQ.
            ResultTimeoutError: still not finished after ``timeout``.
            TaskNotFoundError: no such task in the journal.
            RedisUnavailableError: Redis cannot be reached.
        """
        r = self._relier
        job = r.keys.task(self.id).job
        deadline = None if timeout is None else time.monotonic() + timeout
        with translate_errors(r.settings.redis_url):
            while True:
                done, value = self._outcome(r.redis.hmget(job, self._fields()))
                if done:
                    return value
                if not wait_done(r, self.id, deadline):
                    raise ResultTimeoutError(f"task {self.id} has not finished after {timeout} s")

    async def aresult(self, timeout: float | None = None) -> Any:
        """Async :meth:`result`; same arguments and errors."""
        r = self._relier
        tk = r.keys.task(self.id)
        # Typed as Any: redis-py's stubs say BLMOVE takes whole seconds; Redis 6+ takes decimals.
        client: Any = await r.connections.for_loop()
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        async with translate_errors_async(r.settings.redis_url):
            while True:
                done, value = self._outcome(await client.hmget(tk.job, self._fields()))
                if done:
                    return value
                cap = min(_MAX_BLOCK, r.settings.socket_timeout / 2)
                block = cap if deadline is None else min(cap, deadline - loop.time())
                if block <= 0:
                    raise ResultTimeoutError(f"task {self.id} has not finished after {timeout} s")
                await client.blmove(tk.done, tk.done, max(block, 0.01), "RIGHT", "LEFT")

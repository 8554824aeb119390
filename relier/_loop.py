"""One persistent asyncio loop per worker process.

Async tasks run on a loop that lives as long as the process, on its own
thread: no new loop per call (connections and caches the task's libraries
keep stay valid), and any pool (prefork, threads, solo) can hand it a
coroutine from whichever thread runs the Celery task. After ``fork`` the
child starts without a loop and makes its own on first use.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["run_coroutine"]

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None


def _forget_after_fork() -> None:
    global _loop, _lock
    _loop = None
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_after_fork)


def _process_loop() -> asyncio.AbstractEventLoop:
    global _loop
    with _lock:
        if _loop is None or _loop.is_closed():
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="relier-asyncio", daemon=True)
            thread.start()
            _loop = loop
        return _loop


def run_coroutine(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on the process's loop and block the calling thread for its result."""
    return asyncio.run_coroutine_threadsafe(coro, _process_loop()).result()

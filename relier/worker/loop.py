"""One persistent asyncio loop per worker process.

Async tasks run on a loop that lives as long as the process, on its own
thread: no new loop per call (connections and caches the task's libraries
keep stay valid), and any pool (prefork, threads, solo) can hand it a
coroutine from whichever thread runs the Celery task. After ``fork`` the
child starts without a loop and makes its own on first use.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import sys
import threading
import traceback
from collections.abc import Coroutine
from types import FrameType
from typing import Any, Generic, TypeVar

__all__ = ["RunningCoroutine", "format_frames", "run_coroutine"]

T = TypeVar("T")
# Enough to see where a task is stuck; formatting reads source files, slow
# while a stuck task competes for the GIL.
_MAX_FRAMES = 30

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None


def _forget_after_fork() -> None:
    global _loop, _lock, _thread
    _loop = None
    _thread = None
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_after_fork)


def _process_loop() -> tuple[asyncio.AbstractEventLoop, threading.Thread]:
    global _loop, _thread
    with _lock:
        if _loop is None or _thread is None or _loop.is_closed():
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="relier-asyncio", daemon=True)
            thread.start()
            _loop, _thread = loop, thread
        return _loop, _thread


def run_coroutine(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on the process's loop and block the calling thread for its result."""
    return asyncio.run_coroutine_threadsafe(coro, _process_loop()[0]).result()


class RunningCoroutine(Generic[T]):
    """``coro`` started as a task on the process's loop, driven from another thread.

    Unlike the future of ``run_coroutine_threadsafe``, which reports itself
    cancelled the moment ``cancel()`` is asked for, :meth:`result` returns
    only once the coroutine has really ended: one that swallows its
    ``CancelledError`` is still running, and a hard timeout must know that.
    """

    def __init__(self, coro: Coroutine[Any, Any, T]) -> None:
        self._loop, self._loop_thread = _process_loop()
        self._ended: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._task: asyncio.Task[T] | None = None
        self._coro = coro
        self.abandoned = False
        self._loop.call_soon_threadsafe(self._start)

    def _start(self) -> None:
        self._task = self._loop.create_task(self._coro)
        self._task.add_done_callback(self._copy)

    def _copy(self, task: asyncio.Task[T]) -> None:
        try:
            value = task.result()
        # result() re-raises whatever ended the task, CancelledError included.
        except BaseException as exc:
            self._settle(exc)
        else:
            self._settle(value, ok=True)

    def _settle(self, outcome: Any, ok: bool = False) -> bool:
        # abandon() and the task's end can race; the first one wins.
        try:
            if ok:
                self._ended.set_result(outcome)
            else:
                self._ended.set_exception(outcome)
        except concurrent.futures.InvalidStateError:
            return False
        return True

    def result(self) -> T:
        """Block until the coroutine ends (or is abandoned); its value or exception."""
        return self._ended.result()

    def cancel(self) -> None:
        """Throw ``CancelledError`` into the coroutine at its current ``await``."""
        self._loop.call_soon_threadsafe(self._cancel)

    def _cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def abandon(self, exc: BaseException) -> None:
        """Release the thread waiting in :meth:`result` (with ``exc``); the coroutine
        itself, if it ignores cancellation, keeps running on the loop.

        ``abandoned`` tells the released thread that ``exc`` is not the
        coroutine's own outcome (it may have ended just before).
        """
        self.abandoned = self._settle(exc)

    def stack(self) -> str:
        """Where the coroutine is, outermost first: the loop thread's frames
        from the coroutine down while it runs (it blocks the loop), else the
        chain of awaits it is suspended in."""
        frames: list[FrameType] = []
        top = getattr(self._coro, "cr_frame", None)
        if getattr(self._coro, "cr_running", False):
            frame = sys._current_frames().get(self._loop_thread.ident or 0)
            while frame is not None and len(frames) < _MAX_FRAMES:
                frames.insert(0, frame)
                if frame is top:
                    break
                frame = frame.f_back
        else:
            awaited: Any = self._coro
            while awaited is not None and len(frames) < _MAX_FRAMES:
                # Coroutines, and generator-based awaitables (asyncio.sleep(0)'s).
                frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "gi_frame", None)
                if frame is None:
                    break
                frames.append(frame)
                awaited = getattr(awaited, "cr_await", getattr(awaited, "gi_yieldfrom", None))
        return format_frames(frames)


def format_frames(frames: list[FrameType]) -> str:
    """``frames`` (outermost first) as the lines of a traceback."""
    summary = traceback.StackSummary.extract((f, f.f_lineno) for f in frames)
    return "".join(summary.format())

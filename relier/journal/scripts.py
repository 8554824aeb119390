"""The only place Lua is loaded and called.

Each ``lua/<name>.lua`` file is one atomic transition of the journal; what
Redis runs is :func:`program`, the file after ``lua/_prelude.lua`` (the
helpers every script shares: the history append and its one trimming rule,
the stats counter). They are registered with redis-py's ``register_script`` (SHA cached, reloaded on
``NOSCRIPT`` after a Redis restart or ``SCRIPT FLUSH``) and wrapped in typed
methods, so callers never build KEYS/ARGV lists. The sync and async wrappers
share the argument builders below, so the two cannot drift apart.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, NamedTuple, ParamSpec

import redis
import redis.asyncio

from relier.journal.keys import STATS_TTL_S, Keys
from relier.journal.states import text

__all__ = [
    "SCRIPT_NAMES",
    "AsyncScripts",
    "Built",
    "Claim",
    "NewTask",
    "Outcome",
    "Scripts",
    "load_all",
    "lua_dir",
    "outcome",
    "program",
    "source",
]


def lua_dir() -> Path:
    """The folder holding the ``.lua`` files.

    In an installed wheel they ship as ``relier/lua``; in a source checkout
    they sit in the repository's top-level ``lua/`` folder.
    """
    packaged = Path(str(resources.files("relier"))) / "lua"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "lua"


PRELUDE = "_prelude"
"""The file of helpers put before every script (its name starts with ``_``: no script)."""


@functools.cache
def source(name: str) -> str:
    """The Lua source of ``lua/<name>.lua``, as written (its contract header first)."""
    return (lua_dir() / f"{name}.lua").read_text(encoding="utf-8")


@functools.cache
def program(name: str) -> str:
    """What Redis runs for script ``name``: the prelude, then the script.

    Lua sees the prelude's ``local function``s as upvalues of the script's
    body; an error's line number counts from the prelude's first line.
    """
    return source(PRELUDE) + "\n" + source(name)


def load_all(client: redis.Redis) -> dict[str, str]:
    """``SCRIPT LOAD`` every script into ``client``; returns name -> SHA1."""
    return {name: str(client.script_load(program(name))) for name in SCRIPT_NAMES}


@dataclass(frozen=True, slots=True)
class Claim:
    """What ``claim`` returns: run the attempt, or drop the delivery."""

    run: bool
    state: str
    fence: int = 0
    attempt: int = 0
    envelope: bytes = b""
    progress: bytes | None = None
    failures: int = 0


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a DLQ script did to one task: ``done``, and the state (or the
    new fence, for a release) that explains it."""

    done: bool
    detail: str


def outcome(raw: list[Any]) -> Outcome:
    """The :class:`Outcome` of a ``dlq_release`` or ``dlq_purge`` reply."""
    return Outcome(done=bool(int(raw[0])), detail=text(raw[1]))


def _claim_result(raw: list[Any]) -> Claim:
    if text(raw[0]) == "run":
        return Claim(
            run=True,
            state="RUNNING",
            fence=int(raw[1]),
            attempt=int(raw[2]),
            envelope=raw[3],
            progress=raw[4] or None,
            failures=int(raw[5]) if len(raw) > 5 else 0,
        )
    return Claim(run=False, state=text(raw[1]))


class NewTask(NamedTuple):
    """One task for ``dispatch.lua`` to journal and publish (its ARGV, named).

    A tuple, so that building one per push costs what the plain tuple did.
    """

    task_id: str
    task_name: str
    queue: str
    envelope: bytes
    message_template: str
    """The Celery message up to the delivery tag's value (:func:`message_template`)."""
    delivery_tag: str
    now: int
    due: int
    """When to publish (ms); 0 = now."""
    fingerprint: str = ""
    """The argument fingerprint of an idempotent call; "" otherwise."""
    rate_bucket: str = ""
    """The rate limit's bucket; "" = the task's name."""
    interval_ms: float = 0.0
    """Rate limit: ms per call; 0 = none."""
    burst: int = 1
    max_depth: int = 0
    """The queue depth at which calls are refused; 0 = none."""
    depth_retry_ms: int = 1000


class Built(NamedTuple):
    """One call of a script, ready to send: its name, KEYS and ARGV."""

    script: str
    keys: list[str]
    argv: list[Any]


_P = ParamSpec("_P")
_BUILDERS: list[str] = []


def _script(build: Callable[_P, tuple[list[str], list[Any]]]) -> Callable[_P, Built]:
    """Marks a builder of :class:`_Args`: its name is its script's, ``lua/<name>.lua``.

    That method name is the one place Python names a script: the calls say
    ``self._call(self.args.claim(...))`` and :data:`SCRIPT_NAMES` is the list
    of builders.
    """
    name = build.__name__
    _BUILDERS.append(name)

    @functools.wraps(build)
    def named(*args: _P.args, **kwargs: _P.kwargs) -> Built:
        keys, argv = build(*args, **kwargs)
        return Built(name, keys, argv)

    return named


class _Args:
    """KEYS/ARGV builders, one per script; shared by sync and async wrappers.

    Each is checked against its script's KEYS/ARGV header by
    ``tests/lua/test_headers.py``.
    """

    def __init__(self, keys: Keys, history_max: int) -> None:
        self.keys = keys
        self.hmax = history_max

    @_script
    def admit(self, bucket: str, interval_ms: float, burst: int) -> tuple[list[str], list[Any]]:
        return [self.keys.rate(bucket)], [interval_ms, burst]

    @_script
    def dispatch(self, t: NewTask) -> tuple[list[str], list[Any]]:
        tk = self.keys.task(t.task_id)
        return (
            [tk.job, tk.hist, self.keys.queue(t.queue), self.keys.schedule, self.keys.dlq, tk.done,
             self.keys.rate(t.rate_bucket or t.task_name), self.keys.stats(t.now),
             self.keys.queues],
            [t.task_id, t.task_name, t.queue, t.envelope, t.message_template, t.delivery_tag,
             t.now, t.due, self.hmax, t.fingerprint, t.interval_ms, t.burst, t.max_depth,
             t.depth_retry_ms, STATS_TTL_S],
        )  # fmt: skip

    def dispatch_batch(self, items: Sequence[NewTask]) -> Built:
        # dispatch.lua takes one task's KEYS and ARGV after another.
        keys: list[str] = []
        argv: list[Any] = []
        for item in items:
            script, k, a = self.dispatch(item)
            keys += k
            argv += a
        return Built(script, keys, argv)

    @_script
    def claim(
        self,
        task_id: str,
        owner: str,
        now: int,
        pid: int,
        token: str,
        task_name: str = "",
        max_concurrency: int = 0,
        recheck_ms: int = 1000,
    ) -> tuple[list[str], list[Any]]:
        tk, k = self.keys.task(task_id), self.keys
        return (
            [tk.job, tk.hist, k.owned(owner), k.draining(owner), k.semaphore(task_name),
             k.semaphore_wait(task_name), k.schedule],
            [task_id, owner, pid, now, self.hmax, token, max_concurrency, recheck_ms,
             k.job_prefix],
        )  # fmt: skip

    @_script
    def release(self, task_id: str, task_name: str, fence: int) -> tuple[list[str], list[Any]]:
        k = self.keys
        return (
            [k.semaphore(task_name), k.semaphore_wait(task_name), k.schedule],
            [task_id, fence, k.job_prefix],
        )

    @_script
    def reserve(self, task_id: str, owner: str, now: int) -> tuple[list[str], list[Any]]:
        tk = self.keys.task(task_id)
        return [tk.job, tk.hist, self.keys.owned(owner)], [task_id, owner, now, self.hmax]

    @_script
    def complete(
        self, task_id: str, fence: int, result: bytes, now: int, ttl: int, owner: str
    ) -> tuple[list[str], list[Any]]:
        tk = self.keys.task(task_id)
        return (
            [tk.job, tk.hist, tk.done, self.keys.owned(owner), self.keys.stats(now)],
            [fence, result, now, ttl, self.hmax, task_id, STATS_TTL_S],
        )

    @_script
    def fail(
        self,
        task_id: str,
        fence: int,
        now: int,
        retry_due: int,
        reason: str,
        error: str,
        traceback: str,
        owner: str,
    ) -> tuple[list[str], list[Any]]:
        tk = self.keys.task(task_id)
        return (
            [tk.job, tk.hist, tk.done, self.keys.schedule, self.keys.dlq, self.keys.owned(owner),
             self.keys.stats(now)],
            [task_id, fence, now, retry_due, reason, error, traceback, self.hmax, STATS_TTL_S],
        )  # fmt: skip

    @_script
    def dead_letter(
        self, task_id: str, now: int, reason: str, error: str, fence: int | None, owner: str
    ) -> tuple[list[str], list[Any]]:
        tk = self.keys.task(task_id)
        return (
            [tk.job, tk.hist, tk.done, self.keys.schedule, self.keys.dlq, self.keys.owned(owner),
             self.keys.stats(now)],
            [task_id, now, reason, error, self.hmax, "" if fence is None else fence, STATS_TTL_S],
        )  # fmt: skip

    @_script
    def defer(
        self,
        task_id: str,
        fence: int,
        now: int,
        owner: str,
        delays_ms: tuple[int, int],
        max_defer_ms: int,
        versions: tuple[int, int],
        error: str,
    ) -> tuple[list[str], list[Any]]:
        tk = self.keys.task(task_id)
        return (
            [tk.job, tk.hist, tk.done, self.keys.schedule, self.keys.dlq, self.keys.owned(owner),
             self.keys.stats(now)],
            [task_id, fence, now, delays_ms[0], delays_ms[1], max_defer_ms, versions[0],
             versions[1], error, self.hmax, STATS_TTL_S],
        )  # fmt: skip

    @_script
    def resurrect(
        self,
        task_id: str,
        owner: str,
        queue: str,
        now: int,
        delivery_tag: str,
        kind: str,
        max_resurrections: int,
        worker_death_limit: int,
        pid: int | None,
    ) -> tuple[list[str], list[Any]]:
        tk = self.keys.task(task_id)
        return (
            [tk.job, tk.hist, self.keys.owned(owner), self.keys.queue(queue), self.keys.dlq,
             tk.done, self.keys.stats(now)],
            [task_id, owner, now, delivery_tag, kind, max_resurrections, worker_death_limit,
             self.hmax, "" if pid is None else pid, STATS_TTL_S],
        )  # fmt: skip

    @_script
    def leader(self, candidate: str, ttl_ms: int) -> tuple[list[str], list[Any]]:
        return [self.keys.leader], [candidate, ttl_ms]

    @_script
    def dlq_release(
        self, task_id: str, queue: str, now: int, delivery_tag: str
    ) -> tuple[list[str], list[Any]]:
        tk, k = self.keys.task(task_id), self.keys
        return (
            [tk.job, tk.hist, tk.done, k.dlq, k.queue(queue), k.stats(now)],
            [task_id, now, delivery_tag, self.hmax, queue, STATS_TTL_S],
        )

    @_script
    def dlq_purge(self, task_id: str) -> tuple[list[str], list[Any]]:
        tk = self.keys.task(task_id)
        return [tk.job, tk.hist, tk.done, self.keys.dlq], [task_id]

    @_script
    def lock_acquire(self, key: str, token: str, ttl_ms: int) -> tuple[list[str], list[Any]]:
        return [self.keys.lock(key), self.keys.lock_fence(key)], [token, ttl_ms]

    @_script
    def lock_release(self, key: str, token: str, ttl_ms: int) -> tuple[list[str], list[Any]]:
        return [self.keys.lock(key)], [token, ttl_ms]

    @_script
    def republish(
        self, task_id: str, queue: str, now: int, delivery_tag: str
    ) -> tuple[list[str], list[Any]]:
        tk = self.keys.task(task_id)
        return (
            [tk.job, tk.hist, self.keys.queue(queue), self.keys.schedule],
            [now, delivery_tag, self.hmax, task_id],
        )

    @_script
    def requeue(
        self, task_id: str, queue: str, now: int, delivery_tag: str
    ) -> tuple[list[str], list[Any]]:
        tk = self.keys.task(task_id)
        return (
            [tk.job, tk.hist, self.keys.schedule, self.keys.queue(queue)],
            [task_id, now, delivery_tag, self.hmax],
        )

    @_script
    def checkpoint(
        self, task_id: str, fence: int, progress: bytes, now: int
    ) -> tuple[list[str], list[Any]]:
        tk = self.keys.task(task_id)
        return [tk.job, tk.hist], [fence, progress, now, self.hmax]

    @_script
    def soft_timeout(
        self, task_id: str, fence: int, now: int, seconds: float
    ) -> tuple[list[str], list[Any]]:
        tk = self.keys.task(task_id)
        return [tk.job, tk.hist], [fence, now, seconds, self.hmax]


SCRIPT_NAMES = tuple(sorted(_BUILDERS))
"""Every script, by the name of its builder (and its ``.lua`` file)."""


class Scripts:
    """Typed, synchronous calls of every transition on one client (or pipeline)."""

    def __init__(self, client: redis.Redis, keys: Keys, history_max: int) -> None:
        self.client = client
        self.args = _Args(keys, history_max)
        self._scripts = {n: client.register_script(program(n)) for n in SCRIPT_NAMES}
        self._local = threading.local()
        self._dedicated: list[Any] = []  # every thread's connection, closed by close()

    def _call(self, built: Built, client: Any = None) -> Any:
        name, keys, argv = built
        return self._scripts[name](keys=keys, args=argv, client=client or self.client)

    def _direct(self, built: Built) -> Any:
        """:meth:`_call` on this thread's own connection, outside the client's pool.

        For the calls every task makes in a worker (``claim``, ``complete``):
        redis-py's per-command machinery (pool check-out and check-in, the
        stale-data check, argument inspection, retry wrapper) costs more CPU
        than packing and parsing the command. A connection failure raises
        (redis-py's connection closes itself on it) and the caller's retry
        reconnects the same connection object.
        """
        name, keys, argv = built
        conn = self._local.__dict__.get("conn")
        if conn is None or self._local.pid != os.getpid():
            pool = self.client.connection_pool
            conn = pool.connection_class(**pool.connection_kwargs)
            self._local.conn, self._local.pid = conn, os.getpid()
            self._dedicated.append(conn)
        script = self._scripts[name]

        def evalsha() -> Any:
            conn.send_command("EVALSHA", script.sha, len(keys), *keys, *argv)
            return conn.read_response()

        try:
            return evalsha()
        except redis.exceptions.NoScriptError:
            # Redis restarted or its scripts were flushed: load, then once more.
            conn.send_command("SCRIPT", "LOAD", script.script)
            conn.read_response()
            return evalsha()

    def close(self) -> None:
        """Close the threads' own connections (see :meth:`_direct`)."""
        dedicated, self._dedicated = self._dedicated, []
        for conn in dedicated:
            conn.disconnect()

    def evalsha(self, built: Built) -> tuple[Any, ...]:
        """The ``EVALSHA`` command of a built call, for a pipeline Relier does not
        own (which then gets ``NOSCRIPT`` if Redis has not loaded the script)."""
        script, keys, argv = built
        return ("EVALSHA", self._scripts[script].sha, len(keys), *keys, *argv)

    def admit(self, bucket: str, interval_ms: float, burst: int = 1) -> int:
        """Take one call from the rate limit ``bucket`` (``admit.lua``): 0 when
        admitted, else the milliseconds until the same call would be."""
        raw = self._call(self.args.admit(bucket, interval_ms, burst))
        return 0 if int(raw[0]) else int(raw[1])

    def dispatch(self, task: NewTask) -> tuple[bool, str]:
        """Journal and publish one task; ``(created, state)`` (state ``CONFLICT``
        for an idempotency key reused with other arguments)."""
        raw = self._call(self.args.dispatch(task))
        return bool(int(raw[0])), text(raw[1])

    def dispatch_raw(self, task: NewTask) -> list[Any]:
        """Journal and publish one task; the script's whole reply (see dispatch.lua)."""
        return list(self._call(self.args.dispatch(task)))

    def dispatch_in(self, pipe: Any, task: NewTask) -> None:
        """Queue a dispatch on a pipeline (the caller executes it)."""
        self._call(self.args.dispatch(task), pipe)

    def dispatch_many_in(self, pipe: Any, items: Sequence[NewTask]) -> None:
        """Queue one dispatch.lua call for all of ``items`` on a pipeline; its
        reply is the list of their replies, or the one reply for a single item."""
        self._call(self.args.dispatch_batch(items), pipe)

    def claim(
        self,
        task_id: str,
        owner: str,
        now: int,
        pid: int = 0,
        token: str = "",
        task_name: str = "",
        max_concurrency: int = 0,
        recheck_ms: int = 1000,
    ) -> Claim:
        """Start an attempt on worker ``owner`` (its incarnation id), or drop.

        ``token`` identifies this delivery: repeating the call with it (after
        a lost reply) returns the same attempt. With ``max_concurrency`` > 0,
        a task whose slots (shared by every task named ``task_name``) are all
        held is dropped with state ``WAITING`` and re-checked after
        ``recheck_ms`` (doubling up to 8x) or when a holder releases.
        """
        built = self.args.claim(
            task_id, owner, now, pid, token, task_name, max_concurrency, recheck_ms
        )
        return _claim_result(self._direct(built))

    def release(self, task_id: str, task_name: str, fence: int) -> tuple[str, str] | None:
        """Free the max_concurrency slot held under ``fence``; the oldest live
        waiter as ``(id, queue)``, for the caller to re-publish, or None."""
        raw = self._call(self.args.release(task_id, task_name, fence))
        return (text(raw[0]), text(raw[1])) if raw else None

    def reserve(self, task_id: str, owner: str, now: int) -> str:
        """Mark a received, not yet started task as owned by ``owner``; the new state."""
        return text(self._call(self.args.reserve(task_id, owner, now)))

    def complete(
        self, task_id: str, fence: int, result: bytes, now: int, ttl: int, owner: str = ""
    ) -> bool:
        """Commit a success under ``fence``; False when the fence is stale."""
        built = self.args.complete(task_id, fence, result, now, ttl, owner)
        return bool(self._direct(built))

    def fail(
        self,
        task_id: str,
        fence: int,
        now: int,
        retry_due: int,
        reason: str,
        error: str,
        traceback: str,
        owner: str = "",
    ) -> int:
        """Record a failed attempt: 1 retry scheduled, 2 dead-lettered, 0 stale fence."""
        built = self.args.fail(task_id, fence, now, retry_due, reason, error, traceback, owner)
        return int(self._call(built))

    def dead_letter(
        self,
        task_id: str,
        now: int,
        reason: str,
        error: str,
        fence: int | None = None,
        owner: str = "",
    ) -> bool:
        """Move a task that cannot run to the DLQ; False when its state forbids it."""
        built = self.args.dead_letter(task_id, now, reason, error, fence, owner)
        return bool(int(self._call(built)[0]))

    def defer(
        self,
        task_id: str,
        fence: int,
        now: int,
        owner: str,
        delays_ms: tuple[int, int],
        max_defer_ms: int,
        versions: tuple[int, int],
        error: str,
    ) -> tuple[int, int]:
        """Hand back the attempt under ``fence`` of a call made for a newer schema.

        The task goes back to PENDING, re-scheduled after the first of
        ``delays_ms`` (doubling per deferral up to the second), without using
        up a retry; ``max_defer_ms`` after the first of an unbroken run of
        deferrals it is dead-lettered (``schema_too_new``) with ``error``
        instead. ``versions`` is (the call's schema_version, the worker's).
        Returns ``(1, due)`` deferred, ``(2, 0)`` dead-lettered, ``(0, 0)``
        refused (stale fence).
        """
        built = self.args.defer(
            task_id, fence, now, owner, delays_ms, max_defer_ms, versions, error
        )
        raw = self._call(built)
        return int(raw[0]), int(raw[1])

    def resurrect(
        self,
        task_id: str,
        owner: str,
        queue: str,
        now: int,
        delivery_tag: str,
        kind: str,
        max_resurrections: int,
        worker_death_limit: int,
        client: Any = None,
        pid: int | None = None,
    ) -> Any:
        """Put a task ``owner`` holds back in its queue (or in the DLQ as a poison pill).

        Returns ``[outcome, detail]`` with outcome ``requeued``, ``dead`` or
        ``skipped`` (the raw reply when queued on a pipeline).
        """
        built = self.args.resurrect(
            task_id,
            owner,
            queue,
            now,
            delivery_tag,
            kind,
            max_resurrections,
            worker_death_limit,
            pid,
        )
        raw = self._call(built, client)
        return raw if client is not None else [text(raw[0]), text(raw[1])]

    def republish(
        self, task_id: str, queue: str, now: int, delivery_tag: str, client: Any = None
    ) -> Any:
        """Publish again a PENDING, unowned task whose message went astray."""
        return self._call(self.args.republish(task_id, queue, now, delivery_tag), client)

    def lock_acquire(self, key: str, token: str, ttl_ms: int) -> int:
        """Take lock ``key``: its fence (> 0), or minus the ms until the holder's expires."""
        return int(self._call(self.args.lock_acquire(key, token, ttl_ms)))

    def lock_release(self, key: str, token: str, ttl_ms: int = 0) -> bool:
        """Release (``ttl_ms`` 0) or extend lock ``key``; False when no longer held."""
        return bool(self._call(self.args.lock_release(key, token, ttl_ms)))

    def leader(self, candidate: str, ttl_ms: int) -> bool:
        """Take or keep the resurrector lock; True when ``candidate`` holds it."""
        return bool(self._call(self.args.leader(candidate, ttl_ms)))

    def dlq_release(
        self, task_id: str, queue: str, now: int, delivery_tag: str, client: Any = None
    ) -> Any:
        """Publish a DEAD task again as a fresh run on ``queue`` (the queue its
        journal names); an :class:`Outcome` whose detail is the new fence, or
        the state that refused it (the raw reply when queued on a pipeline)."""
        built = self.args.dlq_release(task_id, queue, now, delivery_tag)
        raw = self._call(built, client)
        return raw if client is not None else outcome(raw)

    def dlq_purge(self, task_id: str, client: Any = None) -> Any:
        """Delete a DEAD task's journal and DLQ entry; an :class:`Outcome` (the
        raw reply when queued on a pipeline)."""
        raw = self._call(self.args.dlq_purge(task_id), client)
        return raw if client is not None else outcome(raw)

    def requeue(
        self, task_id: str, queue: str, now: int, delivery_tag: str, client: Any = None
    ) -> Any:
        return self._call(self.args.requeue(task_id, queue, now, delivery_tag), client)

    def checkpoint(self, task_id: str, fence: int, progress: bytes, now: int) -> bool:
        return bool(self._call(self.args.checkpoint(task_id, fence, progress, now)))

    def soft_timeout(self, task_id: str, fence: int, now: int, seconds: float) -> bool:
        """Note that the attempt under ``fence`` passed its soft timeout of
        ``seconds``; False when it no longer holds the task."""
        built = self.args.soft_timeout(task_id, fence, now, seconds)
        return bool(self._call(built))


class AsyncScripts:
    """The asyncio twins of :class:`Scripts` that producers need."""

    def __init__(self, client: redis.asyncio.Redis, keys: Keys, history_max: int) -> None:
        self.client = client
        self.args = _Args(keys, history_max)
        self._scripts = {n: client.register_script(program(n)) for n in SCRIPT_NAMES}

    async def _call(self, built: Built, client: Any = None) -> Any:
        name, keys, argv = built
        return await self._scripts[name](keys=keys, args=argv, client=client or self.client)

    async def admit(self, bucket: str, interval_ms: float, burst: int = 1) -> int:
        """Async :meth:`Scripts.admit`."""
        raw = await self._call(self.args.admit(bucket, interval_ms, burst))
        return 0 if int(raw[0]) else int(raw[1])

    async def dispatch(self, task: NewTask) -> tuple[bool, str]:
        """Async :meth:`Scripts.dispatch`."""
        raw = await self._call(self.args.dispatch(task))
        return bool(int(raw[0])), text(raw[1])

    async def dispatch_raw(self, task: NewTask) -> list[Any]:
        """Async :meth:`Scripts.dispatch_raw`."""
        return list(await self._call(self.args.dispatch(task)))

    async def dispatch_in(self, pipe: Any, task: NewTask) -> None:
        """Queue a dispatch on an async pipeline (the caller executes it)."""
        await self._call(self.args.dispatch(task), pipe)

    async def dispatch_many_in(self, pipe: Any, items: Sequence[NewTask]) -> None:
        """Async :meth:`Scripts.dispatch_many_in`."""
        await self._call(self.args.dispatch_batch(items), pipe)

    async def lock_acquire(self, key: str, token: str, ttl_ms: int) -> int:
        """Async :meth:`Scripts.lock_acquire`."""
        return int(await self._call(self.args.lock_acquire(key, token, ttl_ms)))

    async def lock_release(self, key: str, token: str, ttl_ms: int = 0) -> bool:
        """Async :meth:`Scripts.lock_release`."""
        return bool(await self._call(self.args.lock_release(key, token, ttl_ms)))

"""The probe tasks ``rl chaos`` pushes, and a worker's opt-in to run them.

A worker runs the probes only when ``RELIER_CHAOS=1`` is set for it: ``rl
worker`` then imports this module, which adds the queue :data:`QUEUE` to
the queues the worker consumes and lists the worker in ``rl:chaos:workers``
once it is ready (removed at a clean exit). ``rl chaos`` reads that list to
know which workers can take probes and fails fast when none can. A worker
started with ``celery worker`` instead opts in with ``-I relier.chaos.probes``
*and* ``RELIER_CHAOS=1``.

The probes are the only tasks on :data:`QUEUE`, so a production worker that
did not opt in never receives one. Even if one did arrive, the bodies that
harm their process (:func:`crash`) check ``RELIER_CHAOS`` in the process
running them and fail without harm when it is off.

Each probe body counts its own executions in ``rl:{<id>}:chaos`` (a set of
random tokens, in the task's hash-tag slot, expiring after a day), so the
ledger can compare body runs with the journal's commits.

Keys owned: ``rl:chaos:workers`` (hash, worker id -> JSON ``{"node", "host",
"pid", "started"}``) and ``rl:{<id>}:chaos`` (set).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import uuid
from typing import Any

import redis.exceptions
from celery.signals import celeryd_after_setup, worker_ready, worker_shutdown

from relier import hub as _app
from relier.clock import now_ms
from relier.context import TaskContext
from relier.errors import ConfigurationError
from relier.tasks.decorator import rl_task
from relier.worker.identity import current_worker_id

__all__ = [
    "EXEC_TTL_S",
    "QUEUE",
    "crash",
    "executions",
    "hold",
    "limited",
    "ping",
    "probe_workers",
    "release",
]

log = logging.getLogger("relier.chaos")

QUEUE = "relier-chaos"
EXEC_TTL_S = 86_400
LIMITED_RATE = "20/s"
LIMITED_BURST = 5


def _enabled() -> bool:
    return _app.current().settings.chaos


def _bump(ctx: TaskContext) -> None:
    """Count one execution of this body; waits out a short Redis outage."""
    relier = _app.current()
    key = relier.keys.chaos_exec(ctx.task_id)
    token = uuid.uuid4().hex
    deadline = time.monotonic() + 30
    while True:
        try:
            with relier.redis.pipeline(transaction=False) as pipe:
                pipe.sadd(key, token)
                pipe.expire(key, EXEC_TTL_S)
                pipe.execute()
            return
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
            # A token, not a counter: a retried SADD after a lost reply counts once.
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _outcome(ctx: TaskContext) -> dict[str, object]:
    return {
        "worker": current_worker_id(""),
        "pid": os.getpid(),
        "fence": ctx.fence,
        "attempt": ctx.attempt,
    }


@rl_task(name="relier.chaos.ping", queue=QUEUE, max_retries=0)
def ping(ctx: TaskContext) -> dict[str, object]:
    """Returns which worker and process ran it."""
    _bump(ctx)
    return _outcome(ctx)


@rl_task(name="relier.chaos.hold", queue=QUEUE, max_retries=0)
def hold(ctx: TaskContext, target: str, seconds: float, short: float) -> dict[str, object]:
    """Holds ``seconds`` on the first attempt on worker ``target`` (an id), else sleeps ``short``.

    The scenario signals ``target`` while this runs there; a re-run (on any
    worker) or a run elsewhere ends quickly, and so does a hold released
    early (``rl:{<id>}:chaos_release``, see :func:`release`).
    """
    _bump(ctx)
    here = current_worker_id("")
    if here != target or ctx.attempt != 1:
        time.sleep(short)
        return _outcome(ctx)
    relier = _app.current()
    release = relier.keys.chaos_release(ctx.task_id)
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        time.sleep(min(left, 0.05))
        try:
            if relier.redis.exists(release):
                break
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
            pass  # cut off from Redis (the partition scenario): keep holding
    return _outcome(ctx)


@rl_task(name="relier.chaos.crash", queue=QUEUE, max_retries=0)
def crash(ctx: TaskContext) -> None:
    """A poison pill: ends its own process every time (only where RELIER_CHAOS is on)."""
    _bump(ctx)
    if not _enabled():
        raise ConfigurationError(
            "relier.chaos.crash reached a worker without RELIER_CHAOS=1; it refused to end "
            "its process"
        )
    os._exit(1)


@rl_task(
    name="relier.chaos.limited",
    queue=QUEUE,
    max_retries=0,
    rate_limit=LIMITED_RATE,
    rate_burst=LIMITED_BURST,
)
def limited(ctx: TaskContext, n: int) -> int:
    """A rate-limited probe (20/s, burst 5) for the load-spike scenario."""
    _bump(ctx)
    return n


def release(relier: _app.Relier, task_ids: list[str]) -> None:
    """End the hold of these ``hold`` probes (those still holding return within 50 ms)."""
    if not task_ids:
        return
    with relier.redis.pipeline(transaction=False) as pipe:
        for task_id in task_ids:
            pipe.set(relier.keys.chaos_release(task_id), 1, ex=3600)
        pipe.execute()


def executions(relier: _app.Relier, task_ids: list[str]) -> dict[str, int]:
    """How many times each probe's body ran."""
    with relier.redis.pipeline(transaction=False) as pipe:
        for task_id in task_ids:
            pipe.scard(relier.keys.chaos_exec(task_id))
        raw = pipe.execute()
    return {i: int(n or 0) for i, n in zip(task_ids, raw, strict=True)}


def probe_workers(relier: _app.Relier) -> dict[str, dict[str, Any]]:
    """Worker id -> ``{"node", "host", "pid", "started"}`` of each worker that listed itself."""
    raw = relier.redis.hgetall(relier.keys.chaos_workers)
    return {k.decode(): json.loads(v) for k, v in raw.items()}


# -- the worker side: only acts in a worker whose settings say RELIER_CHAOS=1 --


def _on_after_setup(sender: Any = None, instance: Any = None, **_: Any) -> None:
    if instance is not None and _enabled():
        instance.app.amqp.queues.select_add(QUEUE)


def _on_ready(sender: Any = None, **_: Any) -> None:
    wid = current_worker_id("")
    if not wid or not _enabled():
        return
    relier = _app.current()
    node = str(getattr(sender, "hostname", wid.split("#")[0]))
    info = {"node": node, "host": socket.gethostname(), "pid": os.getpid(), "started": now_ms()}
    try:
        relier.redis.hset(relier.keys.chaos_workers, wid, json.dumps(info))
    except redis.exceptions.RedisError as exc:
        log.warning("relier: could not list this worker for rl chaos: %s", exc)
        return
    log.info("relier: chaos probes enabled on %s (queue %s)", wid, QUEUE)


def _on_shutdown(**_: Any) -> None:
    wid = current_worker_id("")
    if not wid or not _enabled():
        return
    relier = _app.current()
    try:
        relier.redis.hdel(relier.keys.chaos_workers, wid)
    except redis.exceptions.RedisError as exc:
        log.warning("relier: could not unlist this worker from rl chaos: %s", exc)


celeryd_after_setup.connect(_on_after_setup, weak=False)
worker_ready.connect(_on_ready, weak=False)
worker_shutdown.connect(_on_shutdown, weak=False)

"""The only place Redis key names are built.

Per-task keys share the hash tag ``{<task id>}`` so one task's keys live in one
Redis Cluster slot. Nothing here collides with kombu's own keys (``unacked``,
``unacked_index``, ``_kombu.binding.*``, the queue lists): every key of ours
starts with the configurable prefix (``rl`` below).

==========================  ======  ==============  ==========================
key                         type    written by      lifetime
==========================  ======  ==============  ==========================
``rl:{<id>}:job``           hash    every script    result_ttl once SUCCEEDED;
                                                    kept while DEAD (the DLQ)
``rl:{<id>}:hist``          list    every script    as ``job``; capped at
                                                    history_max events
``rl:{<id>}:done``          list    complete, fail  as ``job``; one element once
                                                    the task ended (waiters
                                                    block on it)
``rl:schedule``             zset    fail, dispatch, member = task id, score =
                                    claim, requeue  due time (ms): retries,
                                                    countdown pushes, re-checks
                                                    of waiting tasks
``rl:dlq``                  zset    fail,           member = task id, score =
                                    dead_letter     time it died (ms)
``rl:worker:<wid>``         string  worker          lease: PX lease_ttl_ms,
                                                    renewed by the worker's
                                                    main process
``rl:workers``              zset    worker,         member = worker id, score =
                                    resurrector     start time (ms); removed
                                                    once its work is reaped
``rl:owned:<wid>``          set     reserve, claim, task ids a worker owns
                                    complete, fail, (RESERVED or RUNNING);
                                    resurrect       deleted once reaped
``rl:draining:<wid>``       string  worker          set while a worker shuts
                                                    down: its claims refuse
``rl:leader``               string  resurrector     the resurrector lock; PX
``rl:rate:<task>[:<key>]``  string  dispatch        GCRA arrival time of the
                                                    next call; PX ~ interval
``rl:rate:<name>``          string  admit           the same, for a limit on
                                                    work that is not a push
                                                    (web adapters' routes use
                                                    ``http:<route>[:<key>]``)
``rl:lock:{<key>}``         string  locks           holder token of an
                                                    idempotency lock; PX ttl
``rl:lock:{<key>}:fence``   string  locks           last fence handed out for
                                                    the lock (no expiry)
``rl:sem:<task>``           zset    claim, release  max_concurrency holders:
                                                    member = task id, score =
                                                    fence of its attempt
``rl:semwait:<task>``       zset    claim, release  tasks waiting for a slot:
                                                    member = task id, score =
                                                    first wait time (ms)
``rl:reconciled``           string  resurrector     run_id of the Redis run
                                                    whose stranded tasks were
                                                    republished after restart
``rl:orphans:cursor``       string  resurrector     delivery time up to which
                                                    kombu's unacked entries
                                                    were checked for orphans
``rl:queues``               set     dispatch        names of the queues tasks
                                                    were pushed to (``rl
                                                    status`` shows their
                                                    depth); no expiry
``rl:chaos:workers``        hash    chaos_probes    workers that run ``rl chaos``
                                                    probes; removed at exit
``rl:{<id>}:chaos``         set     chaos_probes    one token per probe body
                                                    run; EX one day
``rl:{<id>}:chaos_release`` string  rl chaos        ends a holding probe's
                                                    sleep; EX one hour
``rl:stats:<start s>``      hash    dispatch,       event counts of one 10 s
                                    complete, fail, bucket (field = event);
                                    dead_letter,    EX STATS_TTL_S from the
                                    resurrect,      bucket's first count of
                                    defer,          each event
                                    dlq_release
==========================  ======  ==============  ==========================

``<wid>`` is a worker *incarnation* id (node name, pid, random suffix), so a
worker restarted under the same node name never inherits or hides the work
of the one before it.

The Celery queue list a task is published to is kombu's key (the queue name,
plus kombu's ``global_keyprefix`` if set); dispatch and requeue LPUSH to it.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["STATS_BUCKET_MS", "STATS_TTL_S", "Keys", "TaskKeys"]

STATS_BUCKET_MS = 10_000
"""Width of one ``rl:stats:<start s>`` bucket of event counts."""
STATS_TTL_S = 120
"""Lifetime of a stats bucket: longer than the one-minute window it serves,
plus the clock skew between hosts."""


@dataclass(frozen=True, slots=True)
class TaskKeys:
    """The keys of one task, all in the task's hash-tag slot."""

    job: str
    hist: str
    done: str


@dataclass(frozen=True, slots=True)
class Keys:
    """Key builder for one prefix (and kombu's queue key prefix)."""

    prefix: str = "rl"
    queue_prefix: str = ""

    def task(self, task_id: str) -> TaskKeys:
        base = f"{self.prefix}:{{{task_id}}}"
        return TaskKeys(job=f"{base}:job", hist=f"{base}:hist", done=f"{base}:done")

    @property
    def schedule(self) -> str:
        return f"{self.prefix}:schedule"

    @property
    def dlq(self) -> str:
        return f"{self.prefix}:dlq"

    def worker(self, worker_id: str) -> str:
        return f"{self.prefix}:worker:{worker_id}"

    @property
    def workers(self) -> str:
        return f"{self.prefix}:workers"

    def owned(self, worker_id: str) -> str:
        return f"{self.prefix}:owned:{worker_id}"

    def draining(self, worker_id: str) -> str:
        return f"{self.prefix}:draining:{worker_id}"

    @property
    def leader(self) -> str:
        return f"{self.prefix}:leader"

    def rate(self, bucket: str) -> str:
        return f"{self.prefix}:rate:{bucket}"

    def semaphore(self, task_name: str) -> str:
        return f"{self.prefix}:sem:{task_name}"

    def semaphore_wait(self, task_name: str) -> str:
        return f"{self.prefix}:semwait:{task_name}"

    @property
    def job_prefix(self) -> str:
        """What a job key starts with; scripts that read other tasks' jobs append ``<id>}:job``."""
        return f"{self.prefix}:{{"

    def lock(self, key: str) -> str:
        return f"{self.prefix}:lock:{{{key}}}"

    def lock_fence(self, key: str) -> str:
        return f"{self.prefix}:lock:{{{key}}}:fence"

    @property
    def task_pattern(self) -> str:
        """SCAN pattern matching every task's journal hash."""
        return f"{self.prefix}:{{*}}:job"

    @property
    def reconciled(self) -> str:
        return f"{self.prefix}:reconciled"

    @property
    def orphans_cursor(self) -> str:
        return f"{self.prefix}:orphans:cursor"

    @property
    def queues(self) -> str:
        """Set of the queue names tasks were pushed to."""
        return f"{self.prefix}:queues"

    def stats(self, now_ms: int) -> str:
        """The event-count bucket holding time ``now_ms``, named by its start in seconds."""
        start_s = now_ms // STATS_BUCKET_MS * (STATS_BUCKET_MS // 1000)
        return f"{self.prefix}:stats:{start_s}"

    @property
    def chaos_workers(self) -> str:
        """Hash of the workers that run ``rl chaos`` probes (:mod:`relier.chaos.probes`)."""
        return f"{self.prefix}:chaos:workers"

    def chaos_exec(self, task_id: str) -> str:
        """Set of tokens, one per execution of a chaos probe's body, in the task's slot."""
        return f"{self.prefix}:{{{task_id}}}:chaos"

    def chaos_release(self, task_id: str) -> str:
        """String whose presence ends a holding chaos probe's long sleep early."""
        return f"{self.prefix}:{{{task_id}}}:chaos_release"

    def queue(self, name: str) -> str:
        """kombu's list for ``name`` at priority 0 (what Celery workers BRPOP)."""
        return f"{self.queue_prefix}{name}"

"""Key names: one prefix, one hash-tag slot per task, nothing of kombu's."""

from __future__ import annotations

from redis.crc import key_slot

from relier.journal.keys import Keys

KOMBU_KEYS = ("unacked", "unacked_index", "unacked_mutex", "_kombu.binding.celery", "celery")


def test_default_names() -> None:
    keys = Keys()
    tk = keys.task("abc")
    assert (tk.job, tk.hist, tk.done) == ("rl:{abc}:job", "rl:{abc}:hist", "rl:{abc}:done")
    assert keys.schedule == "rl:schedule"
    assert keys.dlq == "rl:dlq"
    assert keys.worker("w1@host") == "rl:worker:w1@host"
    assert keys.workers == "rl:workers"
    assert keys.owned("w1") == "rl:owned:w1"
    assert keys.draining("w1") == "rl:draining:w1"
    assert keys.leader == "rl:leader"
    assert keys.queue("celery") == "celery"


def test_prefix_and_queue_prefix() -> None:
    keys = Keys(prefix="app:rl", queue_prefix="kombu:")
    assert keys.task("x").job == "app:rl:{x}:job"
    assert keys.schedule == "app:rl:schedule"
    assert keys.dlq == "app:rl:dlq"
    assert keys.worker("n") == "app:rl:worker:n"
    assert keys.owned("n") == "app:rl:owned:n"
    assert keys.queue("emails") == "kombu:emails"


def test_a_tasks_keys_share_one_cluster_slot() -> None:
    for task_id in ("a", "0b9e7d1c-4d1f-4a55-9c39-2f2f4a9f0e11", "order:42"):
        tk = Keys(prefix="p").task(task_id)
        slots = {key_slot(k.encode()) for k in (tk.job, tk.hist, tk.done)}
        assert slots == {key_slot(task_id.encode())}


def test_different_tasks_spread_over_slots() -> None:
    slots = {key_slot(Keys().task(str(n)).job.encode()) for n in range(200)}
    assert len(slots) > 100


def test_no_key_collides_with_kombu() -> None:
    keys = Keys()
    tk = keys.task("celery")
    ours = [
        keys.schedule, keys.dlq, keys.worker("celery"), keys.workers, keys.owned("celery"),
        keys.draining("celery"), keys.leader, tk.job, tk.hist, tk.done,
    ]  # fmt: skip
    for key in ours:
        assert key.startswith("rl:")
        assert key not in KOMBU_KEYS


def test_queue_set_and_stats_buckets() -> None:
    keys = Keys(prefix="app:rl")
    assert keys.queues == "app:rl:queues"
    assert keys.stats(1_795_690_203_449) == "app:rl:stats:1795690200"
    assert keys.stats(1_795_690_209_999) == keys.stats(1_795_690_200_000)
    assert keys.stats(1_795_690_210_000) == "app:rl:stats:1795690210"

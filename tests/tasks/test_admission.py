"""Admission control against a real Redis: rate limits, bursts, per-key
limits, queue-depth caps, exact retry_after, and nothing enqueued on refusal.

Admission is decided at push time, in the dispatch script, so no worker is
needed: pushes land in the queue and stay there.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from relier import AdmissionRejectedError, ConfigurationError, Relier, rl_task
from relier.hub import reset
from relier.tasks.admission import parse_rate


@rl_task(name="tests.adm.limited", rate_limit="20/s")
def limited(n: int) -> int:
    return n


@rl_task(name="tests.adm.bursty", rate_limit="10/s", rate_burst=5)
def bursty(n: int) -> int:
    return n


@rl_task(name="tests.adm.tenant", rate_limit="1/m", rate_key=lambda tenant, n: tenant)
def per_tenant(tenant: str, n: int) -> int:
    return n


@rl_task(name="tests.adm.capped", max_queue_depth=3, queue="adm-capped")
def capped(n: int) -> int:
    return n


@rl_task(name="tests.adm.idem", rate_limit="1/m", idempotent=True)
def idem(n: int) -> int:
    return n


@pytest.fixture
def rl(rl_redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Relier]:
    monkeypatch.setenv("RELIER_REDIS_URL", rl_redis_url)
    reset()
    from relier import current

    yield current()
    reset()


def test_parse_rate() -> None:
    assert parse_rate("100/s") == 10.0
    assert parse_rate("30/m") == 2000.0
    assert parse_rate("2/h") == 1_800_000.0
    for bad in ("100", "0/s", "ten/s", "5/d"):
        with pytest.raises(ConfigurationError):
            parse_rate(bad)


def test_bad_admission_options_are_refused_at_decoration() -> None:
    with pytest.raises(ConfigurationError):
        rl_task(name="tests.adm.bad1", rate_limit="fast")(lambda: None)
    with pytest.raises(ConfigurationError):
        rl_task(name="tests.adm.bad2", rate_limit="1/s", rate_burst=0)(lambda: None)
    with pytest.raises(ConfigurationError):
        rl_task(name="tests.adm.bad3", max_queue_depth=0)(lambda: None)
    with pytest.raises(ConfigurationError):
        rl_task(name="tests.adm.bad4", rate_key=lambda: "x")(lambda: None)


def test_rejection_enqueues_nothing_and_retry_after_is_exact(rl: Relier) -> None:
    limited.push(1)
    queued = rl.redis.llen(rl.keys.queue("celery"))
    with pytest.raises(AdmissionRejectedError) as info:
        limited.push(2)
    assert info.value.reason == "rate"
    assert 0.0 < info.value.retry_after <= 0.05
    assert rl.redis.llen(rl.keys.queue("celery")) == queued
    assert len(rl.redis.keys(f"{rl.settings.key_prefix}:{{*}}:job")) == 1
    time.sleep(info.value.retry_after)
    limited.push(3)  # admitted exactly when retry_after said


def test_burst_admits_that_many_at_once_then_spaces(rl: Relier) -> None:
    admitted = 0
    for n in range(8):
        try:
            bursty.push(n)
            admitted += 1
        except AdmissionRejectedError:
            pass
    assert admitted == 5


def test_rate_key_gives_each_tenant_its_own_limit(rl: Relier) -> None:
    per_tenant.push("acme", 1)
    per_tenant.push("globex", 1)
    with pytest.raises(AdmissionRejectedError) as info:
        per_tenant.push("acme", 2)
    assert 59 < info.value.retry_after <= 60


def test_queue_depth_cap(rl: Relier) -> None:
    for n in range(3):
        capped.push(n)
    with pytest.raises(AdmissionRejectedError) as info:
        capped.push(4)
    assert info.value.reason == "depth"
    assert info.value.retry_after == rl.settings.depth_retry_after
    rl.redis.rpop(rl.keys.queue("adm-capped"))  # a worker took one
    capped.push(5)


def test_idempotent_duplicates_use_no_capacity(rl: Relier) -> None:
    first = idem.push(7)
    again = idem.push(7)  # a duplicate: answered before admission
    assert again.id == first.id and not again.created
    with pytest.raises(AdmissionRejectedError):
        idem.push(8)


def test_push_many_reports_the_rejected_calls(rl: Relier) -> None:
    with pytest.raises(AdmissionRejectedError) as info:
        bursty.push_many([(n,) for n in range(8)])
    assert info.value.rejected == [5, 6, 7]
    assert [h is not None for h in info.value.handles] == [True] * 5 + [False] * 3
    assert rl.redis.llen(rl.keys.queue("celery")) == 5


PRODUCER = textwrap.dedent(
    """
    import sys, time
    from relier import AdmissionRejectedError, rl_task

    @rl_task(name="tests.adm.shared", rate_limit="20/s")
    def shared(n):
        return n

    start, seconds = float(sys.argv[1]), float(sys.argv[2])
    while time.time() < start:
        time.sleep(0.001)
    admitted = 0
    while time.time() < start + seconds:
        try:
            shared.push(1)
            admitted += 1
        except AdmissionRejectedError as exc:
            time.sleep(min(exc.retry_after, 0.01))
    print(admitted)
    """
)


def test_20_per_second_holds_within_10_percent_over_5s_from_4_processes(
    rl_env: dict[str, str], tmp_path: Path
) -> None:
    script = tmp_path / "producer.py"
    script.write_text(PRODUCER)
    start = time.time() + 2.0
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(start), "5"],
            env=rl_env,
            stdout=subprocess.PIPE,
            text=True,
            cwd=os.getcwd(),
        )
        for _ in range(4)
    ]
    counts = [int(p.communicate(timeout=60)[0].strip()) for p in procs]
    total = sum(counts)
    print(f"admitted per producer {counts}, total {total} (target 100 +- 10%)")
    assert all(c > 0 for c in counts), counts  # every producer got a share
    assert 90 <= total <= 110, counts  # 20/s * 5 s = 100 (+1 for the first)

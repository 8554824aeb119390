"""The Lua scripts as shipped: one file per transition, each with its contract."""

from __future__ import annotations

import hashlib
import re
from typing import Any

import pytest
import redis

from relier.journal.scripts import (
    PRELUDE,
    SCRIPT_NAMES,
    Claim,
    _claim_result,
    load_all,
    lua_dir,
    program,
    source,
)


def test_every_lua_file_is_registered() -> None:
    files = sorted(p.stem for p in lua_dir().glob("*.lua") if not p.stem.startswith("_"))
    assert tuple(files) == SCRIPT_NAMES
    assert list(SCRIPT_NAMES) == sorted(SCRIPT_NAMES)


@pytest.mark.parametrize("name", SCRIPT_NAMES)
def test_script_heads_with_its_contract(name: str) -> None:
    text = source(name)
    assert text.startswith(f"-- {name}: ")
    assert "-- KEYS[1] = " in text
    assert "-- ARGV[1] = " in text
    assert "-- returns " in text
    # One small transition each: at most 60 lines of code under the contract.
    code = [line for line in text.splitlines() if not line.lstrip().startswith("--")]
    assert 5 <= len(code) <= 60


@pytest.mark.parametrize("name", SCRIPT_NAMES)
def test_script_is_cluster_safe_and_clock_free(name: str) -> None:
    code = "\n".join(line for line in source(name).splitlines() if not line.startswith("--"))
    # Keys come only from KEYS[]: no key names built in Lua, with one
    # documented exception: the max_concurrency semaphore's scripts read the
    # job hash of each holder or waiter (an HMGET, never a write), which is
    # why Relier runs on one Redis node, not Cluster (docs/architecture.md).
    calls = re.findall(r"redis\.call\('(\w+)',\s*([^,)]+)", code)
    assert calls
    derived = [c for c in calls if not c[1].startswith("KEYS[")]
    if name in ("claim", "release"):
        assert len(derived) == 1, derived
        command, key = derived[0]
        assert command == "HMGET" and re.fullmatch(r"ARGV\[\d\] \.\. \w+(\[i\])? \.\. '}:job'", key)
    else:
        assert not derived, (name, derived)
    # Time comes from ARGV (one clock, controllable in tests), with one
    # documented exception: the rate limiter (in dispatch, and alone in admit)
    # reads Redis's own clock, because producers on several hosts share one limit.
    if name in ("admit", "dispatch"):
        assert code.count("redis.call('TIME')") == 1
        code = code.replace("redis.call('TIME')", "")
    assert "'TIME'" not in code
    assert "'KEYS'" not in code
    assert "unpack(" not in code
    assert "math.random" not in code


def test_load_all_returns_the_sha1_of_each_source(rl_redis_url: str) -> None:
    client = redis.Redis.from_url(rl_redis_url)
    try:
        shas = load_all(client)
    finally:
        client.close()
    assert shas == {n: hashlib.sha1(program(n).encode()).hexdigest() for n in SCRIPT_NAMES}


def test_claim_result_parsing() -> None:
    run = _claim_result([b"run", 3, 2, b"{env}", b"{p}"])
    assert run == Claim(
        run=True, state="RUNNING", fence=3, attempt=2, envelope=b"{env}", progress=b"{p}"
    )
    assert _claim_result([b"run", 1, 1, b"{}", None]).progress is None
    assert _claim_result([b"drop", b"SUCCEEDED"]) == Claim(run=False, state="SUCCEEDED")
    assert _claim_result(["drop", "MISSING"]).state == "MISSING"


def test_worker_calls_survive_a_script_flush_and_a_killed_connection(
    default_relier: Any,
) -> None:
    """claim and complete go over each thread's own connection (Scripts._direct):
    Redis forgetting the scripts reloads them; a dropped connection raises once
    (the executor's retry goes on) and the next call opens a new one."""
    from relier import rl_task

    @rl_task(name="scripts.unit.direct")
    def direct() -> None:
        return None

    rl = default_relier
    scripts = rl.scripts
    first, second = direct.push(), direct.push()
    rl.redis.script_flush()
    claim = scripts.claim(first.id, "w@t#1-aaaaaa", 1, token="t1")
    assert claim.run and claim.fence == 1
    assert scripts.complete(first.id, claim.fence, b"null", 2, 60, "w@t#1-aaaaaa") is True
    own = scripts._local.conn
    killed = rl.redis.client_kill_filter(_type=None, addr=f"{own._sock.getsockname()[0]}:"
                                         f"{own._sock.getsockname()[1]}")  # fmt: skip
    assert killed == 1
    with pytest.raises(redis.exceptions.ConnectionError):
        scripts.claim(second.id, "w@t#1-aaaaaa", 3, token="t2")
    claim = scripts.claim(second.id, "w@t#1-aaaaaa", 3, token="t2")
    assert claim.run and scripts._local.conn is own  # reconnected, same connection object
    scripts.close()
    assert own._sock is None


def test_every_script_runs_after_the_prelude() -> None:
    for name in SCRIPT_NAMES:
        assert program(name) == source(PRELUDE) + "\n" + source(name)


def test_the_prelude_touches_only_the_keys_its_callers_pass() -> None:
    code = "\n".join(ln for ln in source(PRELUDE).splitlines() if not ln.lstrip().startswith("--"))
    calls = re.findall(r"redis\.call\('(\w+)',\s*([^,)]+)", code)
    assert calls
    assert {key for _, key in calls} == {"key"}
    assert "'TIME'" not in code and "KEYS" not in code and "ARGV" not in code


@pytest.mark.parametrize("name", SCRIPT_NAMES)
def test_scripts_append_history_and_count_only_through_the_prelude(name: str) -> None:
    # One trimming rule and one counter: a hand-written copy would drift.
    code = source(name)
    assert "'LTRIM'" not in code
    assert not re.search(r"'HINCRBY', KEYS\[[^]]+\], '?\w+'?, 1\) == 1", code)

"""ChildWatcher: a dead pool process's task goes back, even if Redis was down when it died."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import redis

from relier import RedisUnavailableError, Relier, load_settings
from relier.testing import RedisServer
from relier.worker.children import ChildWatcher, process_alive
from tests.lua.journal import KEYS, history, pending


def _sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])


def test_process_alive_sees_exit_and_zombies() -> None:
    proc = _sleeper()
    assert process_alive(proc.pid)
    proc.kill()
    # Not reaped yet (no wait()): the zombie must already count as dead.
    deadline = time.monotonic() + 5
    while process_alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not process_alive(proc.pid)
    assert proc.poll() is not None  # it was a zombie until this reaped it
    assert not process_alive(proc.pid)


def test_scan_notes_a_death_without_redis_and_poll_acts_on_it(default_relier: Relier) -> None:
    relier = default_relier
    child = _sleeper()
    try:
        pending(relier.scripts)
        assert relier.scripts.claim("t1", "w1", 2_000, child.pid).run
        watcher = ChildWatcher(relier, "w1", lambda: [child.pid] if child.poll() is None else [])
        assert not watcher.scan() and not watcher.has_dead()
        child.kill()
        child.wait(5)
        # The event loop's check: the death is noted, the journal not touched yet.
        assert watcher.scan() and watcher.has_dead()
        assert relier.redis.hget(KEYS.task("t1").job, "state") == b"RUNNING"
        assert watcher.poll() == 1
        assert relier.redis.hget(KEYS.task("t1").job, "state") == b"PENDING"
        assert not watcher.has_dead() and not watcher.scan()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(5)


def test_death_seen_while_redis_is_down_is_acted_on_when_it_returns(
    rl_redis: RedisServer,
) -> None:
    server = rl_redis.start_extra()
    relier = Relier(load_settings(redis_url=server.url))
    child = _sleeper()
    try:
        scripts = relier.scripts
        pending(scripts)
        assert scripts.claim("t1", "w1", 2_000, child.pid).run
        watcher = ChildWatcher(relier, "w1", lambda: [child.pid] if child.poll() is None else [])
        assert watcher.poll() == 0  # alive: nothing to do

        server.stop()
        child.kill()
        child.wait(5)
        with pytest.raises((RedisUnavailableError, redis.ConnectionError)):
            watcher.poll()
        # Still failing: the dead pid must not be forgotten between attempts.
        with pytest.raises((RedisUnavailableError, redis.ConnectionError)):
            watcher.poll()

        server.start()
        assert watcher.poll() == 1
        job = relier.redis.hgetall(KEYS.task("t1").job)
        assert job[b"state"] == b"PENDING"
        assert job[b"res"] == b"1"
        assert [e["e"] for e in history(relier.redis)][-1] == "resurrected"
        # Acted on once: the next poll finds nothing more to do.
        assert watcher.poll() == 0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(5)
        relier.close()
        server.stop()

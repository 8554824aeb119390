"""The watchdog of one attempt: deadlines, cancellation, and who records the outcome."""

from __future__ import annotations

import logging
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable

import pytest

from relier.worker.timeouts import EXIT_CODE, Verdict, Watchdog, thread_stack


class Calls:
    """Records when each callback ran, in seconds since the watchdog started."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.at: dict[str, list[float]] = {"soft": [], "hard": [], "cancel": []}

    def record(self, name: str, then: Callable[[], object] = lambda: None) -> Callable[[], None]:
        def callback() -> None:
            self.at[name].append(time.monotonic() - self.started)
            then()

        return callback


def watchdog(
    calls: Calls,
    soft: float | None = None,
    hard: float | None = None,
    *,
    on_soft: Callable[[], object] = lambda: None,
    on_hard: Callable[[], object] = lambda: None,
    grace: float = 0.2,
) -> Watchdog:
    return Watchdog(
        "tests.job[1]", soft, hard, calls.record("soft", on_soft), calls.record("hard", on_hard),
        grace=grace,
    )  # fmt: skip


def test_an_attempt_that_ends_in_time_triggers_nothing() -> None:
    calls = Calls()
    dog = watchdog(calls, soft=0.1, hard=0.2)
    dog.start()
    assert dog.finish() is Verdict.IN_TIME
    dog.join()
    time.sleep(0.3)
    assert calls.at == {"soft": [], "hard": [], "cancel": []}


def test_soft_deadline_calls_back_once_and_the_attempt_runs_on() -> None:
    calls = Calls()
    dog = watchdog(calls, soft=0.1, hard=None)
    dog.start()
    time.sleep(0.5)
    assert dog.finish() is Verdict.IN_TIME
    dog.join()
    [at] = calls.at["soft"]
    assert 0.1 <= at < 0.6
    assert calls.at["hard"] == []


def test_a_failing_soft_callback_is_logged_and_the_hard_deadline_still_holds(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken() -> None:
        raise RuntimeError("hook broke")

    calls = Calls()
    dog = watchdog(calls, soft=0.05, hard=0.15, on_soft=broken)
    with caplog.at_level(logging.ERROR, logger="relier.worker"):
        dog.start()
        dog.join()
    assert len(calls.at["hard"]) == 1
    assert "the soft timeout of tests.job[1] failed" in caplog.text
    assert "RuntimeError: hook broke" in caplog.text
    assert dog.finish() is Verdict.ABANDONED


def test_a_slow_soft_callback_does_not_delay_the_hard_deadline() -> None:
    release = threading.Event()
    calls = Calls()
    dog = watchdog(calls, soft=0.05, hard=0.2, on_soft=lambda: release.wait(5))
    dog.start()
    dog.join()
    release.set()
    [at] = calls.at["hard"]
    assert 0.2 <= at < 1.5


def test_a_sync_attempt_past_its_hard_deadline_is_taken_over_at_once() -> None:
    calls = Calls()
    dog = watchdog(calls, hard=0.1)
    dog.start()  # no cancel: a sync attempt
    dog.join()
    [at] = calls.at["hard"]
    assert 0.1 <= at < 0.6
    # The attempt ending later finds its outcome recorded already.
    assert dog.finish() is Verdict.ABANDONED


def test_a_cancelled_attempt_that_ends_within_the_grace_is_the_callers_to_record() -> None:
    calls = Calls()
    verdicts: list[Verdict] = []
    dog = watchdog(calls, hard=0.1, grace=1.0)

    def end_soon() -> None:
        # The cancelled attempt unwinds and ends in its own thread.
        threading.Timer(0.05, lambda: verdicts.append(dog.finish())).start()

    dog.start(cancel=calls.record("cancel", end_soon))
    dog.join()
    assert verdicts == [Verdict.CANCELLED]
    assert len(calls.at["cancel"]) == 1
    assert calls.at["hard"] == []


def test_a_cancelled_attempt_still_running_after_the_grace_is_taken_over() -> None:
    calls = Calls()
    dog = watchdog(calls, hard=0.1, grace=0.2)
    dog.start(cancel=calls.record("cancel"))
    dog.join()
    [cancelled] = calls.at["cancel"]
    [taken_over] = calls.at["hard"]
    assert 0.1 <= cancelled < 0.6
    assert taken_over - cancelled >= 0.2
    assert dog.finish() is Verdict.ABANDONED


def test_a_failing_hard_callback_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    def broken() -> None:
        raise ConnectionError("redis went away")

    calls = Calls()
    dog = watchdog(calls, hard=0.05, on_hard=broken)
    with caplog.at_level(logging.ERROR, logger="relier.worker"):
        dog.start()
        dog.join()
    assert "the hard timeout of tests.job[1] failed" in caplog.text


@pytest.mark.parametrize("cancellable", [False, True], ids=["sync", "async"])
def test_ending_and_timing_out_are_mutually_exclusive(cancellable: bool) -> None:
    # The attempt ends right around its deadline, many times over: exactly
    # one side records the outcome, never both and never neither.
    rng = random.Random(7)
    outcomes: set[tuple[Verdict, bool]] = set()
    for _ in range(60):
        calls = Calls()
        dog = watchdog(calls, hard=0.01, grace=0.005)
        dog.start(cancel=(lambda: None) if cancellable else None)
        time.sleep(rng.uniform(0.005, 0.02))
        verdict = dog.finish()
        dog.join()
        taken_over = bool(calls.at["hard"])
        assert taken_over == (verdict is Verdict.ABANDONED), verdict
        outcomes.add((verdict, taken_over))
    assert (Verdict.IN_TIME, False) in outcomes
    assert (Verdict.ABANDONED, True) in outcomes


def test_thread_stack_shows_the_frames_below_the_caller() -> None:
    ready, release = threading.Event(), threading.Event()

    def runner() -> None:
        stuck_here()

    def stuck_here() -> None:
        ready.set()
        release.wait(5)

    thread = threading.Thread(target=runner)
    thread.start()
    ready.wait(5)
    try:
        assert thread.ident is not None
        stack = thread_stack(thread.ident, below=runner.__code__)
    finally:
        release.set()
        thread.join()
    assert "in stuck_here" in stack and "release.wait(5)" in stack
    assert "in runner" not in stack and "in _bootstrap" not in stack
    assert thread_stack(thread.ident, below=runner.__code__) == ""


REPLACE = """
import logging, sys
from relier.worker import timeouts
logging.basicConfig(stream=sys.stderr)
if sys.argv[1] == "child":
    timeouts.note_pool_child()
timeouts.replace_process("tests.job[1]")
print("still here")
"""


def test_replace_process_ends_only_a_prefork_pool_process() -> None:
    child = subprocess.run(
        [sys.executable, "-c", REPLACE, "child"], capture_output=True, text=True, timeout=60
    )
    assert child.returncode == EXIT_CODE
    assert "replacing pool process" in child.stderr and "still here" not in child.stdout
    main = subprocess.run(
        [sys.executable, "-c", REPLACE, "main"], capture_output=True, text=True, timeout=60
    )
    assert main.returncode == 0, main.stderr
    assert "keeps running as a zombie" in main.stderr and "still here" in main.stdout

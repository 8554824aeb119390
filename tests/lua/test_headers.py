"""Each script's KEYS/ARGV header is what its Python builder sends.

The header of ``lua/<name>.lua`` is the contract a reader trusts; the
builder of the same name in :mod:`relier.journal.scripts` is what Redis is
actually sent. Each builder is called here with distinct sample values, and
every header line is checked against the list it built: as many KEYS and
ARGV as the header documents (numbered 1..n without a gap), each documented
key the key that description names (``rl:{id}:job`` is the sample task's job
hash, ``rl:owned:<worker>`` the sample worker's set, ...), each ARGV with a
known description (task id, now, history_max, fence, ...) that value. A
script's body may use no KEYS[i] or ARGV[i] beyond its header. No Redis is
needed: nothing is run.
"""

from __future__ import annotations

import inspect
import re
import typing
from collections.abc import Callable
from typing import Any

import pytest

from relier.journal import scripts as scripts_module
from relier.journal.keys import STATS_TTL_S, Keys
from relier.journal.scripts import SCRIPT_NAMES, Built, NewTask, lua_dir, source

KEYS = Keys(prefix="rl")
HMAX = 7
TASK_ID, TASK_NAME, QUEUE, OWNER, NOW, FENCE = "T-1", "tests.name", "Q-1", "W/1", 1_234_567, 41
TAG, BUCKET, LOCK_KEY, ENVELOPE = "DTAG", "bucket-1", "lock-1", b'{"env":1}'

# A parameter's sample value by name, then by annotation.
BY_NAME: dict[str, Any] = {
    "task_id": TASK_ID, "task_name": TASK_NAME, "queue": QUEUE, "owner": OWNER, "now": NOW,
    "fence": FENCE, "delivery_tag": TAG, "bucket": BUCKET, "key": LOCK_KEY,
}  # fmt: skip
BY_TYPE: dict[Any, Any] = {
    str: "s", int: 3, float: 2.5, bytes: b"b", tuple[int, int]: (5, 6), int | None: 3,
    NewTask: NewTask(TASK_ID, TASK_NAME, QUEUE, ENVELOPE, "TPL", TAG, NOW, 0),
}  # fmt: skip

# What a KEYS description names, by its start (the most specific first).
KEY_OF: list[tuple[str, Callable[[], tuple[str, ...]]]] = [
    ("rl:{id}:job", lambda: (KEYS.task(TASK_ID).job,)),
    ("rl:{id}:hist", lambda: (KEYS.task(TASK_ID).hist,)),
    ("rl:{id}:done", lambda: (KEYS.task(TASK_ID).done,)),
    ("rl:owned:", lambda: (KEYS.owned(OWNER),)),
    ("rl:draining:", lambda: (KEYS.draining(OWNER),)),
    ("rl:semwait:", lambda: (KEYS.semaphore_wait(TASK_NAME),)),
    ("rl:sem:", lambda: (KEYS.semaphore(TASK_NAME),)),
    ("rl:schedule", lambda: (KEYS.schedule,)),
    ("rl:dlq", lambda: (KEYS.dlq,)),
    ("rl:leader", lambda: (KEYS.leader,)),
    ("rl:queues", lambda: (KEYS.queues,)),
    ("rl:stats:", lambda: (KEYS.stats(NOW),)),
    ("rl:rate:", lambda: (KEYS.rate(BUCKET), KEYS.rate(TASK_NAME))),
    ("rl:lock:{<key>}:fence", lambda: (KEYS.lock_fence(LOCK_KEY),)),
    ("rl:lock:{<key>}", lambda: (KEYS.lock(LOCK_KEY),)),
    ("queue list (kombu)", lambda: (KEYS.queue(QUEUE),)),
]

# What an ARGV description names, for those that are one known value.
ARGV_OF: list[tuple[str, Any]] = [
    ("task id", TASK_ID),
    ("task name", TASK_NAME),
    ("queue name", QUEUE),
    ("worker id", OWNER),
    ("now (ms)", NOW),
    ("history_max", HMAX),
    ("stats bucket TTL (s)", STATS_TTL_S),
    ("fence", FENCE),
    ("delivery tag", TAG),
    ("envelope JSON", ENVELOPE),
    ("job key prefix", KEYS.job_prefix),
]

ENTRY = re.compile(r"\b(KEYS|ARGV)\[(\d+)\] = (.+?)(?=\s{2,}(?:KEYS|ARGV)\[|\s*$)")
USE = re.compile(r"\b(KEYS|ARGV)\[(\d+)\]")


def header(name: str) -> tuple[str, str]:
    """The leading comment block of a script, and the code after it."""
    lines = source(name).splitlines()
    n = next(i for i, line in enumerate(lines) if not line.startswith("--"))
    return "\n".join(lines[:n]), "\n".join(lines[n:])


def documented(name: str) -> dict[str, dict[int, str]]:
    found: dict[str, dict[int, str]] = {"KEYS": {}, "ARGV": {}}
    for line in header(name)[0].splitlines():
        for kind, index, text in ENTRY.findall(line.removeprefix("--")):
            assert int(index) not in found[kind], f"{name}.lua documents {kind}[{index}] twice"
            found[kind][int(index)] = text.strip()
    return found


def sample_call(name: str) -> Built:
    builders = scripts_module._Args(KEYS, HMAX)
    build = getattr(builders, name)
    hints = typing.get_type_hints(build, vars(scripts_module))
    kwargs = {}
    for param in inspect.signature(build).parameters.values():
        if param.name in BY_NAME:
            kwargs[param.name] = BY_NAME[param.name]
        else:
            kwargs[param.name] = BY_TYPE[hints[param.name]]
    built: Built = build(**kwargs)
    assert built.script == name
    return built


def expected_key(description: str) -> tuple[str, ...]:
    for start, key in KEY_OF:
        if description.startswith(start):
            return key()
    raise AssertionError(f"no rule for the key {description!r}: add one to KEY_OF")


def test_every_script_has_one_builder_and_every_builder_a_script() -> None:
    files = sorted(p.stem for p in lua_dir().glob("*.lua") if not p.stem.startswith("_"))
    assert sorted(SCRIPT_NAMES) == files
    builders = {n for n, _ in inspect.getmembers(scripts_module._Args, inspect.isfunction)}
    assert builders - {"__init__", "dispatch_batch"} == set(SCRIPT_NAMES)
    assert all(getattr(scripts_module._Args, n).__wrapped__ for n in SCRIPT_NAMES)


@pytest.mark.parametrize("name", SCRIPT_NAMES)
def test_the_header_numbers_keys_and_argv_without_a_gap(name: str) -> None:
    doc = documented(name)
    assert doc["KEYS"], f"{name}.lua documents no KEYS"
    for kind, entries in doc.items():
        assert sorted(entries) == list(range(1, len(entries) + 1)), f"{name}.lua {kind}"


@pytest.mark.parametrize("name", SCRIPT_NAMES)
def test_the_body_uses_only_what_the_header_documents(name: str) -> None:
    doc = documented(name)
    for kind, index in USE.findall(header(name)[1]):
        assert int(index) in doc[kind], f"{name}.lua uses {kind}[{index}], not in its header"


@pytest.mark.parametrize("name", SCRIPT_NAMES)
def test_the_builder_sends_what_the_header_documents(name: str) -> None:
    doc = documented(name)
    _, keys, argv = sample_call(name)
    assert len(keys) == len(doc["KEYS"]), f"{name}: {keys} against {doc['KEYS']}"
    assert len(argv) == len(doc["ARGV"]), f"{name}: {argv} against {doc['ARGV']}"
    for index, description in doc["KEYS"].items():
        sent = keys[index - 1]
        assert sent in expected_key(description), f"{name} KEYS[{index}] ({description}): {sent}"
    checked = 0
    for index, description in doc["ARGV"].items():
        for start, value in ARGV_OF:
            if description == start or description.startswith(start + " "):
                assert argv[index - 1] == value, f"{name} ARGV[{index}] ({description})"
                checked += 1
                break
    # Every script but the rate and lock ones carries at least one such ARGV.
    if name not in {"admit", "leader", "lock_acquire", "lock_release"}:
        assert checked, f"{name}: no ARGV description recognised"


def test_a_dispatch_batch_is_each_task_s_keys_and_argv_in_turn() -> None:
    builders = scripts_module._Args(KEYS, HMAX)
    one = BY_TYPE[NewTask]
    two = one._replace(task_id="T-2", queue="Q-2")
    script, keys, argv = builders.dispatch_batch([one, two])
    _, k1, a1 = builders.dispatch(one)
    _, k2, a2 = builders.dispatch(two)
    assert script == "dispatch"
    assert (keys, argv) == (k1 + k2, a1 + a2)
    # dispatch.lua finds task i's KEYS and ARGV at these strides.
    doc = documented("dispatch")
    assert (len(k1), len(a1)) == (len(doc["KEYS"]), len(doc["ARGV"]))
    assert f"KEYS[{len(k1)} * (i - 1) + 1]" in header("dispatch")[0]
    assert f"ARGV[{len(a1)} * (i - 1) + 1]" in header("dispatch")[0]

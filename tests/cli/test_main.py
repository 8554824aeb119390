"""``rl`` at the argparse level: rl preflight, every command's --help, exit codes 0/1/2/3.

The operator commands (status, inflight, task, workers, dlq) run against a real worker in
tests/integration/test_cli_ops.py; here they run in-process, for their usage errors.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest

import relier.hub
from relier.cli.main import EXIT_ERROR, EXIT_FAILED, EXIT_OK, EXIT_UNAVAILABLE, build_parser, main


@pytest.fixture(autouse=True)
def clean(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith("RELIER_"):
            monkeypatch.delenv(name)
    relier.hub.reset()
    yield
    relier.hub.reset()


@pytest.fixture
def unsafe_url(rl_redis: Any) -> Iterator[str]:
    server = rl_redis.start_extra("--appendonly", "no")
    yield server.url
    server.stop()


def use(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("RELIER_REDIS_URL", url)


def test_exit_codes() -> None:
    assert (EXIT_OK, EXIT_FAILED, EXIT_ERROR, EXIT_UNAVAILABLE) == (0, 1, 2, 3)


def test_preflight_ok(
    rl_redis_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    use(monkeypatch, rl_redis_url)
    assert main(["preflight"]) == 0
    out = capsys.readouterr().out
    assert f"Redis {rl_redis_url} (read with CONFIG GET)" in out
    assert "appendonly        yes" in out
    assert "maxmemory-policy  noeviction" in out
    assert "OK: Redis is safe for Relier" in out
    assert "FAIL" not in out


def test_preflight_json(
    rl_redis_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    use(monkeypatch, rl_redis_url)
    assert main(["preflight", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True
    assert report["url"] == rl_redis_url
    assert report["appendonly"] is True
    assert report["maxmemory_policy"] == "noeviction"
    assert report["source"] == "CONFIG GET"
    assert report["problems"] == []
    assert report["version"].startswith(("7.", "8."))


def test_preflight_failure_exits_1_with_the_fix(
    unsafe_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    use(monkeypatch, unsafe_url)
    assert main(["preflight"]) == 1
    out = capsys.readouterr().out
    assert "appendonly        no" in out
    assert "FAIL appendonly is off" in out
    assert "CONFIG SET appendonly yes" in out
    assert "OK:" not in out
    relier.hub.reset()
    assert main(["preflight", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False
    assert len(report["problems"]) == 1


@pytest.mark.parametrize(
    "argv",
    [["preflight"], ["status"], ["inflight"], ["task", "x"], ["workers"], ["dlq", "list"],
     ["dlq", "show", "x"], ["dlq", "release", "x"], ["dlq", "purge", "x", "--yes"]],
)  # fmt: skip
def test_unreachable_redis_exits_3(
    argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    use(monkeypatch, "redis://127.0.0.1:1/0")
    assert main(argv) == 3
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("rl: RedisUnavailableError: Redis at redis://127.0.0.1:1/0")


def test_bad_settings_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RELIER_HISTORY_MAX", "1")
    assert main(["preflight"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rl: ConfigurationError: ")
    assert "RELIER_HISTORY_MAX" in err


@pytest.mark.parametrize(
    "argv",
    [[], ["bogus"], ["preflight", "--bogus"], ["preflight", "extra"], ["worker"], ["task"],
     ["dlq"], ["dlq", "bogus"], ["dlq", "show"], ["dlq", "list", "--reason", "bogus"],
     ["dlq", "list", "--since", "yesterday"], ["dlq", "purge", "--older-than", "7"],
     ["inflight", "--interval", "0"], ["status", "--bogus"]],
)  # fmt: skip
def test_bad_arguments_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert "usage: rl" in capsys.readouterr().err


COMMANDS = [
    ["worker"], ["preflight"], ["resurrector"], ["demo"], ["status"], ["inflight"], ["task"],
    ["workers"], ["dlq"], ["dlq", "list"], ["dlq", "show"], ["dlq", "release"], ["dlq", "purge"],
]  # fmt: skip


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for command in ("worker", "preflight", "status", "inflight", "task", "workers", "dlq"):
        assert command in out


@pytest.mark.parametrize("argv", COMMANDS, ids=" ".join)
def test_every_command_has_help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([*argv, "--help"])
    assert info.value.code == 0
    assert f"usage: rl {' '.join(argv)}" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv",
    [["preflight"], ["status"], ["inflight"], ["inflight", "--follow"], ["task", "ID"],
     ["workers"], ["dlq", "list"], ["dlq", "show", "ID"], ["dlq", "release", "ID"],
     ["dlq", "purge", "ID"]],
    ids=" ".join,
)  # fmt: skip
def test_every_read_command_takes_json(argv: list[str]) -> None:
    assert build_parser().parse_args([*argv, "--json"]).json is True


@pytest.mark.parametrize(
    ("argv", "message"),
    [(["dlq", "release"], "give the ids of the tasks to act on, or --all"),
     (["dlq", "release", "a", "--all"], "give task ids or --all, not both"),
     (["dlq", "release", "a", "--reason", "max_retries"],
      "--reason only select entries together with --all"),
     (["dlq", "purge"], "give the ids of the tasks to act on, or --older-than"),
     (["dlq", "purge", "a", "--task", "x"],
      "--task only select entries together with --older-than")],
)  # fmt: skip
def test_dlq_selection_errors_exit_2_before_touching_redis(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    assert capsys.readouterr().err == f"rl: {message}\n"


def test_purge_without_yes_and_without_a_terminal_exits_2(
    rl_redis_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    use(monkeypatch, rl_redis_url)
    relier.hub.current().redis.zadd(relier.hub.current().keys.dlq, {"ghost": 1})
    assert main(["dlq", "purge", "ghost"]) == 2
    assert "pass --yes" in capsys.readouterr().err
    assert main(["dlq", "purge", "ghost", "--yes"]) == 0
    assert capsys.readouterr().out.splitlines() == ["purged ghost", "1 purged, 0 refused"]


def test_unknown_task_exits_1(
    rl_redis_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    use(monkeypatch, rl_redis_url)
    for argv in (["task", "nope"], ["dlq", "show", "nope"]):
        assert main(argv) == 1
        assert capsys.readouterr().err.startswith("rl: TaskNotFoundError: ")
    assert main(["dlq", "release", "nope", "--json"]) == 1
    assert json.loads(capsys.readouterr().out) == {"released": {}, "refused": {"nope": "MISSING"}}
    assert main(["dlq", "purge", "nope", "--yes", "--json"]) == 1
    assert json.loads(capsys.readouterr().out) == {"purged": [], "refused": {"nope": "MISSING"}}


def test_worker_with_an_unknown_module_exits_2(
    rl_redis_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    use(monkeypatch, rl_redis_url)
    assert main(["worker", "-A", "tests.no_such_module_for_rl"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rl: cannot import 'tests.no_such_module_for_rl'")


def test_worker_refuses_an_unsafe_redis(
    unsafe_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    use(monkeypatch, unsafe_url)
    assert main(["worker", "-A", "tests.cli.test_main", "--concurrency", "1"]) == 2
    err = capsys.readouterr().err
    assert "PreflightError" in err
    assert "CONFIG SET appendonly yes" in err


def test_worker_passes_unknown_options_through() -> None:
    args, rest = build_parser().parse_known_args(["worker", "-A", "m", "-Q", "a,b", "-c", "4"])
    assert args.app == "m"
    assert rest == ["-Q", "a,b", "-c", "4"]


def test_python_m_relier(rl_cli: Any) -> None:
    result = rl_cli("preflight", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["ok"] is True

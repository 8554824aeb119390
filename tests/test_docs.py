"""The user manual stays true to the code.

Checks, without Redis or network:

* every ```python block in README.md and docs/*.md compiles;
* every ``RELIER_*`` name in the docs is a settings field, and every field is
  documented in docs/configuration.md, in a table whose setting, variable,
  type and default columns match :class:`relier.RelierSettings` exactly;
* every ``rl <command>`` (or ``python -m relier <command>``) written in code
  in the docs is a real subcommand of :func:`relier.cli.build_parser`, every
  action after it (``rl dlq release``) is one of that command's actions, and
  every option written after it on the same line (``rl inflight --follow``)
  is one that command accepts (``rl worker`` passes its options to Celery:
  only the command is checked);
* every ```yaml block parses (PyYAML), every ```ini block (systemd units)
  parses as INI, and every ```json block is JSON;
* the worker examples of docs/deployment.md (systemd, Compose, Kubernetes)
  send SIGTERM to the worker alone and wait longer than its
  ``RELIER_SHUTDOWN_GRACE`` before they kill it;
* every relative link in the docs names a file that exists and, with a
  ``#fragment``, a heading of that page;
* every public name in ``relier.__all__`` has a section in docs/api-reference.md;
* docs/troubleshooting.md has a section for every exception class in
  :mod:`relier.errors` and for every DLQ reason the code can write (the
  :class:`relier.Reason` members and the reasons Lua scripts write literally),
  and quotes a sample of error messages exactly as the code writes them.

Run ``python tests/test_docs.py`` to print the settings table generated from
the code (paste it into docs/configuration.md and write the descriptions).
"""

from __future__ import annotations

import argparse
import configparser
import datetime
import json
import re
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import annotated_types
import pytest
import redis.exceptions
import yaml  # type: ignore[import-untyped]  # PyYAML, in the dev extra; ships no type hints
from celery import Celery
from pydantic import SecretStr

import relier
from relier import RelierError, RelierSettings
from relier import errors as errors_module
from relier.cli.main import build_parser
from relier.config import ENV_PREFIX
from relier.journal.connection import translate_errors
from relier.journal.envelope import dumps
from relier.journal.states import Reason

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
LUA = ROOT / "lua"
CONFIGURATION = DOCS / "configuration.md"
API_REFERENCE = DOCS / "api-reference.md"
TROUBLESHOOTING = DOCS / "troubleshooting.md"
TABLE_START = "<!-- settings-table:start -->"
TABLE_END = "<!-- settings-table:end -->"
PYTHON_INFO = {"python", "py", "python3"}
YAML_INFO = {"yaml", "yml"}
INI_INFO = {"ini", "systemd"}
JSON_INFO = {"json"}
# RELIER_* variables that are not settings: the redis-server binary of the
# relier.testing pytest plugin.
# Variables of the test suite itself, not settings of Relier.
NON_SETTING_VARIABLES = {
    "RELIER_TEST_REDIS_SERVER",
    "RELIER_CHAOS_REPORT",
    "RELIER_SOAK_TASKS",
    "RELIER_SOAK_SECONDS",
}

_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>[^\n]*)$")
_INLINE_CODE = re.compile(r"(?P<ticks>`+)(?P<code>.+?)(?P=ticks)", re.DOTALL)
_ENV_NAME = re.compile(rf"\b{ENV_PREFIX}[A-Z0-9_]+\b")
# `rl <command>` or `python -m relier <command>`, and the rest of its line.
_RL_COMMAND = re.compile(
    r"(?:(?<![\w./-])rl|-m\s+relier)[ \t]+(?P<command>[A-Za-z][\w-]*)(?P<rest>[^\n]*)"
)
# Where a command line ends: a shell operator, or a pipe into another program
# (a `|` followed by an option is the usage grammar's "or": `(ID ... | --all)`).
_LINE_END = re.compile(r"\s(?:\|\||&&|;|#|>|2>)|\s\|\s+(?!-)")
_OPTION = re.compile(r"(?<![\w-])(?P<option>--?[A-Za-z][\w-]*)")
# Reasons a Lua script writes literally: into the job hash, or in a `dead` event.
_LUA_REASON = re.compile(
    r"'HSET'[^\n]*'reason',\s*'(?P<hash>\w+)'|e = 'dead', reason = '(?P<event>\w+)'"
)
_UNESCAPED_PIPE = re.compile(r"(?<!\\)\|")


def doc_files() -> list[Path]:
    """README.md and every page under docs/."""
    files = sorted(DOCS.glob("*.md"))
    readme = ROOT / "README.md"
    return [readme, *files] if readme.exists() else files


def _name(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def split_markdown(text: str) -> tuple[list[tuple[str, str]], str]:
    """Fenced blocks as ``(info, source)``, and the prose with the blocks removed."""
    blocks: list[tuple[str, str]] = []
    prose: list[str] = []
    lines = iter(text.splitlines())
    for line in lines:
        opening = _FENCE.match(line)
        if opening is None:
            prose.append(line)
            continue
        fence = opening["fence"]
        body: list[str] = []
        for inner in lines:
            closing = inner.strip()
            if closing.startswith(fence[0] * len(fence)) and not closing.strip(fence[0]):
                break
            spaces = len(inner) - len(inner.lstrip(" "))
            body.append(inner[min(spaces, len(opening["indent"])) :])
        blocks.append((opening["info"].strip(), "\n".join(body) + "\n"))
    return blocks, "\n".join(prose)


def code_text(text: str) -> Iterator[str]:
    """Every piece of code in a page: fenced blocks and inline code spans."""
    blocks, prose = split_markdown(text)
    for _, source in blocks:
        yield source
    for match in _INLINE_CODE.finditer(prose):
        yield match["code"]


def fenced_blocks(languages: set[str]) -> list[tuple[str, str]]:
    """``(id, source)`` of every block in one of ``languages``, the id naming file and
    block number (counted per language set)."""
    found = []
    for path in doc_files():
        blocks, _ = split_markdown(path.read_text(encoding="utf-8"))
        chosen = [src for info, src in blocks if info.split(" ", 1)[0].lower() in languages]
        found += [(f"{_name(path)}#{n}", src) for n, src in enumerate(chosen, start=1)]
    return found


def python_blocks() -> list[tuple[str, str]]:
    """``(id, source)`` of every python block, the id naming file and block number."""
    return fenced_blocks(PYTHON_INFO)


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def subcommands() -> set[str]:
    """The subcommands ``rl`` accepts."""
    found = set(_subparsers(build_parser()))
    assert found, "rl has no subcommands"
    return found


def _options(parser: argparse.ArgumentParser) -> set[str]:
    return {name for action in parser._actions for name in action.option_strings}


def command_problems(command: str, rest: str) -> list[str]:
    """What is wrong with ``rl <command><rest>`` (one line of a doc); empty when nothing.

    The action of a command that has actions (``rl dlq release``) must be one
    of them (``list|show|release|purge`` names several); each option after
    the command, up to the end of the shell command, must be one its parser
    (or its action's) accepts. ``rl worker`` passes options to ``celery
    worker``, so only its name is checked.
    """
    parser = _subparsers(build_parser()).get(command)
    if parser is None:
        return [f"no command {command!r}"]
    rest = _LINE_END.split(rest, maxsplit=1)[0]
    actions = _subparsers(parser)
    if actions:
        first = re.match(r"\s+(?P<word>[A-Za-z][\w|-]*)", rest)
        if first is None:
            return []  # the command on its own (`rl dlq`), or a placeholder (`<action>`)
        unknown = [a for a in first["word"].split("|") if a not in actions]
        if unknown:
            return [f"rl {command} has no action {a!r} (it has {sorted(actions)})" for a in unknown]
        parser = actions[first["word"].split("|")[0]]
        if "|" in first["word"]:
            return []  # options after several actions belong to none of them in particular
    if parser.get_default("passthrough"):
        return []
    accepted = _options(parser)
    return [
        f"rl {command}: no option {m['option']!r}"
        for m in _OPTION.finditer(rest)
        if m["option"] not in accepted
    ]


# -- the settings table -----------------------------------------------------------------


def _type_cell(annotation: Any) -> str:
    names = {
        str: "string", int: "integer", float: "float", bool: "boolean", SecretStr: "secret string",
    }  # fmt: skip
    if isinstance(annotation, types.UnionType):
        members = [a for a in annotation.__args__ if a is not type(None)]
        assert len(members) == 1, f"unexpected settings type {annotation}"
        return f"{names[members[0]]} or unset"
    return names[annotation]


def _default_cell(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    return f"`{value}`"


def generated_columns() -> list[list[str]]:
    """Setting, variable, type and default of every field, in declaration order."""
    return [
        [
            f"`{name}`",
            f"`{ENV_PREFIX}{name.upper()}`",
            _type_cell(field.annotation),
            _default_cell(field.default),
        ]
        for name, field in RelierSettings.model_fields.items()
    ]


def bound_texts(name: str) -> list[str]:
    """The numeric bounds of a field as the rule column writes them (``> 0``, ``>= 10``)."""
    texts = []
    for item in RelierSettings.model_fields[name].metadata:
        if isinstance(item, annotated_types.Gt):
            texts.append(f"> {item.gt}")
        elif isinstance(item, annotated_types.Ge):
            texts.append(f">= {item.ge}")
    return texts


def documented_rows() -> list[list[str]]:
    """The cells of each body row of the settings table in docs/configuration.md."""
    text = CONFIGURATION.read_text(encoding="utf-8")
    assert TABLE_START in text and TABLE_END in text, (
        f"{_name(CONFIGURATION)} must hold the settings table between {TABLE_START} and {TABLE_END}"
    )
    table = text.split(TABLE_START, 1)[1].split(TABLE_END, 1)[0]
    rows = [line.strip() for line in table.strip().splitlines() if line.strip()]
    assert len(rows) >= 2, "the settings table has no rows"
    return [
        [cell.strip() for cell in _UNESCAPED_PIPE.split(row.strip("|"))]
        for row in rows[2:]  # header and separator
    ]


# -- tests ------------------------------------------------------------------------------

PYTHON_BLOCKS = python_blocks()


def test_the_docs_have_python_blocks_to_check() -> None:
    assert PYTHON_BLOCKS, "no ```python blocks found in README.md or docs/*.md"


@pytest.mark.parametrize(
    "source", [src for _, src in PYTHON_BLOCKS], ids=[name for name, _ in PYTHON_BLOCKS]
)
def test_python_block_compiles(source: str, request: pytest.FixtureRequest) -> None:
    compile(source, request.node.callspec.id, "exec")


def test_every_relier_variable_in_the_docs_is_a_setting() -> None:
    fields = {f"{ENV_PREFIX}{name.upper()}" for name in RelierSettings.model_fields}
    unknown = sorted(
        f"{_name(path)}: {name}"
        for path in doc_files()
        for name in set(_ENV_NAME.findall(path.read_text(encoding="utf-8")))
        if name not in fields | NON_SETTING_VARIABLES
    )
    assert not unknown, f"RELIER_* names that are not RelierSettings fields: {unknown}"


def test_every_setting_is_documented_in_configuration() -> None:
    text = CONFIGURATION.read_text(encoding="utf-8")
    missing = [
        name for name in RelierSettings.model_fields if f"{ENV_PREFIX}{name.upper()}" not in text
    ]
    assert not missing, f"settings missing from {_name(CONFIGURATION)}: {missing}"


def test_settings_table_matches_the_code() -> None:
    rows = documented_rows()
    expected = generated_columns()
    assert [row[:4] for row in rows] == expected, (
        "the settings table's first four columns differ from RelierSettings; regenerate them "
        "with `python tests/test_docs.py`"
    )
    for row in rows:
        assert len(row) == 6 and all(row), f"row needs a rule and a description: {row}"
        name = row[0].strip("`")
        for bound in bound_texts(name):
            assert bound in row[4], f"{name}: the rule column must state {bound!r}: {row[4]!r}"


def test_every_rl_command_in_the_docs_exists() -> None:
    known = subcommands()
    unknown = sorted(
        {
            f"{_name(path)}: {match.group(0)!r}"
            for path in doc_files()
            for code in code_text(path.read_text(encoding="utf-8"))
            for match in _RL_COMMAND.finditer(code)
            if match["command"] not in known
        }
    )
    assert not unknown, f"commands `rl` does not have (it has {sorted(known)}): {unknown}"


def test_every_rl_action_and_option_in_the_docs_exists() -> None:
    wrong = sorted(
        {
            f"{_name(path)}: {match.group(0).strip()!r}: {problem}"
            for path in doc_files()
            for code in code_text(path.read_text(encoding="utf-8"))
            for match in _RL_COMMAND.finditer(code)
            if match["command"] in subcommands()
            for problem in command_problems(match["command"], match["rest"])
        }
    )
    assert not wrong, "rl actions or options that do not exist:\n" + "\n".join(wrong)


YAML_BLOCKS = fenced_blocks(YAML_INFO)
INI_BLOCKS = fenced_blocks(INI_INFO)
JSON_BLOCKS = fenced_blocks(JSON_INFO)


def test_the_docs_have_yaml_and_ini_blocks_to_check() -> None:
    assert YAML_BLOCKS, "no ```yaml blocks found (docs/deployment.md has several)"
    assert INI_BLOCKS, "no ```ini blocks found (docs/deployment.md has the systemd units)"


@pytest.mark.parametrize(
    "source", [src for _, src in YAML_BLOCKS], ids=[name for name, _ in YAML_BLOCKS]
)
def test_yaml_block_parses(source: str) -> None:
    documents = [doc for doc in yaml.safe_load_all(source) if doc is not None]
    assert documents, "the block holds no YAML document"
    assert all(isinstance(doc, dict) for doc in documents), "each document must be a mapping"


@pytest.mark.parametrize("source", [src for _, src in INI_BLOCKS], ids=[n for n, _ in INI_BLOCKS])
def test_ini_block_parses(source: str) -> None:
    # systemd repeats keys (Environment=) and uses % specifiers: no strictness,
    # no interpolation, keys kept as written.
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(source)
    assert parser.sections(), "the block has no [section]"


@pytest.mark.parametrize(
    "source", [src for _, src in JSON_BLOCKS], ids=[name for name, _ in JSON_BLOCKS]
)
def test_json_block_parses(source: str) -> None:
    try:
        json.loads(source)
    except ValueError:
        for line in filter(str.strip, source.splitlines()):
            json.loads(line)  # several objects, one per line, as `--json --follow` prints them


def test_every_public_name_has_an_api_reference_section() -> None:
    headings = set(re.findall(r"^#{2,4} `([^`]+)`", API_REFERENCE.read_text(), re.MULTILINE))
    missing = [name for name in relier.__all__ if name not in headings]
    assert not missing, f"{_name(API_REFERENCE)} has no `### \\`name\\`` section for {missing}"


def test_the_testing_table_lists_the_plugin_s_fixtures() -> None:
    """The api-reference fixture table names each fixture of relier.testing, with its scope."""
    import relier.testing as plugin

    section = API_REFERENCE.read_text().split("\n## Testing\n", 1)[1]
    rows = dict(re.findall(r"^\| `(rl_\w+)` \| (\w+) \|", section, re.MULTILINE))
    fixtures = {
        name: marker.scope
        for name, value in vars(plugin).items()
        if (marker := getattr(value, "_fixture_function_marker", None)) is not None
    }
    assert fixtures, "found no fixtures in relier.testing"
    assert rows == fixtures
    assert all(name.startswith("rl_") for name in fixtures)
    assert all(f"``{name}``" in (plugin.__doc__ or "") for name in fixtures)


DEPLOYMENT = DOCS / "deployment.md"


def _deployment_blocks(languages: set[str]) -> list[str]:
    return [src for name, src in fenced_blocks(languages) if name.startswith("docs/deployment.md#")]


def _seconds(value: Any) -> float:
    """``40``, ``"40"`` or ``"40s"`` (systemd and Compose durations in seconds)."""
    text = str(value).strip()
    return float(text[:-1] if text.endswith("s") else text)


def _is_worker(command: Any) -> bool:
    return isinstance(command, list) and command[:2] == ["rl", "worker"]


def test_systemd_worker_units_drain_before_the_kill() -> None:
    units = []
    for source in _deployment_blocks(INI_INFO):
        parser = configparser.ConfigParser(strict=False, interpolation=None)
        parser.optionxform = str  # type: ignore[assignment,method-assign]
        parser.read_string(source)
        if re.search(r"(^|/)rl worker ", parser.get("Service", "ExecStart", fallback="")):
            units.append(parser["Service"])
    assert units, "docs/deployment.md has no systemd unit running `rl worker`"
    for unit in units:
        grace = float(unit["Environment"].removeprefix("RELIER_SHUTDOWN_GRACE="))
        assert unit["KillSignal"] == "SIGTERM"
        assert unit["KillMode"] == "mixed", "control-group would SIGTERM the pool processes too"
        assert _seconds(unit["TimeoutStopSec"]) > grace


def test_compose_and_kubernetes_workers_drain_before_the_kill() -> None:
    documents = [
        doc
        for source in _deployment_blocks(YAML_INFO)
        for doc in yaml.safe_load_all(source)
        if isinstance(doc, dict)
    ]
    compose = [d for d in documents if "services" in d]
    workers = [
        service
        for d in compose
        for service in d["services"].values()
        if _is_worker(service.get("command"))
    ]
    assert workers, "docs/deployment.md has no Compose service running `rl worker` (exec form)"
    for service in workers:
        grace = float(service["environment"]["RELIER_SHUTDOWN_GRACE"])
        assert _seconds(service["stop_grace_period"]) > grace
        assert "healthcheck" in service
    config = next(
        d for d in documents if d.get("kind") == "ConfigMap" and d["metadata"]["name"] == "relier"
    )
    grace = float(config["data"]["RELIER_SHUTDOWN_GRACE"])
    pods = [
        d["spec"]["template"]["spec"]
        for d in documents
        if d.get("kind") == "Deployment"
        and any(_is_worker(c.get("command")) for c in d["spec"]["template"]["spec"]["containers"])
    ]
    assert pods, "docs/deployment.md has no Kubernetes Deployment running `rl worker`"
    for pod in pods:
        assert pod["terminationGracePeriodSeconds"] > grace
        assert all("livenessProbe" in c for c in pod["containers"])


_LINK = re.compile(r"\]\((?P<target>[^)\s]+)\)")


def anchors(path: Path) -> set[str]:
    """The heading anchors GitHub makes for a Markdown page (``#the-heading``)."""
    _, prose = split_markdown(path.read_text(encoding="utf-8"))
    seen: dict[str, int] = {}
    found = set()
    for line in prose.splitlines():
        heading = re.match(r"#{1,6}\s+(?P<text>.+?)\s*#*$", line)
        if heading is None:
            continue
        slug = re.sub(r"[^\w\- ]", "", heading["text"].lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def test_every_relative_link_in_the_docs_resolves() -> None:
    broken = []
    for path in doc_files():
        _, prose = split_markdown(path.read_text(encoding="utf-8"))
        for match in _LINK.finditer(prose):
            target = match["target"]
            if re.match(r"[a-z]+:", target):
                continue  # http(s), mailto: not checked here
            file_part, _, fragment = target.partition("#")
            linked = (path.parent / file_part).resolve() if file_part else path
            if not linked.exists():
                broken.append(f"{_name(path)}: {target} (no such file)")
            elif fragment and linked.suffix == ".md" and fragment not in anchors(linked):
                broken.append(f"{_name(path)}: {target} (no such heading)")
    assert not broken, "broken links:\n" + "\n".join(broken)


def error_classes() -> list[str]:
    """Every exception class :mod:`relier.errors` defines, the root included."""
    return sorted(
        name
        for name, value in vars(errors_module).items()
        if isinstance(value, type)
        and issubclass(value, RelierError)
        and value.__module__ == errors_module.__name__
    )


def lua_reasons() -> set[str]:
    """The DLQ reasons the Lua scripts write literally (not passed in as ARGV)."""
    return {
        match["hash"] or match["event"]
        for script in sorted(LUA.glob("*.lua"))
        for match in _LUA_REASON.finditer(script.read_text(encoding="utf-8"))
    }


def dlq_reasons() -> list[str]:
    """Every reason the code can write: :class:`Reason` (what Python passes to
    ``fail.lua`` and ``dead_letter.lua``) and the Lua scripts' own literals."""
    return sorted({str(r) for r in Reason} | lua_reasons())


def _sections(path: Path) -> set[str]:
    return set(re.findall(r"^#{2,4} `([^`]+)`", path.read_text(encoding="utf-8"), re.MULTILINE))


def test_troubleshooting_has_a_section_for_every_error_class() -> None:
    classes = error_classes()
    assert len(classes) >= 19, f"found too few error classes to be credible: {classes}"
    missing = [name for name in classes if name not in _sections(TROUBLESHOOTING)]
    assert not missing, f"{_name(TROUBLESHOOTING)} has no `### \\`Name\\`` section for {missing}"


def test_troubleshooting_has_a_section_for_every_dlq_reason() -> None:
    reasons = dlq_reasons()
    assert {"poison_pill", "schema_too_new"} <= lua_reasons(), (
        f"the Lua reason finder missed the literals resurrect.lua and defer.lua write: "
        f"{sorted(lua_reasons())}"
    )
    missing = [reason for reason in reasons if reason not in _sections(TROUBLESHOOTING)]
    assert not missing, f"{_name(TROUBLESHOOTING)} has no section for the DLQ reasons {missing}"


def _message_of(make: Callable[[], object]) -> str:
    try:
        make()
    except RelierError as exc:
        return str(exc)
    raise AssertionError(f"{make} raised nothing")


def test_troubleshooting_quotes_the_messages_the_code_writes() -> None:
    # The quickstart's task, compiled without this module's postponed annotations
    # so that its signature reads as a user's would (`user_id: int`, not `'int'`).
    namespace: dict[str, Any] = {}
    source = "def send_welcome_email(user_id: int, template: str = 'welcome') -> None: ..."
    exec(compile(source, "<quickstart>", "exec", dont_inherit=True), namespace)
    send_welcome_email = relier.rl_task(name="myproject.tasks.send_welcome_email")(
        namespace["send_welcome_email"]
    )

    def unreachable() -> None:
        with translate_errors("<url>"):
            raise redis.exceptions.ConnectionError("<redis-py error>")

    settings = relier.load_settings(redis_url="redis://127.0.0.1:6379/0")  # never connected to
    pickle_app = Celery("quoted", broker=settings.redis_url, accept_content=["json", "pickle"])
    made: list[Callable[[], object]] = [
        lambda: relier.load_settings(redis_url="http://x"),
        lambda: relier.Relier(settings, Celery("quoted", broker="redis://cache:6379/0")),
        lambda: relier.Relier(settings, pickle_app),
        lambda: relier.rl_task(name="quoted.t", soft_timeout=30, hard_timeout=10)(lambda: None),
        lambda: send_welcome_email.validator.to_json(("x",), {}),
        lambda: send_welcome_email.validator.to_json((1, "a", "b"), {}),
        lambda: dumps([datetime.date(2026, 1, 2)], what="args"),
        lambda: dumps([float("nan")], what="args"),
        lambda: dumps([{1: 2}], what="args"),
        unreachable,
    ]
    messages = [_message_of(make) for make in made]
    messages += [
        str(relier.TaskFailedError("<id>", "<reason>", "<error>")),
        str(relier.IdempotencyConflictError("<task>", "<key>", "<id>")),
    ]
    page = " ".join(TROUBLESHOOTING.read_text(encoding="utf-8").split())
    missing = [m for m in messages if " ".join(m.split()) not in page]
    assert not missing, f"{_name(TROUBLESHOOTING)} no longer quotes the code's messages: {missing}"


def test_every_reason_a_lua_script_writes_is_a_reason_member() -> None:
    # Reason is what `rl dlq list --reason`, the admin API and the docs offer.
    stray = sorted(lua_reasons() - {str(r) for r in Reason})
    assert not stray, f"Lua scripts write DLQ reasons relier.Reason does not have: {stray}"


# -- self-checks of the parsers above ---------------------------------------------------


def test_markdown_parsing_finds_blocks_inline_code_and_commands() -> None:
    text = (
        "Run `rl worker -A app` or:\n\n"
        "```bash\n$ RELIER_REDIS_URL=redis://x rl preflight --json\n```\n\n"
        "~~~python\nx = 1\n~~~\n\n"
        "Not code: rl nothing.\n"
    )
    blocks, prose = split_markdown(text)
    assert [info for info, _ in blocks] == ["bash", "python"]
    assert "x = 1" not in prose
    commands = [m["command"] for code in code_text(text) for m in _RL_COMMAND.finditer(code)]
    assert sorted(commands) == ["preflight", "worker"]


def test_command_checks_catch_wrong_actions_and_options_only() -> None:
    assert command_problems("dlq", " release ID --dry-run --json") == []
    assert command_problems("dlq", " list|show|release|purge") == []
    assert command_problems("dlq", " <action> --help") == []
    assert command_problems("dlq", " (ID ... | --all [--task NAME]) [--yes]") == []
    assert command_problems("inflight", " --follow --json | jq -r .tasks --arg x") == []
    assert command_problems("worker", " -A app --concurrency 4 -Q a,b") == []
    assert command_problems("dlq", " relase ID") == [
        "rl dlq has no action 'relase' (it has ['list', 'purge', 'release', 'show'])"
    ]
    assert command_problems("dlq", " purge --older-then 7d") == ["rl dlq: no option '--older-then'"]
    assert command_problems("status", " --watch") == ["rl status: no option '--watch'"]
    assert command_problems("health", "") == ["no command 'health'"]
    assert [m["command"] for m in _RL_COMMAND.finditer("python -m relier status")] == ["status"]


if __name__ == "__main__":
    print("| Setting | Environment variable | Type | Default | Rule | Description |")
    print("|---|---|---|---|---|---|")
    for cells, field in zip(generated_columns(), RelierSettings.model_fields.values(), strict=True):
        rule = ", ".join(bound_texts(cells[0].strip("`"))) or "-"
        print(f"| {' | '.join(cells)} | {rule} | {field.description} |")

"""The user manual stays true to the code.

Checks, without Redis or network:

* every ```python block in README.md and docs/*.md compiles;
* every ``RELIER_*`` name in the docs is a settings field, and every field is
  documented in docs/configuration.md, in a table whose setting, variable,
  type and default columns match :class:`relier.RelierSettings` exactly;
* every ``rl <command>`` (or ``python -m relier <command>``) written in code
  in the docs is a real subcommand of :func:`relier.cli.build_parser`;
* every public name in ``relier.__all__`` has a section in docs/api-reference.md.

Run ``python tests/test_docs.py`` to print the settings table generated from
the code (paste it into docs/configuration.md and write the descriptions).
"""

from __future__ import annotations

import argparse
import re
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import annotated_types
import pytest
from pydantic import SecretStr

import relier
from relier import RelierSettings
from relier.cli import build_parser
from relier.config import ENV_PREFIX

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
CONFIGURATION = DOCS / "configuration.md"
API_REFERENCE = DOCS / "api-reference.md"
TABLE_START = "<!-- settings-table:start -->"
TABLE_END = "<!-- settings-table:end -->"
PYTHON_INFO = {"python", "py", "python3"}
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
_RL_COMMAND = re.compile(r"(?<![\w./-])rl\s+(?P<command>[A-Za-z][\w-]*)")
_MODULE_COMMAND = re.compile(r"-m\s+relier\s+(?P<command>[A-Za-z][\w-]*)")
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


def python_blocks() -> list[tuple[str, str]]:
    """``(id, source)`` of every python block, the id naming file and block number."""
    found = []
    for path in doc_files():
        blocks, _ = split_markdown(path.read_text(encoding="utf-8"))
        python = [src for info, src in blocks if info.split(" ", 1)[0].lower() in PYTHON_INFO]
        found += [(f"{_name(path)}#{n}", src) for n, src in enumerate(python, start=1)]
    return found


def subcommands() -> set[str]:
    """The subcommands ``rl`` accepts."""
    for action in build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            return set(action.choices)
    raise AssertionError("rl has no subcommands")


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
            for pattern in (_RL_COMMAND, _MODULE_COMMAND)
            for match in pattern.finditer(code)
            if match["command"] not in known
        }
    )
    assert not unknown, f"commands `rl` does not have (it has {sorted(known)}): {unknown}"


def test_every_public_name_has_an_api_reference_section() -> None:
    headings = set(re.findall(r"^#{2,4} `([^`]+)`", API_REFERENCE.read_text(), re.MULTILINE))
    missing = [name for name in relier.__all__ if name not in headings]
    assert not missing, f"{_name(API_REFERENCE)} has no `### \\`name\\`` section for {missing}"


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


if __name__ == "__main__":
    print("| Setting | Environment variable | Type | Default | Rule | Description |")
    print("|---|---|---|---|---|---|")
    for cells, field in zip(generated_columns(), RelierSettings.model_fields.values(), strict=True):
        rule = ", ".join(bound_texts(cells[0].strip("`"))) or "-"
        print(f"| {' | '.join(cells)} | {rule} | {field.description} |")

"""The text helpers of ``rl``: durations, times, tables, the progress bar."""

from __future__ import annotations

import datetime as dt
import io

import pytest

from relier.cli.format import (
    Progress,
    clip,
    duration,
    history_table,
    parse_duration,
    parse_when,
    table,
)


@pytest.mark.parametrize(
    ("text", "ms"),
    [("250ms", 250), ("90s", 90_000), ("15m", 900_000), ("2h30m", 9_000_000), ("7d", 604_800_000),
     ("1w", 604_800_000), ("1.5h", 5_400_000), (" 2H ", 7_200_000), ("0s", 0)],
)  # fmt: skip
def test_parse_duration(text: str, ms: int) -> None:
    assert parse_duration(text) == ms


@pytest.mark.parametrize("text", ["", "7", "m", "5 parsecs", "1h-5m", "yesterday", "5mss"])
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(text)


def test_parse_when() -> None:
    assert parse_when("15m", 1_000_000) == 100_000
    naive = dt.datetime(2026, 1, 31, 12, 0)
    assert parse_when("2026-01-31T12:00", 0) == int(naive.timestamp() * 1000)
    assert parse_when("2026-01-31T12:00+00:00", 0) == 1_769_860_800_000
    with pytest.raises(ValueError, match="neither a duration"):
        parse_when("yesterday", 0)


@pytest.mark.parametrize(
    ("ms", "text"),
    [(None, "-"), (850, "850ms"), (4_200, "4.2s"), (185_000, "3m05s"), (7_620_000, "2h07m"),
     (273_600_000, "3d04h")],
)  # fmt: skip
def test_duration(ms: int | None, text: str) -> None:
    assert duration(ms) == text


def test_table_aligns_columns_under_upper_case_headers() -> None:
    assert table(["id", "n"], [["a", 1], ["long-id", 22]]).splitlines() == [
        "ID       N",
        "a        1",
        "long-id  22",
    ]


def test_clip_keeps_one_short_line() -> None:
    assert clip("a\nb  c", 10) == "a b c"
    assert clip("x" * 20, 10) == "x" * 9 + "…"


def test_history_table_shows_offsets_and_details() -> None:
    text = history_table([{"t": 1_000, "e": "dispatched", "q": "celery"}, {"t": 3_500, "e": "x"}])
    lines = text.splitlines()
    assert lines[0].split() == ["TIME", "SINCE", "FIRST", "EVENT", "DETAILS"]
    assert "+0ms" in lines[1] and "dispatched" in lines[1] and "q=celery" in lines[1]
    assert "+2.5s" in lines[2]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_draws_only_on_a_terminal() -> None:
    quiet = io.StringIO()
    progress = Progress(10, "releasing", quiet)
    progress(10)
    progress.close()
    assert quiet.getvalue() == ""
    tty = Terminal()
    progress = Progress(4, "releasing", tty)
    progress(2)
    progress(2)
    progress.close()
    assert tty.getvalue().endswith("\rreleasing [" + "#" * 30 + "] 4/4\n")
    assert "\rreleasing [" + "#" * 15 + "." * 15 + "] 2/4" in tty.getvalue()

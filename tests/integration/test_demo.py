"""``rl demo`` (the README's first command): two workers, one SIGKILLed and one
SIGTERMed mid-run, and still nothing lost and nothing committed twice."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path


def test_rl_demo_kills_two_workers_and_loses_nothing(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELIER_")}
    proc = subprocess.run(
        [sys.executable, "-m", "relier", "demo", "--dir", str(tmp_path / "demo"), "--tasks", "600"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "SIGKILLed worker demo1" in out
    assert "SIGTERMed worker demo2" in out
    assert re.search(r"^  lost +0 ", out, re.M), out
    assert re.search(r"^  double commits +0 ", out, re.M), out
    assert re.search(r"^  in DLQ +1 +reason poison_pill$", out, re.M), out
    assert re.search(r"^  in DLQ +1 +reason max_retries$", out, re.M), out
    assert re.search(r"^  succeeded +598 ", out, re.M), out
    assert re.search(r"^  pushed +609 +\(600 distinct tasks", out, re.M), out
    assert "recovery          SIGKILL demo1" in out and "recovery          SIGTERM demo2" in out
    assert "PASS:" in out
    assert "stopped every process the demo started" in out
    assert (tmp_path / "demo" / "redis" / "appendonlydir").is_dir()  # AOF was on

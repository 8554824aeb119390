"""``rl demo`` (the README's first command) ends with nothing lost."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_rl_demo_runs_its_own_redis_and_worker_and_loses_nothing(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELIER_")}
    proc = subprocess.run(
        [sys.executable, "-m", "relier", "demo", "--dir", str(tmp_path / "demo"), "--tasks", "90"],
        env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "lost          0" in out
    assert "succeeded     90" in out
    assert "in DLQ        1   reason max_retries" in out
    assert "stopped every process the demo started" in out
    assert (tmp_path / "demo" / "redis" / "appendonlydir").is_dir()  # AOF was on

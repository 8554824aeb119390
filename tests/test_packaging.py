"""The wheel, installed on its own (not editable), carries the Lua scripts and loads them."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

CHECK = """
import sys
import relier, relier_fastapi, relier_flask, relier_django
from relier.journal.scripts import lua_dir, load_all
import redis
from relier_fastapi import dashboard
# The dashboard's files are package data of relier_fastapi.
assert all(dashboard._asset(name) for name in ("dashboard.html", "dashboard.js", "dashboard.css"))
print(lua_dir())
print(sorted(load_all(redis.Redis.from_url(sys.argv[1]))))
"""


def _run(command: list[str], cwd: Path, env: dict[str, str], timeout: float) -> str:
    result = subprocess.run(
        command,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, (
        f"{' '.join(command)} exited with {result.returncode}\n"
        f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    )
    return result.stdout


@pytest.mark.timeout(600)
def test_wheel_installs_into_a_fresh_venv_and_loads_every_lua_script(
    tmp_path: Path, rl_redis_url: str
) -> None:
    # A file whose name starts with "_" (the prelude) ships but is put before scripts, not one.
    shipped = sorted(path.stem for path in (REPO / "lua").glob("*.lua"))
    expected = [name for name in shipped if not name.startswith("_")]
    assert expected, f"no *.lua files in {REPO / 'lua'}"
    # Nothing from this checkout or the dev venv may leak into the fresh venv.
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"} and not k.startswith("RELIER_")
    }

    dist = tmp_path / "dist"
    _run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(dist), str(REPO)],
        cwd=tmp_path,
        env=env,
        timeout=300,
    )
    (wheel,) = dist.glob("relier-*.whl")

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], cwd=tmp_path, env=env, timeout=120)
    python = str(venv / "bin" / "python")
    # The adapters refuse to import without their framework, so install their extras too.
    _run(
        [
            python,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            f"{wheel}[fastapi,flask,django]",
        ],
        cwd=tmp_path,
        env=env,
        timeout=300,
    )
    site_packages = Path(
        _run(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            cwd=tmp_path,
            env=env,
            timeout=60,
        ).strip()
    ).resolve()

    # cwd=tmp_path: the checkout is not on sys.path, only the installed wheel is.
    out = _run([python, "-c", CHECK, rl_redis_url], cwd=tmp_path, env=env, timeout=60)
    lua_dir_line, names_line = out.strip().splitlines()[-2:]
    lua_dir = Path(lua_dir_line).resolve()
    assert lua_dir.is_relative_to(site_packages), f"{lua_dir} is not inside {site_packages}"
    assert not lua_dir.is_relative_to(REPO)
    assert sorted(path.stem for path in lua_dir.glob("*.lua")) == shipped
    assert ast.literal_eval(names_line) == expected

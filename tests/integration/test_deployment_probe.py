"""The worker liveness probe of docs/deployment.md, run as the page gives it.

The page's probe script is written out as ``relier_probe.py`` and run, as
Kubernetes and Compose would, next to a real worker on this host: it must exit 0
while the worker holds its lease, 1 once the worker's main process is frozen past
its lease (SIGSTOP), 1 with no worker at all, and 0 when Redis is unreachable
(not the worker's fault).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from relier.testing import WorkerFactory
from tests.test_docs import fenced_blocks

APP = "tests.integration.apps.basic"
LEASE_TTL_MS = 600


def probe_source() -> str:
    probes = [
        src
        for name, src in fenced_blocks({"python"})
        if name.startswith("docs/deployment.md#") and "Liveness probe" in src
    ]
    assert len(probes) == 1, "docs/deployment.md should hold exactly one liveness probe block"
    return probes[0]


def run_probe(path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_liveness_probe_follows_the_workers_lease(
    tmp_path: Path, rl_env: dict[str, str], rl_worker: WorkerFactory
) -> None:
    probe = tmp_path / "relier_probe.py"
    probe.write_text(probe_source())
    env = {**rl_env, "RELIER_LEASE_TTL_MS": str(LEASE_TTL_MS), "RELIER_LEASE_RENEW_MS": "100"}

    nobody = run_probe(probe, env)
    assert nobody.returncode == 1, nobody.stdout + nobody.stderr

    worker = rl_worker(APP, env=env, concurrency=1)
    alive = run_probe(probe, env)
    assert alive.returncode == 0, alive.stdout + alive.stderr
    assert ": alive, lease age " in alive.stdout

    worker.signal(signal.SIGSTOP)  # the main process only: its lease stops being renewed
    try:
        time.sleep(LEASE_TTL_MS / 1000 + 0.5)
        frozen = run_probe(probe, env)
    finally:
        worker.signal(signal.SIGCONT)
    assert frozen.returncode == 1, frozen.stdout + frozen.stderr

    unreachable = run_probe(probe, {**env, "RELIER_REDIS_URL": "redis://127.0.0.1:9/0"})
    assert unreachable.returncode == 0, unreachable.stdout + unreachable.stderr
    assert "not the worker's fault" in unreachable.stderr

"""Pytest fixtures for testing Relier tasks against a real Redis and real worker processes.

Relier ships this plugin so that you can test your own tasks the way Relier tests its own:
no fakes, no mocks, a real ``redis-server`` and real ``rl worker`` processes that you can
signal, kill and restart. It is registered under the ``pytest11`` entry point, so installing
``relier`` is enough; every fixture below is available in any pytest run.

Fixtures:

``rl_redis`` (session)
    A private ``redis-server`` 7+ on a free 127.0.0.1 port in a temporary directory, with
    AOF on (``appendfsync everysec``), ``maxmemory-policy noeviction`` and no RDB snapshots:
    the settings Relier's preflight requires. The binary is ``$RELIER_TEST_REDIS_SERVER`` or
    ``redis-server`` on ``PATH``. A missing or too old binary *fails* the tests that need it
    (a missing service is an error, never a reason to skip). See :class:`RedisServer`.
``rl_redis_url`` (function)
    ``FLUSHALL`` on the session server, then its URL: every test starts with empty databases.
``rl_env`` (function)
    ``os.environ`` without inherited ``RELIER_*`` variables, plus
    ``RELIER_REDIS_URL=<rl_redis_url>`` and ``PYTHONUNBUFFERED=1``; pass it to subprocesses.
``rl_worker`` (function)
    A :class:`WorkerFactory`: ``rl_worker("myproject.tasks")`` starts ``python -m relier
    worker`` in its own process group, waits for ``Relier worker ready`` in its log and
    returns a :class:`WorkerProcess`. Every worker still running at teardown gets SIGTERM,
    then SIGKILL (whole process group) after 10 s. The log of each worker is attached to
    the report of a failed test.
``rl_cli`` (function)
    A :class:`CliRunner`: ``rl_cli("inflight", "--json")`` runs ``python -m relier ...`` with
    ``rl_env`` and returns the ``subprocess.CompletedProcess`` with text output.

Worker and CLI subprocesses run with the pytest rootdir as working directory, so
``-A tests.integration.apps.basic`` imports modules from your project.

Importing this module starts nothing: processes start only when a fixture is used.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Generator, Iterator, Sequence
from pathlib import Path

import pytest

from relier.localredis import (
    LocalRedis,
    LocalRedisError,
    die_with_parent,
    find_redis_server,
    tail,
)

__all__ = ["CliRunner", "RedisServer", "WorkerFactory", "WorkerProcess"]

READY_LINE = "Relier worker ready"
_STOP_TIMEOUT = 10.0
_LOG_TAIL_LINES = 60


# --- Redis -------------------------------------------------------------------------------
# Process management lives in relier.localredis (``rl demo`` uses it too); here its errors
# become test failures, never skips: a missing service must fail loudly.


def _redis_executable() -> str:
    try:
        return find_redis_server()
    except LocalRedisError as exc:
        error = str(exc)
    pytest.fail(error, pytrace=False)


class RedisServer(LocalRedis):
    """A private ``redis-server`` (see :class:`relier.localredis.LocalRedis`).

    Start failures fail the test with the server's log tail; :meth:`start_extra` starts
    sibling servers with other options, stopped by :meth:`shutdown`.
    """

    def __init__(
        self, executable: str, dir: Path, port: int | None = None, args: Sequence[str] = ()
    ) -> None:
        super().__init__(dir, port=port, args=args, executable=executable)
        self._extras: list[RedisServer] = []

    def start(self) -> None:
        """Start the server and wait for PING; fails the test with the log tail otherwise."""
        try:
            super().start()
        except LocalRedisError as exc:
            error = str(exc)
        else:
            return
        pytest.fail(error, pytrace=False)

    def start_extra(self, *args: str) -> RedisServer:
        """Start another server on its own port and directory with extra arguments.

        The args are appended to the defaults, so they override them, e.g.
        ``rl_redis.start_extra("--appendonly", "no")``. It is stopped with this one at the
        end of the session, or earlier with its own :meth:`stop`.
        """
        n = len(self._extras) + 1
        extra = RedisServer(
            self.executable, self.dir.with_name(f"{self.dir.name}-extra{n}"), args=args
        )
        self._extras.append(extra)
        extra.start()
        return extra

    def shutdown(self) -> None:
        """Stop this server and every server from :meth:`start_extra`."""
        for extra in self._extras:
            extra.shutdown()
        self.stop()


@pytest.fixture(scope="session")
def rl_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A private redis-server 7+ for the session (AOF on, noeviction), see module docs."""
    executable = _redis_executable()
    server: RedisServer | None = None
    try:
        # The free port may be taken between choosing it and redis binding it; try another.
        for attempt in range(3):
            server = RedisServer(executable, tmp_path_factory.mktemp("redis"))
            try:
                server.start()
                break
            except pytest.fail.Exception:
                if attempt == 2 or "Address already in use" not in tail(server.log_path):
                    raise
        assert server is not None
        yield server
    finally:
        if server is not None:
            server.shutdown()


@pytest.fixture
def rl_redis_url(rl_redis: RedisServer) -> str:
    """The session server's URL, after ``FLUSHALL`` (restarting it if a test stopped it)."""
    rl_redis.start()
    with rl_redis.client() as client:
        client.flushall()
    return rl_redis.url


@pytest.fixture
def rl_env(rl_redis_url: str) -> dict[str, str]:
    """Environment for subprocesses: ``os.environ`` minus ``RELIER_*``, plus the test's URL."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELIER_")}
    env["RELIER_REDIS_URL"] = rl_redis_url
    env["PYTHONUNBUFFERED"] = "1"
    return env


# --- workers -----------------------------------------------------------------------------


class WorkerProcess:
    """A running ``python -m relier worker``, leader of its own process group."""

    def __init__(self, proc: subprocess.Popen[bytes], log_path: Path, hostname: str) -> None:
        self.proc = proc
        self.pid = proc.pid
        self.log_path = log_path
        self.hostname = hostname

    def __repr__(self) -> str:
        return f"<WorkerProcess {self.hostname} pid={self.pid} returncode={self.proc.poll()}>"

    def log(self) -> str:
        """The worker's combined stdout and stderr so far."""
        return self.log_path.read_text(errors="replace")

    def tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        """The last ``lines`` lines of :meth:`log`."""
        return tail(self.log_path, lines)

    def is_alive(self) -> bool:
        """True while the main worker process runs."""
        return self.proc.poll() is None

    def children(self) -> list[int]:
        """Pids of the main process's direct children (the pool processes); [] once it exited."""
        try:
            text = Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text()
        except (FileNotFoundError, ProcessLookupError):
            return []
        return [int(pid) for pid in text.split()]

    def signal(self, sig: int) -> None:
        """Sends ``sig`` to the main worker process only."""
        os.kill(self.pid, sig)

    def kill(self) -> None:
        """SIGKILLs the whole process group (main process and pool), like an OOM kill."""
        _killpg(self.pid, signal.SIGKILL)
        self.proc.wait()

    def wait(self, timeout: float) -> int:
        """Waits for the main process to exit and returns its code; fails the test on timeout."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(
                f"worker {self.hostname} (pid {self.pid}) still running after {timeout} s; "
                f"last lines of {self.log_path}:\n{self.tail()}",
                pytrace=False,
            )

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERMs the main process (a graceful shutdown) and returns its exit code."""
        if self.is_alive():
            self.signal(signal.SIGTERM)
        return self.wait(timeout)

    def wait_for_log(self, fragment: str, timeout: float = 30.0) -> None:
        """Waits until ``fragment`` appears in the log; fails the test if it exits or times out."""
        deadline = time.monotonic() + timeout
        while fragment not in self.log():
            code = self.proc.poll()
            if code is not None and fragment not in self.log():
                pytest.fail(
                    f"worker {self.hostname} exited with code {code} before logging "
                    f"{fragment!r}; last lines of {self.log_path}:\n{self.tail()}",
                    pytrace=False,
                )
            if time.monotonic() > deadline:
                pytest.fail(
                    f"worker {self.hostname} did not log {fragment!r} within {timeout} s; "
                    f"last lines of {self.log_path}:\n{self.tail()}",
                    pytrace=False,
                )
            time.sleep(0.05)


def _killpg(pgid: int, sig: int) -> bool:
    """Signals a process group; False if it no longer exists."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    return True


class WorkerFactory:
    """The ``rl_worker`` fixture: starts workers and cleans up every one of them."""

    def __init__(self, env: dict[str, str], cwd: Path, log_dir: Path) -> None:
        self.env = env
        self.cwd = cwd
        self.log_dir = log_dir
        self.workers: list[WorkerProcess] = []

    def __call__(
        self,
        app_module: str,
        *extra_args: str,
        env: dict[str, str] | None = None,
        concurrency: int = 2,
        pool: str = "prefork",
        queues: str | None = None,
        ready_timeout: float = 30.0,
    ) -> WorkerProcess:
        """Starts ``python -m relier worker -A app_module`` and waits until it is ready.

        Args:
            app_module: The module holding the Celery app and the tasks, importable from the
                pytest rootdir (e.g. ``"tests.integration.apps.basic"``).
            *extra_args: More ``rl worker`` options, appended last.
            env: The environment; defaults to ``rl_env``.
            concurrency: ``--concurrency``.
            pool: ``--pool`` (``prefork``, ``threads``, ``solo``).
            queues: ``-Q``, comma-separated, when given.
            ready_timeout: Seconds to wait for ``Relier worker ready`` in the log.

        Returns:
            The running worker; its hostname is ``w<n>@<host>``, n counting from 1 per test.
        """
        n = len(self.workers) + 1
        command = [
            sys.executable, "-m", "relier", "worker",
            "-A", app_module,
            "--concurrency", str(concurrency),
            "--pool", pool,
            "--loglevel", "INFO",
            "--hostname", f"w{n}@%h",
        ]  # fmt: skip
        if queues is not None:
            command += ["-Q", queues]
        command += extra_args
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"w{n}.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                command,
                env=self.env if env is None else env,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent(),
            )
        worker = WorkerProcess(proc, log_path, f"w{n}@{socket.gethostname()}")
        self.workers.append(worker)
        worker.wait_for_log(READY_LINE, ready_timeout)
        return worker

    def close(self) -> None:
        """SIGTERM every live worker, then SIGKILL each process group after 10 s."""
        for worker in self.workers:
            if worker.is_alive():
                worker.signal(signal.SIGTERM)
        deadline = time.monotonic() + _STOP_TIMEOUT
        for worker in self.workers:
            with contextlib.suppress(subprocess.TimeoutExpired):
                worker.proc.wait(max(0.0, deadline - time.monotonic()))
            # Pool processes orphaned by a killed main process keep the group id.
            _killpg(worker.pid, signal.SIGKILL)
            worker.proc.wait()


_WORKERS = pytest.StashKey[list[WorkerProcess]]()


@pytest.fixture
def rl_worker(
    request: pytest.FixtureRequest, rl_env: dict[str, str], tmp_path: Path
) -> Iterator[WorkerFactory]:
    """Factory starting ``rl worker`` subprocesses, see :class:`WorkerFactory`."""
    factory = WorkerFactory(rl_env, request.config.rootpath, tmp_path / "rl_worker")
    request.node.stash[_WORKERS] = factory.workers
    try:
        yield factory
    finally:
        factory.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Attaches each worker's log tail to the report of a failed test phase."""
    report = yield
    if report.failed:
        for worker in item.stash.get(_WORKERS, []):
            report.sections.append((f"Captured log of worker {worker.hostname}", worker.tail()))
    return report


# --- CLI ---------------------------------------------------------------------------------


class CliRunner:
    """The ``rl_cli`` fixture: runs ``python -m relier ARGS`` and captures its output."""

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.env = env
        self.cwd = cwd

    def __call__(
        self, *args: str, env: dict[str, str] | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Runs the CLI to completion; the exit code is not checked.

        Args:
            *args: The ``rl`` arguments, e.g. ``("status", "--json")``.
            env: The environment; defaults to ``rl_env``.
            timeout: Seconds before ``subprocess.TimeoutExpired`` is raised.
        """
        return subprocess.run(
            [sys.executable, "-m", "relier", *args],
            env=self.env if env is None else env,
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


@pytest.fixture
def rl_cli(request: pytest.FixtureRequest, rl_env: dict[str, str]) -> CliRunner:
    """Runs ``python -m relier ...`` with ``rl_env``, see :class:`CliRunner`."""
    return CliRunner(rl_env, request.config.rootpath)

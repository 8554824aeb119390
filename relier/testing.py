"""Pytest fixtures for testing Relier tasks against a real Redis and real worker processes.

Relier ships this plugin so that you can test your own tasks the way Relier tests its own:
no fakes, no mocks, a real ``redis-server`` and real ``rl worker`` processes that you can
signal, kill and restart. It is registered under the ``pytest11`` entry point, so installing
``relier`` is enough; every fixture below is available in any pytest run.

Fixtures:

``redis_server`` (session)
    A private ``redis-server`` 7+ on a free 127.0.0.1 port in a temporary directory, with
    AOF on (``appendfsync everysec``), ``maxmemory-policy noeviction`` and no RDB snapshots:
    the settings Relier's preflight requires. The binary is ``$RELIER_TEST_REDIS_SERVER`` or
    ``redis-server`` on ``PATH``. A missing or too old binary *fails* the tests that need it
    (a missing service is an error, never a reason to skip). See :class:`RedisServer`.
``redis_url`` (function)
    ``FLUSHALL`` on the session server, then its URL: every test starts with empty databases.
``relier_env`` (function)
    ``os.environ`` without inherited ``RELIER_*`` variables, plus
    ``RELIER_REDIS_URL=<redis_url>`` and ``PYTHONUNBUFFERED=1``; pass it to subprocesses.
``rl_worker`` (function)
    A :class:`WorkerFactory`: ``rl_worker("myproject.tasks")`` starts ``python -m relier
    worker`` in its own process group, waits for ``Relier worker ready`` in its log and
    returns a :class:`WorkerProcess`. Every worker still running at teardown gets SIGTERM,
    then SIGKILL (whole process group) after 10 s. The log of each worker is attached to
    the report of a failed test.
``rl_cli`` (function)
    A :class:`CliRunner`: ``rl_cli("inflight", "--json")`` runs ``python -m relier ...`` with
    ``relier_env`` and returns the ``subprocess.CompletedProcess`` with text output.

Worker and CLI subprocesses run with the pytest rootdir as working directory, so
``-A tests.integration.apps.basic`` imports modules from your project.

This module imports nothing from ``relier`` (nor ``redis``) at import time: pytest loads it in
every run where ``relier`` is installed, and that must stay cheap and side-effect free.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    import redis

__all__ = ["CliRunner", "RedisServer", "WorkerFactory", "WorkerProcess"]

REDIS_SERVER_ENV = "RELIER_TEST_REDIS_SERVER"
MIN_REDIS_MAJOR = 7
READY_LINE = "Relier worker ready"
_REDIS_BASE_ARGS = (
    "--appendonly", "yes",
    "--appendfsync", "everysec",
    "--maxmemory-policy", "noeviction",
    "--save", "",
    "--bind", "127.0.0.1",
    "--protected-mode", "no",
    "--daemonize", "no",
)  # fmt: skip
_PING_TIMEOUT = 10.0
_STOP_TIMEOUT = 10.0
_LOG_TAIL_LINES = 60


# --- helpers -----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


def _die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` asking Linux to SIGTERM the child if pytest itself dies.

    Fixture teardown covers every normal exit; this covers pytest being SIGKILLed (e.g. by a
    CI timeout), so that no redis-server or worker outlives the test run. libc is loaded here,
    in the parent: importing in the forked child could deadlock on a lock held by a thread.
    Linux sends the signal when the *thread* that forked the child exits, so this is only
    armed for children started from the main thread.
    """
    if not sys.platform.startswith("linux") or threading.current_thread() is not (
        threading.main_thread()
    ):
        return None
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl
    pr_set_pdeathsig = 1

    def preexec() -> None:
        prctl(pr_set_pdeathsig, signal.SIGTERM)

    return preexec


def _ping(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5) as sock:
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            # A server still loading its AOF answers -LOADING, which is not ready.
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _redis_executable() -> str:
    configured = os.environ.get(REDIS_SERVER_ENV)
    executable = configured or shutil.which("redis-server")
    if not executable:
        pytest.fail(
            "redis-server was not found on PATH; install Redis 7+ "
            "(`sudo apt-get install -y redis-server`) or set "
            f"{REDIS_SERVER_ENV}=/path/to/redis-server",
            pytrace=False,
        )
    try:
        out = subprocess.run(
            [executable, "--version"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
            stdin=subprocess.DEVNULL,
        ).stdout
    except OSError as exc:
        error: OSError | None = exc
    else:
        error = None
    if error is not None:  # failing outside the except block keeps the report to one line
        where = f"{REDIS_SERVER_ENV}={configured}" if configured else executable
        pytest.fail(f"cannot run redis-server ({where}): {error}", pytrace=False)
    match = re.search(r"v=(\d+)\.(\d+)\.(\d+)", out)
    if match is None or int(match.group(1)) < MIN_REDIS_MAJOR:
        found = match.group(0)[2:] if match else f"unrecognised version output {out.strip()!r}"
        pytest.fail(
            f"Relier needs redis-server {MIN_REDIS_MAJOR}+, but {executable} is {found}; "
            "install a newer Redis (`sudo apt-get install -y redis-server` on Debian 12+) "
            f"or point {REDIS_SERVER_ENV} at one",
            pytrace=False,
        )
    return executable


# --- Redis -------------------------------------------------------------------------------


class RedisServer:
    """A private ``redis-server`` process bound to 127.0.0.1.

    The port and the data directory are fixed for the object's lifetime, so :meth:`restart`
    brings back the same server with its AOF data (chaos tests use this to simulate a Redis
    restart), and URLs handed to workers stay valid across restarts.
    """

    host = "127.0.0.1"

    def __init__(
        self, executable: str, dir: Path, port: int | None = None, args: Sequence[str] = ()
    ) -> None:
        self.executable = executable
        self.dir = dir
        self.port = port if port is not None else _free_port()
        self.args = tuple(args)
        self.proc: subprocess.Popen[bytes] | None = None
        self._extras: list[RedisServer] = []

    def __repr__(self) -> str:
        state = "running" if self.is_running() else "stopped"
        return f"<RedisServer {self.url} dir={self.dir} {state}>"

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0``."""
        return f"redis://{self.host}:{self.port}/0"

    @property
    def log_path(self) -> Path:
        """The server's log file (``redis.log`` in its directory)."""
        return self.dir / "redis.log"

    def is_running(self) -> bool:
        """True while the server process is alive."""
        return self.proc is not None and self.proc.poll() is None

    def client(self, **kwargs: Any) -> redis.Redis:
        """Returns a new ``redis.Redis`` for this server (``decode_responses=False``).

        Keyword arguments are passed to ``redis.Redis`` and override the defaults.
        """
        import redis

        options: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "db": 0,
            "decode_responses": False,
            **kwargs,
        }
        return redis.Redis(**options)

    def start(self) -> None:
        """Starts the server (no-op if it is running) and waits until it answers PING.

        Fails the test with the log tail if it does not answer within 10 s.
        """
        if self.is_running():
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        command = [
            self.executable,
            "--port", str(self.port),
            "--dir", str(self.dir),
            "--logfile", str(self.log_path),
            *_REDIS_BASE_ARGS,
            *self.args,
        ]  # fmt: skip
        # Errors in the arguments are printed before the log file is opened: keep them too.
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.dir,
                preexec_fn=_die_with_parent(),
            )
        deadline = time.monotonic() + _PING_TIMEOUT
        while not _ping(self.host, self.port):
            code = self.proc.poll()
            if code is not None or time.monotonic() > deadline:
                reason = f"exited with code {code}" if code is not None else "did not answer PING"
                self.stop()
                pytest.fail(
                    f"redis-server on port {self.port} {reason} within {_PING_TIMEOUT:.0f} s; "
                    f"last lines of {self.log_path}:\n{_tail(self.log_path)}",
                    pytrace=False,
                )
            time.sleep(0.02)

    def stop(self) -> None:
        """Shuts the server down gracefully (SIGTERM: the AOF is fsynced), SIGKILL after 10 s.

        No-op if it is not running. Servers from :meth:`start_extra` are not affected.
        """
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
        proc.wait()

    def kill(self) -> None:
        """SIGKILLs the server (writes from the last second may be lost, as in a crash)."""
        proc, self.proc = self.proc, None
        if proc is not None:
            proc.kill()
            proc.wait()

    def restart(self) -> None:
        """Stops and starts the server on the same port and directory; AOF data survives."""
        self.stop()
        self.start()

    def start_extra(self, *args: str) -> RedisServer:
        """Starts another server on its own port and directory with extra redis-server args.

        The args are appended to the defaults, so they override them, e.g.
        ``redis_server.start_extra("--appendonly", "no")``. The server is stopped when this
        one is shut down at the end of the session, or earlier with its own :meth:`stop`.
        """
        n = len(self._extras) + 1
        extra = RedisServer(self.executable, self.dir.with_name(f"{self.dir.name}-extra{n}"))
        extra.args = args
        self._extras.append(extra)
        extra.start()
        return extra

    def shutdown(self) -> None:
        """Stops this server and every server from :meth:`start_extra`."""
        for extra in self._extras:
            extra.shutdown()
        self.stop()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
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
                if attempt == 2 or "Address already in use" not in _tail(server.log_path):
                    raise
        assert server is not None
        yield server
    finally:
        if server is not None:
            server.shutdown()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session server's URL, after ``FLUSHALL`` (restarting it if a test stopped it)."""
    redis_server.start()
    with redis_server.client() as client:
        client.flushall()
    return redis_server.url


@pytest.fixture
def relier_env(redis_url: str) -> dict[str, str]:
    """Environment for subprocesses: ``os.environ`` minus ``RELIER_*``, plus the test's URL."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELIER_")}
    env["RELIER_REDIS_URL"] = redis_url
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
        return _tail(self.log_path, lines)

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
            env: The environment; defaults to ``relier_env``.
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
                preexec_fn=_die_with_parent(),
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
    request: pytest.FixtureRequest, relier_env: dict[str, str], tmp_path: Path
) -> Iterator[WorkerFactory]:
    """Factory starting ``rl worker`` subprocesses, see :class:`WorkerFactory`."""
    factory = WorkerFactory(relier_env, request.config.rootpath, tmp_path / "rl_worker")
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
            env: The environment; defaults to ``relier_env``.
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
def rl_cli(request: pytest.FixtureRequest, relier_env: dict[str, str]) -> CliRunner:
    """Runs ``python -m relier ...`` with ``relier_env``, see :class:`CliRunner`."""
    return CliRunner(relier_env, request.config.rootpath)

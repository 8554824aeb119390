"""A private ``redis-server`` process: for ``rl demo`` and the test fixtures.

Started on 127.0.0.1 with the settings Relier's preflight demands (AOF on,
``noeviction``), in a directory of its own, on a fixed port for the
object's life: :meth:`LocalRedis.restart` brings back the same server with
its AOF data, so URLs handed to workers stay valid across restarts.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from relier.errors import LocalRedisError

__all__ = ["LocalRedis", "LocalRedisError", "find_redis_server", "free_port"]

REDIS_SERVER_ENV = "RELIER_TEST_REDIS_SERVER"
MIN_REDIS_MAJOR = 7
BASE_ARGS = (
    "--appendonly", "yes",
    "--appendfsync", "everysec",
    "--maxmemory-policy", "noeviction",
    "--save", "",
    "--bind", "127.0.0.1",
    "--protected-mode", "no",
    "--daemonize", "no",
)  # fmt: skip
PING_TIMEOUT = 10.0
_PORT_RANGE = "/proc/sys/net/ipv4/ip_local_port_range"
STOP_TIMEOUT = 10.0


def _ephemeral_ports() -> tuple[int, int]:
    try:
        low, high = (int(n) for n in Path(_PORT_RANGE).read_text().split())
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default
    return low, high


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now, outside the ephemeral range.

    A server restarted on its port (``restart``: the chaos tests, the
    reconciliation tests) leaves it unbound for a moment. A port from the
    kernel's ephemeral range can meanwhile become the local port of some
    client's outgoing connection, or of a client reconnecting to that very
    port, which then connects to itself (a TCP self-connect): either way the
    server cannot bind it again. Ports below (or above) that range are only
    ever taken by an explicit ``bind``.
    """
    low, high = _ephemeral_ports()
    span = range(10_000, low) if low - 10_000 >= 1_000 else range(high + 1, 65_536)
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.choice(span)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise LocalRedisError(f"no free TCP port found in {span.start}-{span.stop - 1}")


def tail(path: Path, lines: int = 60) -> str:
    """The last ``lines`` lines of a log file."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


def die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` asking Linux to SIGTERM the child when its parent dies.

    Covers the parent being SIGKILLed (a CI timeout) so no redis-server or
    worker outlives it. libc is loaded here, in the parent: importing in the
    forked child could deadlock on a lock held by another thread. Linux
    signals when the *thread* that forked exits, so it is armed only for
    children started from the main thread.
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


def ping(host: str, port: int) -> bool:
    """True when the server answers PING (a server loading its AOF does not)."""
    try:
        with socket.create_connection((host, port), timeout=0.5) as sock:
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def find_redis_server() -> str:
    """Path of a redis-server 7+ (``$RELIER_TEST_REDIS_SERVER`` or ``PATH``).

    Raises:
        LocalRedisError: none found, it does not run, or it is older than 7.
    """
    configured = os.environ.get(REDIS_SERVER_ENV)
    executable = configured or shutil.which("redis-server")
    if not executable:
        raise LocalRedisError(
            "redis-server was not found on PATH; install Redis 7+ (`sudo apt-get install -y "
            f"redis-server`) or set {REDIS_SERVER_ENV}=/path/to/redis-server"
        )
    try:
        out = subprocess.run(
            [executable, "--version"], capture_output=True, text=True, timeout=10,
            check=False, stdin=subprocess.DEVNULL,
        ).stdout  # fmt: skip
    except OSError as exc:
        where = f"{REDIS_SERVER_ENV}={configured}" if configured else executable
        raise LocalRedisError(f"cannot run redis-server ({where}): {exc}") from None
    match = re.search(r"v=(\d+)\.(\d+)\.(\d+)", out)
    if match is None or int(match.group(1)) < MIN_REDIS_MAJOR:
        found = match.group(0)[2:] if match else f"unrecognised version output {out.strip()!r}"
        raise LocalRedisError(
            f"Relier needs redis-server {MIN_REDIS_MAJOR}+, but {executable} is {found}; install "
            f"a newer Redis (`sudo apt-get install -y redis-server` on Debian 12+) or point "
            f"{REDIS_SERVER_ENV} at one"
        )
    return executable


class LocalRedis:
    """A private ``redis-server`` bound to 127.0.0.1 (see the module docstring)."""

    host = "127.0.0.1"

    def __init__(
        self,
        dir: Path,
        port: int | None = None,
        args: Sequence[str] = (),
        executable: str | None = None,
    ) -> None:
        self.executable = executable or find_redis_server()
        self.dir = Path(dir)
        self.port = port if port is not None else free_port()
        self.args = tuple(args)
        self.proc: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        state = "running" if self.is_running() else "stopped"
        return f"<{type(self).__name__} {self.url} dir={self.dir} {state}>"

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

    def client(self, **kwargs: Any) -> Any:
        """A new ``redis.Redis`` for this server; keyword arguments override defaults."""
        import redis

        options: dict[str, Any] = {"host": self.host, "port": self.port, "db": 0, **kwargs}
        return redis.Redis(**options)

    def start(self) -> None:
        """Start the server (no-op if running) and wait until it answers PING.

        Raises:
            LocalRedisError: it exited or did not answer within 10 s (the
                message holds the end of its log).
        """
        if self.is_running():
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        command = [
            self.executable,
            "--port", str(self.port),
            "--dir", str(self.dir),
            "--logfile", str(self.log_path),
            *BASE_ARGS,
            *self.args,
        ]  # fmt: skip
        # Errors in the arguments are printed before the log file opens: keep them too.
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                cwd=self.dir, preexec_fn=die_with_parent(),
            )  # fmt: skip
        deadline = time.monotonic() + PING_TIMEOUT
        while not ping(self.host, self.port):
            code = self.proc.poll()
            if code is not None or time.monotonic() > deadline:
                reason = f"exited with code {code}" if code is not None else "did not answer PING"
                self.stop()
                raise LocalRedisError(
                    f"redis-server on port {self.port} {reason} within {PING_TIMEOUT:.0f} s; "
                    f"last lines of {self.log_path}:\n{tail(self.log_path)}"
                )
            time.sleep(0.02)

    def stop(self) -> None:
        """Shut down gracefully (SIGTERM fsyncs the AOF); SIGKILL after 10 s."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
        proc.wait()

    def kill(self) -> None:
        """SIGKILL the server (writes of the last second may be lost, as in a crash)."""
        proc, self.proc = self.proc, None
        if proc is not None:
            proc.kill()
            proc.wait()

    def restart(self) -> None:
        """Stop and start on the same port and directory; AOF data survives."""
        self.stop()
        self.start()

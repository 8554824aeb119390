"""Run the example: the Django project and a Relier worker, with one command.

    python run.py [--port 8000]

Uses the Redis in ``RELIER_REDIS_URL``; when it is unset, starts a private
redis-server (AOF on, noeviction) with its data in ``.relier-example/``.
Uses ``RELIER_ADMIN_TOKEN`` for the admin API, or makes one up and prints
it. The project runs on Django's development server (``manage.py
runserver``); in production, serve it with a WSGI server
such as gunicorn. Ctrl-C stops everything it started.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def start(command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(command, cwd=HERE, env=env, start_new_session=True)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    redis = None
    if "RELIER_REDIS_URL" not in env:
        from relier.localredis import LocalRedis

        redis = LocalRedis(HERE / ".relier-example" / "redis")
        redis.start()
        env["RELIER_REDIS_URL"] = redis.url
        print(f"redis-server started at {redis.url}", flush=True)
    if "RELIER_ADMIN_TOKEN" not in env:
        env["RELIER_ADMIN_TOKEN"] = secrets.token_urlsafe(24)
    print(f"admin token: {env['RELIER_ADMIN_TOKEN']}", flush=True)
    processes = []
    try:
        processes.append(start([sys.executable, "-m", "relier", "worker", "-A", "tasks",
                                "-c", "2", "--loglevel", "INFO"], env))  # fmt: skip
        processes.append(start([sys.executable, "manage.py", "runserver", "--noreload",
                                f"127.0.0.1:{args.port}"], env))  # fmt: skip
        print(f"admin API: http://127.0.0.1:{args.port}/relier/status  (Ctrl-C stops)", flush=True)
        while all(p.poll() is None for p in processes):
            time.sleep(0.5)
        return 1  # one of them exited on its own: its output above says why
    except KeyboardInterrupt:
        return 0
    finally:
        for process in reversed(processes):
            stop(process)
        if redis is not None:
            redis.stop()


if __name__ == "__main__":
    sys.exit(main())

"""Is this Redis fit to hold the journal? Version 7+, AOF on, noeviction.

Without AOF a Redis restart forgets every pushed task; with an evicting
``maxmemory-policy`` Redis silently deletes journal entries under memory
pressure. Either way jobs are lost, so workers refuse to start. The checks
use ``CONFIG GET`` and fall back to ``INFO`` where managed services disable
``CONFIG``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import redis.exceptions

from relier.errors import PreflightError
from relier.journal.connection import redact, translate_errors

__all__ = ["PreflightReport", "check", "require"]

MIN_VERSION = (7, 0)


@dataclass(frozen=True, slots=True)
class PreflightReport:
    """What preflight found; ``problems`` is empty when Redis is fit."""

    url: str
    version: str
    appendonly: bool
    maxmemory_policy: str
    source: str
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split(".")[:2] if p.isdigit())


def _config(client: Any) -> tuple[bool, str] | None:
    try:
        aof = client.config_get("appendonly")
        policy = client.config_get("maxmemory-policy")
    except redis.exceptions.ResponseError:
        return None  # CONFIG is disabled or renamed (managed Redis)
    if "appendonly" not in aof or "maxmemory-policy" not in policy:
        return None
    return str(aof["appendonly"]) == "yes", str(policy["maxmemory-policy"])


def check(client: Any, url: str) -> PreflightReport:
    """Inspect the Redis behind ``client`` (``url`` is only for messages).

    Raises:
        RedisUnavailableError: Redis cannot be reached.
    """
    shown = redact(url)
    with translate_errors(url):
        server = client.info("server")
        found = _config(client)
        source = "CONFIG GET"
        if found is None:
            persistence = client.info("persistence")
            memory = client.info("memory")
            found = (
                int(persistence.get("aof_enabled", 0)) == 1,
                str(memory.get("maxmemory_policy", "")),
            )
            source = "INFO"
    version = str(server.get("redis_version", "0"))
    appendonly, policy = found
    cli = f"redis-cli -u {shown}"
    problems = []
    if _version_tuple(version) < MIN_VERSION:
        problems.append(
            f"Redis {version} is too old: Relier needs 7.0 or newer (its scripts use 7.0 "
            "commands); upgrade the server"
        )
    if not appendonly:
        problems.append(
            f"appendonly is off, so a Redis restart would forget pushed tasks: run `{cli} "
            "CONFIG SET appendonly yes` and add `appendonly yes` to redis.conf"
        )
    if policy != "noeviction":
        problems.append(
            f"maxmemory-policy is {policy or 'unknown'}, so Redis may evict journal entries: "
            f"run `{cli} CONFIG SET maxmemory-policy noeviction` and add `maxmemory-policy "
            "noeviction` to redis.conf"
        )
    return PreflightReport(shown, version, appendonly, policy, source, problems)


def require(client: Any, url: str) -> PreflightReport:
    """:func:`check`, raising when Redis is unfit.

    Raises:
        PreflightError: one or more checks failed; the message lists each
            with its fix.
        RedisUnavailableError: Redis cannot be reached.
    """
    report = check(client, url)
    if report.problems:
        raise PreflightError(
            f"Redis at {report.url} is not safe for Relier:\n  - " + "\n  - ".join(report.problems),
            report.problems,
        )
    return report

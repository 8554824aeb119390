"""The one settings class.

Every knob Relier has is a field of :class:`RelierSettings`, read from
``RELIER_*`` environment variables (``RELIER_REDIS_URL`` sets ``redis_url``)
or passed as keyword arguments. Invalid values raise
:class:`~relier.errors.ConfigurationError` naming the variable, the value
received and what is accepted; pydantic's own error never escapes.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from relier.errors import ConfigurationError

__all__ = ["RelierSettings", "load_settings"]

ENV_PREFIX = "RELIER_"
# Shortest signing key accepted, in bytes (of its UTF-8 encoding): 128 bits,
# the least that keeps a brute-force search of HMAC-SHA256 keys out of reach.
MIN_SIGNING_KEY_BYTES = 16
# Shortest admin API bearer token accepted, in bytes: the same 128 bits.
MIN_ADMIN_TOKEN_BYTES = 16
# Fields whose values an error message must never show.
_SECRET_FIELDS = {"admin_token", "signing_key", "signing_old_keys"}


class RelierSettings(BaseSettings):
    """Relier's configuration. Field ``x`` is read from ``RELIER_X``."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, extra="forbid", frozen=True, validate_default=True
    )

    redis_url: str = Field(
        "redis://127.0.0.1:6379/0",
        description="Redis holding the journal, leases, retries and the DLQ.",
    )
    broker_url: str | None = Field(
        None,
        description="Celery broker. Defaults to redis_url; must be that same Redis "
        "(the dispatch script journals and publishes in one atomic step).",
    )
    key_prefix: str = Field("rl", description="Prefix of every Redis key Relier owns.")
    default_queue: str = Field("celery", description="Queue for tasks that name none.")
    result_ttl: int = Field(
        86_400, gt=0, description="Seconds a finished task's journal and result are kept."
    )
    max_payload_bytes: int = Field(
        1_048_576, gt=0, description="Largest encoded envelope a push accepts, in bytes."
    )
    history_max: int = Field(
        100, ge=10, description="Events kept in each task's history (oldest dropped)."
    )
    max_retries: int = Field(3, ge=0, description="Default retries after the first attempt.")
    retry_backoff: float = Field(
        1.0, gt=0, description="Base of the exponential retry backoff, in seconds."
    )
    retry_backoff_max: float = Field(300.0, gt=0, description="Longest retry delay, in seconds.")
    retry_jitter: bool = Field(
        True, description="Draw each retry delay uniformly from [0, backoff] (full jitter)."
    )
    lease_ttl_ms: int = Field(
        2_000, ge=200, description="A worker is dead once its lease is this old, in ms."
    )
    lease_renew_ms: int = Field(500, ge=50, description="How often a worker renews its lease.")
    scan_interval_ms: int = Field(
        500, ge=50, description="How often workers move due retries and look for dead leases."
    )
    depth_retry_after: float = Field(
        1.0,
        gt=0,
        description="The retry_after (seconds) given to pushes refused because the task's "
        "queue is at its max_queue_depth.",
    )
    max_resurrections: int = Field(
        3,
        ge=1,
        description="A task whose own crash (its pool process died, or its worker died "
        "running only it) resurrects it this many times goes to the DLQ as a poison pill.",
    )
    max_worker_deaths: int = Field(
        10,
        ge=1,
        description="Whole-worker deaths, with other tasks running beside it, that a task may "
        "be caught in before it is quarantined. Kept far above max_resurrections: such a "
        "death cannot say which task caused it.",
    )
    schema_defer_max: float = Field(
        900.0,
        gt=0,
        description="Seconds a call made for a newer schema_version than a worker's code knows "
        "keeps being deferred (put back for the newer workers of a rolling deploy) before it "
        "goes to the DLQ as schema_too_new, counted from its first deferral (anew after an "
        "attempt that ran).",
    )
    shutdown_grace: float = Field(
        25.0,
        ge=0,
        description="Seconds a SIGTERMed worker lets running tasks finish before handing them "
        "back; keep it below the platform's kill window (Kubernetes 30 s, Docker 10 s).",
    )
    socket_timeout: float = Field(
        5.0, gt=0, description="Seconds a Redis command may take before it is an error."
    )
    socket_connect_timeout: float = Field(
        2.0, gt=0, description="Seconds to establish a Redis connection."
    )
    preflight: bool = Field(
        True,
        description="Workers refuse to start unless Redis passes the preflight checks. "
        "Turning this off is for throwaway development servers only.",
    )
    chaos: bool = Field(
        False,
        description="Let this worker run the probe tasks of `rl chaos` (queue relier-chaos), "
        "including a poison pill that ends its own process. Off in production.",
    )
    signing_key: SecretStr | None = Field(
        None,
        description="Secret key for HMAC-SHA256 envelope signatures: pushes sign with it, "
        "and workers that have it refuse unsigned or wrongly signed envelopes "
        "(DLQ reason bad_signature). At least 16 bytes.",
    )
    signing_old_keys: SecretStr | None = Field(
        None,
        description="Comma-separated further keys a signature may be made with (verify "
        "only, never used to sign), for key rotation. Needs signing_key.",
    )
    prometheus_port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description="Serve the worker's metrics for Prometheus on this port (all interfaces, "
        "/metrics), from the worker's main process. Needs the otel extra.",
    )
    admin_token: SecretStr | None = Field(
        None,
        description="Bearer token the web adapters' admin API (/relier) requires, unless the "
        "app passes its own token or authentication dependency. At least 16 bytes.",
    )

    @field_validator("redis_url", "broker_url")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        # unix:// is refused: kombu (the Celery broker) cannot open it, and
        # the broker must be this very Redis.
        if value is not None and not value.startswith(("redis://", "rediss://")):
            raise ValueError("must be a redis:// or rediss:// URL")
        return value

    @field_validator("key_prefix", "default_queue")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        # Braces would change which Cluster slot a key hashes to; colons at the
        # ends would make empty key segments.
        if not value or any(c in value for c in "{} \t\n") or value.strip(":") != value:
            raise ValueError("must be non-empty, without braces, spaces or leading/trailing ':'")
        return value

    @field_validator("signing_key")
    @classmethod
    def _one_key(cls, value: SecretStr | None) -> SecretStr | None:
        # Messages give lengths only, never the value: it is a secret.
        if value is not None:
            if "," in value.get_secret_value():
                raise ValueError(
                    "must be one key without commas (commas separate the keys of "
                    "RELIER_SIGNING_OLD_KEYS, where this key goes when it is rotated out)"
                )
            _check_length(_split_keys(value) or [b""], "the key")
        return value

    @field_validator("admin_token")
    @classmethod
    def _admin_token(cls, value: SecretStr | None) -> SecretStr | None:
        # The message gives the length only, never the value: it is a secret.
        size = len(value.get_secret_value().encode()) if value is not None else None
        if size is not None and size < MIN_ADMIN_TOKEN_BYTES:
            raise ValueError(
                f"the admin token is {size} bytes; it needs at least {MIN_ADMIN_TOKEN_BYTES} "
                "(make one with `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
            )
        return value

    @field_validator("signing_old_keys")
    @classmethod
    def _old_keys(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            keys = _split_keys(value)
            for n, key in enumerate(keys, start=1):
                _check_length([key], f"key {n} of {len(keys)}")
        return value

    @model_validator(mode="after")
    def _lease_timing(self) -> RelierSettings:
        if self.lease_renew_ms * 2 > self.lease_ttl_ms:
            raise ValueError(
                f"RELIER_LEASE_RENEW_MS ({self.lease_renew_ms}) must be at most half of "
                f"RELIER_LEASE_TTL_MS ({self.lease_ttl_ms}) so one missed renewal is survivable"
            )
        if self.retry_backoff_max < self.retry_backoff:
            raise ValueError(
                f"RELIER_RETRY_BACKOFF_MAX ({self.retry_backoff_max}) must be >= "
                f"RELIER_RETRY_BACKOFF ({self.retry_backoff})"
            )
        old_keys = _split_keys(self.signing_old_keys) if self.signing_old_keys else []
        if old_keys and self.signing_key is None:
            raise ValueError(
                "RELIER_SIGNING_OLD_KEYS is set but RELIER_SIGNING_KEY is not: old keys only "
                "add to a current key; set RELIER_SIGNING_KEY (the key pushes sign with)"
            )
        return self

    @property
    def effective_broker_url(self) -> str:
        """The broker URL Celery uses: ``broker_url`` or, unset, ``redis_url``."""
        return self.broker_url or self.redis_url

    @property
    def signing_keys(self) -> tuple[bytes, ...]:
        """The envelope keys as bytes: ``signing_key`` first (the one pushes
        sign with), then ``signing_old_keys``; empty when signing is off."""
        if self.signing_key is None:
            return ()
        old = _split_keys(self.signing_old_keys) if self.signing_old_keys else []
        return (*_split_keys(self.signing_key), *old)


def _split_keys(value: SecretStr) -> list[bytes]:
    """The comma-separated keys in ``value``, stripped, empty entries dropped.

    Surrounding whitespace is dropped because a key read from a file (a
    Kubernetes or Docker secret) often ends in a newline that the producer's
    copy does not have: a silent mismatch would refuse every task.
    """
    return [k.strip().encode() for k in value.get_secret_value().split(",") if k.strip()]


def _check_length(keys: list[bytes], what: str) -> None:
    for key in keys:
        if len(key) < MIN_SIGNING_KEY_BYTES:
            raise ValueError(
                f"{what} is {len(key)} bytes; signing keys need at least "
                f"{MIN_SIGNING_KEY_BYTES} (make one with `python -c 'import secrets; "
                "print(secrets.token_urlsafe(32))'`)"
            )


def load_settings(**overrides: Any) -> RelierSettings:
    """Build settings from the environment plus ``overrides``.

    Raises:
        ConfigurationError: a value is invalid; the message names the
            ``RELIER_*`` variable, the value received and the rule.
    """
    try:
        return RelierSettings(**overrides)
    except ValidationError as exc:
        raise ConfigurationError(_describe(exc)) from None


def _describe(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"])
        name = f"{ENV_PREFIX}{field.upper()}" if field else "settings"
        received = err.get("input")
        hidden = field == "" or field in _SECRET_FIELDS or isinstance(received, dict)
        shown = "" if hidden else f" (got {received!r})"
        lines.append(f"{name}: {err['msg']}{shown}")
    return "invalid Relier settings: " + "; ".join(lines)

"""Settings: defaults, RELIER_* parsing, and errors that name the variable."""

from __future__ import annotations

import os
from typing import Any

import pytest

from relier.config import RelierSettings, load_settings
from relier.errors import ConfigurationError


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("RELIER_"):
            monkeypatch.delenv(name)


def test_defaults() -> None:
    s = load_settings()
    assert s.redis_url == "redis://127.0.0.1:6379/0"
    assert s.broker_url is None
    assert s.effective_broker_url == s.redis_url
    assert s.key_prefix == "rl"
    assert s.default_queue == "celery"
    assert s.result_ttl == 86_400
    assert s.max_payload_bytes == 1_048_576
    assert s.history_max == 100
    assert s.max_retries == 3
    assert s.retry_backoff == 1.0
    assert s.retry_backoff_max == 300.0
    assert s.retry_jitter is True
    assert (s.lease_ttl_ms, s.lease_renew_ms) == (2_000, 500)
    assert s.scan_interval_ms == 500
    assert (s.socket_timeout, s.socket_connect_timeout) == (5.0, 2.0)
    assert s.preflight is True


def test_every_field_is_documented() -> None:
    for name, info in RelierSettings.model_fields.items():
        assert info.description, name


def test_environment_is_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        "RELIER_REDIS_URL": "redis://cache.internal:6380/2",
        "RELIER_BROKER_URL": "rediss://cache.internal:6380/2",
        "RELIER_KEY_PREFIX": "billing",
        "RELIER_DEFAULT_QUEUE": "jobs",
        "RELIER_RESULT_TTL": "60",
        "RELIER_MAX_PAYLOAD_BYTES": "2048",
        "RELIER_HISTORY_MAX": "20",
        "RELIER_MAX_RETRIES": "0",
        "RELIER_RETRY_BACKOFF": "0.5",
        "RELIER_RETRY_BACKOFF_MAX": "10",
        "RELIER_RETRY_JITTER": "false",
        "RELIER_LEASE_TTL_MS": "4000",
        "RELIER_LEASE_RENEW_MS": "1000",
        "RELIER_SCAN_INTERVAL_MS": "250",
        "RELIER_SOCKET_TIMEOUT": "1.5",
        "RELIER_SOCKET_CONNECT_TIMEOUT": "0.5",
        "RELIER_PREFLIGHT": "0",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    s = load_settings()
    assert s.redis_url == "redis://cache.internal:6380/2"
    assert s.effective_broker_url == "rediss://cache.internal:6380/2"
    assert (s.key_prefix, s.default_queue) == ("billing", "jobs")
    assert (s.result_ttl, s.max_payload_bytes, s.history_max, s.max_retries) == (60, 2048, 20, 0)
    assert (s.retry_backoff, s.retry_backoff_max, s.retry_jitter) == (0.5, 10.0, False)
    assert (s.lease_ttl_ms, s.lease_renew_ms, s.scan_interval_ms) == (4000, 1000, 250)
    assert (s.socket_timeout, s.socket_connect_timeout) == (1.5, 0.5)
    assert s.preflight is False


def test_keyword_overrides_win_over_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELIER_MAX_RETRIES", "7")
    assert load_settings().max_retries == 7
    assert load_settings(max_retries=1).max_retries == 1


def test_settings_are_frozen() -> None:
    s = load_settings()
    with pytest.raises(Exception, match="frozen"):
        s.max_retries = 9


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("REDIS_URL", "http://localhost:6379"),
        ("REDIS_URL", "localhost:6379"),
        ("BROKER_URL", "amqp://guest@localhost//"),
        ("KEY_PREFIX", "rl{x}"),
        ("KEY_PREFIX", "a}b"),
        ("KEY_PREFIX", ""),
        ("KEY_PREFIX", "has space"),
        ("KEY_PREFIX", ":rl"),
        ("KEY_PREFIX", "rl:"),
        ("DEFAULT_QUEUE", "{q}"),
        ("RESULT_TTL", "0"),
        ("RESULT_TTL", "a day"),
        ("MAX_PAYLOAD_BYTES", "-1"),
        ("HISTORY_MAX", "9"),
        ("MAX_RETRIES", "-1"),
        ("MAX_RETRIES", "1.5"),
        ("RETRY_BACKOFF", "0"),
        ("RETRY_BACKOFF_MAX", "-3"),
        ("RETRY_JITTER", "sometimes"),
        ("LEASE_TTL_MS", "100"),
        ("LEASE_RENEW_MS", "10"),
        ("SCAN_INTERVAL_MS", "0"),
        ("SOCKET_TIMEOUT", "0"),
        ("SOCKET_CONNECT_TIMEOUT", "never"),
        ("PREFLIGHT", "maybe"),
    ],
)
def test_invalid_environment_value_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, var: str, value: str
) -> None:
    monkeypatch.setenv(f"RELIER_{var}", value)
    with pytest.raises(ConfigurationError) as info:
        load_settings()
    message = str(info.value)
    assert f"RELIER_{var}" in message
    assert repr(value) in message
    assert info.value.__cause__ is None
    assert "pydantic" not in message.lower()


@pytest.mark.parametrize(
    ("field", "value"),
    [("history_max", 5), ("redis_url", "tcp://x"), ("key_prefix", "{tag}"), ("max_retries", -2)],
)
def test_invalid_keyword_value_names_the_variable(field: str, value: Any) -> None:
    with pytest.raises(ConfigurationError, match=f"RELIER_{field.upper()}"):
        load_settings(**{field: value})


def test_unknown_keyword_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="RELIER_REDIS_ULR"):
        load_settings(redis_ulr="redis://x")


def test_all_problems_are_reported_at_once() -> None:
    with pytest.raises(ConfigurationError) as info:
        load_settings(result_ttl=0, history_max=1)
    assert "RELIER_RESULT_TTL" in str(info.value)
    assert "RELIER_HISTORY_MAX" in str(info.value)


@pytest.mark.parametrize(
    "url",
    ["redis://localhost:6379/0", "rediss://user:pw@host:6380/1"],
)
def test_accepted_url_schemes(url: str) -> None:
    assert load_settings(redis_url=url).redis_url == url


def test_bad_url_scheme_says_what_is_accepted() -> None:
    with pytest.raises(ConfigurationError) as info:
        load_settings(redis_url="memcached://localhost")
    assert "RELIER_REDIS_URL" in str(info.value)
    assert "redis://" in str(info.value)


def test_key_prefix_with_braces_is_refused() -> None:
    with pytest.raises(ConfigurationError) as info:
        load_settings(key_prefix="rl{1}")
    assert "RELIER_KEY_PREFIX" in str(info.value)
    assert "braces" in str(info.value)


def test_key_prefix_with_inner_colons_is_fine() -> None:
    assert load_settings(key_prefix="app:rl").key_prefix == "app:rl"


def test_lease_renew_over_half_the_ttl_is_rejected() -> None:
    with pytest.raises(ConfigurationError) as info:
        load_settings(lease_ttl_ms=2_000, lease_renew_ms=1_001)
    message = str(info.value)
    assert "RELIER_LEASE_RENEW_MS (1001)" in message
    assert "RELIER_LEASE_TTL_MS (2000)" in message


def test_lease_renew_of_exactly_half_the_ttl_is_accepted() -> None:
    s = load_settings(lease_ttl_ms=2_000, lease_renew_ms=1_000)
    assert s.lease_renew_ms == 1_000


def test_lease_renew_over_half_the_ttl_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELIER_LEASE_RENEW_MS", "1500")
    with pytest.raises(ConfigurationError, match="RELIER_LEASE_RENEW_MS"):
        load_settings()


def test_backoff_max_below_backoff_is_rejected() -> None:
    with pytest.raises(ConfigurationError) as info:
        load_settings(retry_backoff=10, retry_backoff_max=5)
    assert "RELIER_RETRY_BACKOFF_MAX" in str(info.value)
    assert "RELIER_RETRY_BACKOFF " in str(info.value)


# --- envelope signing keys -------------------------------------------------------------

KEY = "a-signing-key-of-32-characters.."
OLD = "an-older-key-still-accepted-here"


def test_signing_is_off_by_default() -> None:
    s = load_settings()
    assert s.signing_key is None and s.signing_old_keys is None
    assert s.signing_keys == ()


def test_signing_keys_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELIER_SIGNING_KEY", f"{KEY}\n")  # as read from a secret file
    monkeypatch.setenv("RELIER_SIGNING_OLD_KEYS", f" {OLD} ,, {'z' * 16},")
    s = load_settings()
    assert s.signing_keys == (KEY.encode(), OLD.encode(), b"z" * 16)


def test_signing_keys_are_never_shown() -> None:
    s = load_settings(signing_key=KEY, signing_old_keys=OLD)
    for text in (repr(s), str(s), str(s.model_dump())):
        assert KEY not in text and OLD not in text


@pytest.mark.parametrize(
    ("overrides", "variable", "rule"),
    [
        ({"signing_key": "short-secret"}, "RELIER_SIGNING_KEY", "12 bytes"),
        ({"signing_key": ""}, "RELIER_SIGNING_KEY", "0 bytes"),
        ({"signing_key": "   "}, "RELIER_SIGNING_KEY", "0 bytes"),
        ({"signing_key": f"{KEY},{OLD}"}, "RELIER_SIGNING_KEY", "without commas"),
        ({"signing_key": KEY, "signing_old_keys": f"{OLD},tiny-secret"}, "RELIER_SIGNING_OLD_KEYS",
         "key 2 of 2 is 11 bytes"),
        ({"signing_old_keys": OLD}, "RELIER_SIGNING_KEY", "RELIER_SIGNING_OLD_KEYS is set"),
    ],
)  # fmt: skip
def test_bad_signing_keys_are_refused_without_showing_them(
    overrides: dict[str, str], variable: str, rule: str
) -> None:
    with pytest.raises(ConfigurationError) as info:
        load_settings(**overrides)
    message = str(info.value)
    assert variable in message and rule in message
    for value in overrides.values():
        for secret in value.split(","):
            if secret.strip():
                assert secret.strip() not in message


def test_an_empty_old_keys_variable_is_no_old_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELIER_SIGNING_OLD_KEYS", "")
    assert load_settings().signing_keys == ()
    assert load_settings(signing_key=KEY).signing_keys == (KEY.encode(),)


# --- Prometheus exposition ------------------------------------------------------------


def test_prometheus_port_is_unset_by_default_and_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert load_settings().prometheus_port is None
    monkeypatch.setenv("RELIER_PROMETHEUS_PORT", "9464")
    assert load_settings().prometheus_port == 9464


@pytest.mark.parametrize("port", ["0", "65536", "-1", "http"])
def test_prometheus_port_must_be_a_port_number(monkeypatch: pytest.MonkeyPatch, port: str) -> None:
    monkeypatch.setenv("RELIER_PROMETHEUS_PORT", port)
    with pytest.raises(ConfigurationError) as info:
        load_settings()
    assert "RELIER_PROMETHEUS_PORT" in str(info.value)
    assert f"(got {port!r})" in str(info.value)


# --- the web adapters' admin token -----------------------------------------------------


def test_admin_token_is_unset_by_default_and_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().admin_token is None
    monkeypatch.setenv("RELIER_ADMIN_TOKEN", "an-admin-token-of-32-characters!")
    settings = load_settings()
    assert settings.admin_token is not None
    assert settings.admin_token.get_secret_value() == "an-admin-token-of-32-characters!"
    assert "an-admin-token" not in repr(settings)


def test_a_short_admin_token_is_refused_without_showing_it() -> None:
    with pytest.raises(ConfigurationError) as info:
        load_settings(admin_token="tiny-secret")
    message = str(info.value)
    assert "RELIER_ADMIN_TOKEN" in message and "11 bytes" in message
    assert "tiny-secret" not in message

"""The curated public API: ``relier.__all__`` and the adapter packages."""

from __future__ import annotations

import importlib
import inspect

import pytest

import relier

INTENDED = {
    # the hub and settings
    "Relier", "bind", "current", "RelierSettings", "load_settings",
    # tasks, calls, handles
    "rl_task", "RlTask", "BoundTask", "Call", "CallOptions", "TaskHandle", "TaskContext",
    "send_task",
    # the dead letter queue
    "DeadTask", "Reason",
    # locks
    "idempotency_lock", "IdempotencyLock", "LockNotAcquiredError", "IdempotencyConflictError",
    "AdmissionRejectedError",
    # errors
    "RelierError", "ConfigurationError", "RedisUnavailableError", "RedisFullError",
    "PreflightError",
    "UnknownTaskError", "PayloadError", "PayloadNotSerializableError", "PayloadTooLargeError",
    "PayloadValidationError",
    "InvalidEnvelopeError", "LocalRedisError", "TaskFailedError", "TaskNotFoundError",
    "BadSignatureError",
    "ResultTimeoutError",
    "StaleFenceError", "HardTimeoutError",
    "__version__",
}  # fmt: skip

ADAPTERS = ("relier_fastapi", "relier_flask", "relier_django")


def test_all_is_sorted() -> None:
    assert relier.__all__ == sorted(relier.__all__)
    assert len(set(relier.__all__)) == len(relier.__all__)


def test_all_is_the_intended_set() -> None:
    assert set(relier.__all__) == INTENDED


@pytest.mark.parametrize("name", sorted(INTENDED))
def test_every_public_name_resolves(name: str) -> None:
    assert hasattr(relier, name)


@pytest.mark.parametrize("name", sorted(INTENDED - {"__version__"}))
def test_every_public_name_is_documented(name: str) -> None:
    assert inspect.getdoc(getattr(relier, name))


def test_star_import_gives_exactly_all() -> None:
    namespace: dict[str, object] = {}
    exec("from relier import *", namespace)
    assert set(namespace) - {"__builtins__"} == INTENDED


def test_version() -> None:
    from importlib.metadata import version

    assert relier.__version__ == version("relier")


@pytest.mark.parametrize("package", ADAPTERS)
def test_adapter_package_imports(package: str) -> None:
    module = importlib.import_module(package)
    assert module.__doc__
    exported = getattr(module, "__all__", [])
    assert list(exported) == sorted(exported)
    for name in exported:
        assert hasattr(module, name)

"""One exception tree under RelierError, each class documented."""

from __future__ import annotations

import inspect

import pytest

import relier
import relier.errors as errors
from relier.errors import (
    PayloadError,
    PayloadTooLargeError,
    PreflightError,
    RelierError,
    ResultTimeoutError,
    TaskFailedError,
)

CLASSES = [getattr(errors, name) for name in errors.__all__]


def test_all_is_sorted_and_complete() -> None:
    assert errors.__all__ == sorted(errors.__all__)
    defined = {
        name
        for name, obj in vars(errors).items()
        if inspect.isclass(obj)
        and issubclass(obj, BaseException)
        and obj.__module__ == errors.__name__
    }
    assert defined == set(errors.__all__)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_every_error_is_a_relier_error(cls: type[Exception]) -> None:
    assert issubclass(cls, RelierError)
    assert getattr(relier, cls.__name__) is cls


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_every_error_says_when_it_is_raised(cls: type[Exception]) -> None:
    doc = inspect.getdoc(cls) or ""
    if cls is RelierError:
        assert doc
    else:
        assert doc.startswith("Raised "), cls


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_module_docstring_tree_lists_every_error(cls: type[Exception]) -> None:
    assert f"── {cls.__name__}" in (errors.__doc__ or "") or cls is RelierError


def test_payload_errors_share_a_base() -> None:
    for name in ("PayloadNotSerializableError", "PayloadTooLargeError", "InvalidEnvelopeError"):
        assert issubclass(getattr(errors, name), PayloadError)


def test_payload_too_large_carries_size_and_limit() -> None:
    exc = PayloadTooLargeError("too big", size=10, limit=5)
    assert (exc.size, exc.limit, str(exc)) == (10, 5, "too big")


def test_preflight_error_carries_problems() -> None:
    exc = PreflightError("unsafe", ["a", "b"])
    assert exc.problems == ["a", "b"]


def test_task_failed_error_message() -> None:
    exc = TaskFailedError("id1", "max_retries", "ValueError: boom")
    assert (exc.task_id, exc.reason, exc.error) == ("id1", "max_retries", "ValueError: boom")
    assert str(exc) == "task id1 is in the dead letter queue (max_retries): ValueError: boom"


def test_result_timeout_is_a_timeout_error() -> None:
    assert issubclass(ResultTimeoutError, TimeoutError)
    with pytest.raises(TimeoutError):
        raise ResultTimeoutError("late")

"""TaskContext: what an attempt knows about itself, and fenced checkpoints."""

from __future__ import annotations

import math
from typing import Any

import pytest

import relier.context
from relier.context import TaskContext, wants_context
from relier.errors import PayloadNotSerializableError, StaleFenceError


def ctx(save: Any = None) -> TaskContext:
    return TaskContext(task_id="t1", task_name="tests.ctx", attempt=2, fence=5, _save=save)


def test_fields_and_repr() -> None:
    c = ctx()
    assert (c.task_id, c.task_name, c.attempt, c.fence, c.progress) == (
        "t1",
        "tests.ctx",
        2,
        5,
        None,
    )
    assert "_save" not in repr(c)


def test_checkpoint_without_store_keeps_progress_locally() -> None:
    c = ctx()
    c.checkpoint({"page": 1})
    assert c.progress == {"page": 1}


def test_checkpoint_saves_compact_json() -> None:
    saved: list[bytes] = []
    c = ctx(lambda data: saved.append(data) or True)  # type: ignore[func-returns-value]  # append, then True
    c.checkpoint({"page": 2, "ids": [1, 2]})
    assert saved == [b'{"page":2,"ids":[1,2]}']
    assert c.progress == {"page": 2, "ids": [1, 2]}


def test_refused_checkpoint_raises_stale_fence_and_keeps_progress() -> None:
    c = ctx(lambda data: False)
    c.progress = {"page": 1}
    with pytest.raises(StaleFenceError, match="fence 5"):
        c.checkpoint({"page": 2})
    assert c.progress == {"page": 1}


def test_non_json_checkpoint_is_refused_before_saving() -> None:
    saved: list[bytes] = []
    c = ctx(lambda data: saved.append(data) or True)  # type: ignore[func-returns-value]  # append, then True
    with pytest.raises(PayloadNotSerializableError, match="checkpoint state"):
        c.checkpoint({"x": math.nan})
    with pytest.raises(PayloadNotSerializableError):
        c.checkpoint(object())
    assert saved == []
    assert c.progress is None


def with_ctx(ctx: TaskContext, x: int) -> int:
    return x


def with_string_annotation(ctx: relier.context.TaskContext, x: int) -> int:
    return x


def without_ctx(x: int, ctx: TaskContext) -> int:
    return x


def unannotated(ctx, x):  # type: ignore[no-untyped-def]
    return x


def no_params() -> None:
    return None


def test_wants_context() -> None:
    assert wants_context(with_ctx)
    assert wants_context(with_string_annotation)  # annotations are strings here
    assert not wants_context(without_ctx)
    assert not wants_context(unannotated)
    assert not wants_context(no_params)
    assert not wants_context(len)  # builtins may have no signature


def test_wants_context_with_real_annotation() -> None:
    def fn(c: Any, y: int) -> None: ...

    fn.__annotations__["c"] = TaskContext
    assert wants_context(fn)

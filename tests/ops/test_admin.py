"""The admin API's framework-neutral core: limits, models, problem body, token digest."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
from pydantic import SecretStr, ValidationError

from relier import AdmissionRejectedError, ConfigurationError
from relier.ops import inspection, stats
from relier.ops.admin import (
    MAX_ID_LENGTH,
    MAX_IDS,
    MAX_MS,
    PROBLEM_JSON,
    TASK_ID,
    DlqQuery,
    InflightQuery,
    InvalidRequest,
    RelierQueueDepth,
    RelierRates,
    RelierStatus,
    RelierTaskIds,
    StatusQuery,
    TokenDigest,
    parse_query,
    parse_task_id,
    parse_task_ids,
    problem_body,
    retry_after_seconds,
)

TOKEN = "s3cret-admin-token-0123456789"


def test_importing_it_imports_no_web_framework() -> None:
    code = (
        "import sys, relier.ops.admin; "
        "print([m for m in ('fastapi', 'starlette', 'flask', 'django') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_fastapi_schemas_module_re_exports_the_same_models() -> None:
    from relier_fastapi import schemas

    assert schemas.RelierStatus is RelierStatus
    assert schemas.RelierTaskIds is RelierTaskIds
    assert (schemas.MAX_IDS, schemas.MAX_ID_LENGTH) == (MAX_IDS, MAX_ID_LENGTH)


@pytest.mark.parametrize("value", ["a", "x" * MAX_ID_LENGTH, "4b1d-uuid"])
def test_task_id_accepts(value: str) -> None:
    assert TASK_ID.validate_python(value) == value


@pytest.mark.parametrize("value", ["", "x" * (MAX_ID_LENGTH + 1), "a{b", "a}b"])
def test_task_id_refuses(value: str) -> None:
    with pytest.raises(ValidationError):
        TASK_ID.validate_python(value)


def test_task_ids_body() -> None:
    assert RelierTaskIds.model_validate({"ids": ["a", "b"]}).ids == ["a", "b"]
    bad: object
    for bad in ({"ids": []}, {"ids": ["x"] * (MAX_IDS + 1)}, {"ids": ["a"], "more": 1}, None):
        with pytest.raises(ValidationError):
            RelierTaskIds.model_validate(bad)


def test_query_models() -> None:
    assert StatusQuery.model_validate({}).queue == []
    assert StatusQuery.model_validate({"queue": ["a", "b"]}).queue == ["a", "b"]
    with pytest.raises(ValidationError):
        StatusQuery.model_validate({"queue": ["q"] * 51})
    assert InflightQuery.model_validate({"task": "billing.*"}).task == "billing.*"
    with pytest.raises(ValidationError):
        InflightQuery.model_validate({"queue": "q" * 201})
    query = DlqQuery.model_validate({"reason": "poison_pill", "limit": "5", "since_ms": "0"})
    assert (query.limit, query.since_ms, query.before_ms) == (5, 0, None)
    assert query.reason is not None and query.reason.value == "poison_pill"
    assert DlqQuery.model_validate({}).limit == 100
    for bad in ({"limit": 0}, {"limit": 1001}, {"before_ms": MAX_MS + 1}, {"reason": "nope"}):
        with pytest.raises(ValidationError):
            DlqQuery.model_validate(bad)


def test_response_models_build_from_the_inspection_dataclasses() -> None:
    rates = stats.Rates(window_ms=60_000, counts={"dead": 1}, per_minute={"dead": 1.0})
    status = inspection.Status(
        now_ms=1, workers_alive=1, workers_dead=0, queues=[inspection.QueueDepth("celery", 3)],
        running=0, reserved=0, scheduled=0, overdue=0, retrying=0, retrying_exact=True, dlq=1,
        rates=rates,
    )  # fmt: skip
    model = RelierStatus.model_validate(status)
    assert model.queues == [RelierQueueDepth(name="celery", depth=3)]
    assert model.rates == RelierRates(
        window_ms=60_000, counts={"dead": 1}, per_minute={"dead": 1.0}
    )


@pytest.mark.parametrize(
    ("wait", "header"),
    [(0.0, 1), (0.2, 1), (1.0, 1), (1.01, 2), (59.5, 60), (-3.0, 1), (math.inf, 1), (math.nan, 1)],
)
def test_retry_after_seconds(wait: float, header: int) -> None:
    assert retry_after_seconds(wait) == header


def test_problem_body() -> None:
    body = problem_body(AdmissionRejectedError("billing.charge", 1.25, "rate"))
    assert body == {
        "type": "about:blank",
        "title": "Too Many Requests",
        "status": 429,
        "detail": "refused by a rate limit; retry after 1.250 s",
        "retry_after": 1.25,
        "reason": "rate",
    }
    assert "billing" not in json.dumps(body)
    assert PROBLEM_JSON == "application/problem+json"


def test_problem_body_depth_type_and_odd_waits() -> None:
    body = problem_body(AdmissionRejectedError("t", math.inf, "depth"), "https://e.x/429")
    assert body["type"] == "https://e.x/429"
    assert body["detail"].startswith("refused by a queue's depth cap")
    assert body["retry_after"] == 1.0
    json.dumps(body, allow_nan=False)
    assert problem_body(AdmissionRejectedError("t", -2.0, "rate"))["retry_after"] == 0.0


def test_token_digest_matches_only_its_token() -> None:
    token = TokenDigest(TOKEN)
    assert token.matches(TOKEN)
    assert token.matches(TOKEN.encode())
    assert not token.matches(TOKEN + "x")
    assert not token.matches("")
    assert TokenDigest(SecretStr(TOKEN)).matches(TOKEN)


def test_token_digest_keeps_no_token() -> None:
    token = TokenDigest(TOKEN)
    assert TOKEN not in repr(token)
    assert "***" in repr(token)
    assert not hasattr(token, "__dict__")
    assert all(TOKEN not in str(getattr(token, slot)) for slot in TokenDigest.__slots__)


def test_token_digest_refuses_a_short_token() -> None:
    with pytest.raises(ConfigurationError, match="15 bytes; it needs at least 16"):
        TokenDigest("x" * 15)
    TokenDigest("x" * 16)


def test_parse_query_ignores_unknown_parameters_and_reports_bad_ones() -> None:
    assert parse_query(DlqQuery, {"limit": "7", "other": "x"}).limit == 7
    with pytest.raises(InvalidRequest) as info:
        parse_query(DlqQuery, {"limit": "0"})
    assert info.value.where == "query"
    [error] = info.value.detail
    assert error["loc"] == ["query", "limit"]
    assert error["type"] == "greater_than_equal"
    assert "url" not in error and "ctx" not in error


def test_parse_task_id_and_ids() -> None:
    assert parse_task_id("abc") == "abc"
    with pytest.raises(InvalidRequest) as info:
        parse_task_id("a{b}")
    assert info.value.detail[0]["loc"] == ["path"]
    assert parse_task_ids({"ids": ["a"]}) == ["a"]
    with pytest.raises(InvalidRequest) as info:
        parse_task_ids({"ids": ["a"], "x": 1})
    assert info.value.detail[0]["loc"] == ["body", "x"]

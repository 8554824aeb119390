"""Fuzz the admin API from its own OpenAPI schema with schemathesis: no input,
valid or not, makes it answer 5xx, and every answer fits the schema.

The requests go through FastAPI's TestClient (so the app's lifespan runs
once, on a real Redis) and hypothesis is derandomized with a bounded number
of examples per operation, so the run is repeatable and takes seconds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from relier.clock import now_ms
from tests.adapters.test_fastapi import AUTH, make_app

EXAMPLES = {GenerationMode.POSITIVE: 30, GenerationMode.NEGATIVE: 15}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def fuzz(client: TestClient, operation: Any, mode: GenerationMode) -> Callable[[], None]:
    @settings(
        max_examples=EXAMPLES[mode],
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        kwargs = case.as_transport_kwargs(base_url="http://testserver", headers=AUTH)
        # The kwargs are for requests; httpx2 wants raw bodies as content= and
        # deprecates per-request cookies (none are used here).
        kwargs.pop("cookies", None)
        if "data" in kwargs and not isinstance(kwargs["data"], dict):
            kwargs["content"] = kwargs.pop("data")
        response = client.request(**kwargs)
        case.validate_response(response, checks=CHECKS)

    return run


def test_the_admin_api_answers_every_generated_request_without_a_server_error(
    rl_redis_url: str,
) -> None:
    app = make_app(rl_redis_url)
    schema = schemathesis.openapi.from_dict(app.openapi())
    operations = [
        # A union of Ok and Err; the app's own schema is valid, so each is Ok.
        result.ok()  # type: ignore[union-attr]
        for result in schema.get_all_operations()
        if result.ok().path.startswith("/relier/")  # type: ignore[union-attr]
    ]
    assert len(operations) == 10
    with TestClient(app) as client:
        # Something to find: a queued task and a dead one.
        client.post("/greet", params={"name": "queued"})
        dead = client.post("/greet", params={"name": "dead"}).json()["id"]
        client.app.state.relier.scripts.dead_letter(dead, now_ms(), "unknown_task", "x")  # type: ignore[attr-defined]
        for operation in operations:
            for mode in EXAMPLES:
                fuzz(client, operation, mode)()

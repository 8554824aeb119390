"""Celery messages built for kombu's Redis transport, completed by Lua with a tag."""

from __future__ import annotations

import base64
import json
import uuid

import kombu
import pytest

from relier.journal.message import TEMPLATE_TAIL, message_template, new_delivery_tag, random_uuid


def complete(task_id: str, name: str, queue: str, tag: str) -> dict[str, object]:
    message: dict[str, object] = json.loads(
        message_template(task_id, name, queue) + tag + TEMPLATE_TAIL
    )
    return message


def test_template_ends_inside_the_delivery_tag() -> None:
    template = message_template("id1", "tests.m", "q")
    assert template.endswith('"delivery_tag":"')
    with pytest.raises(json.JSONDecodeError):
        json.loads(template)


def test_completed_message_is_celery_protocol_2() -> None:
    msg = complete("id1", "tests.m", "emails", "tag-9")
    assert msg["content-type"] == "application/json"
    assert msg["content-encoding"] == "utf-8"
    headers = msg["headers"]
    assert isinstance(headers, dict)
    assert headers["task"] == "tests.m"
    assert headers["id"] == headers["root_id"] == "id1"
    assert headers["lang"] == "py"
    assert headers["eta"] is None
    assert headers["retries"] == 0
    props = msg["properties"]
    assert isinstance(props, dict)
    assert props["delivery_tag"] == "tag-9"
    assert props["correlation_id"] == "id1"
    assert props["body_encoding"] == "base64"
    assert props["delivery_info"] == {"exchange": "", "routing_key": "emails"}
    assert isinstance(msg["body"], str)
    args, kwargs, embed = json.loads(base64.b64decode(msg["body"]))
    assert args == ["id1"]
    assert kwargs == {}
    assert embed == {"callbacks": None, "errbacks": None, "chain": None, "chord": None}


def test_quotes_in_names_stay_valid_json() -> None:
    msg = complete('id"1', 'tests."m"', "q", "t")
    assert msg["headers"]["task"] == 'tests."m"'  # type: ignore[index]


def test_delivery_tags_are_unique() -> None:
    tags = {new_delivery_tag() for _ in range(1_000)}
    assert len(tags) == 1_000
    assert all('"' not in t and "\\" not in t for t in tags)


def test_kombu_reads_a_dispatched_message(rl_redis_url: str) -> None:
    from relier.journal.keys import Keys
    from relier.journal.scripts import NewTask, Scripts

    with kombu.Connection(rl_redis_url) as conn:  # type: ignore[attr-defined, no-untyped-call]  # kombu: lazy exports, unannotated
        client = conn.default_channel.client
        scripts = Scripts(client, Keys(), history_max=10)
        template = message_template("id1", "tests.m", "kq")
        created, _ = scripts.dispatch(
            NewTask("id1", "tests.m", "kq", b"{}", template, "tag-1", 1, 0)
        )
        assert created
        queue = conn.SimpleQueue("kq")
        try:
            message = queue.get(timeout=2)
            assert message.headers["task"] == "tests.m"
            assert message.headers["id"] == "id1"
            assert message.delivery_tag == "tag-1"
            assert message.decode() == [["id1"], {}, {
                "callbacks": None, "errbacks": None, "chain": None, "chord": None,
            }]  # fmt: skip
            message.ack()
        finally:
            queue.close()


@pytest.mark.parametrize(
    "task_id", ["abc", "i-" + "f" * 40, "550e8400-e29b-41d4-a716-446655440000", 'q"u\\o\u00e9\x01']
)
@pytest.mark.parametrize(("name", "queue"), [("a.b", "celery"), ('t"x\u00e9', "q\\1")])
def test_the_cached_template_is_exactly_the_message_built_whole(
    task_id: str, name: str, queue: str
) -> None:
    from relier.journal.message import _build

    assert message_template(task_id, name, queue) == _build(task_id, name, queue)


def test_random_uuid_is_a_version_4_uuid_string() -> None:
    ids = [random_uuid() for _ in range(2_000)]
    assert len(set(ids)) == len(ids)
    for text in ids:
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122
    # Every variant digit (8, 9, a, b) occurs: the two random bits are kept.
    assert {text[19] for text in ids} == set("89ab")

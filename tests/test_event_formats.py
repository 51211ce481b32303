"""Each registry's webhook payload, from the fixtures under testdata/events (each names the document or
the capture it follows), read into the events regprobe acts on; and bodies that are none of them refused
with a reason, never a crash."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from regprobe.digest import Digest
from regprobe.serve.events.event import Action, ParseError
from regprobe.serve.events.formats import parse

FIXTURES = Path(__file__).parent / "testdata" / "events"
D = "sha256:7f5b2640fe6fb4f46592dfd3410c4a79dac4f89e4782432e0378abcd12345678"
E = "sha256:fe5b2640fe6fb4f46592dfd3410c4a79dac4f89e4782432e0378abcd12345678"
A = "sha256:213bbc182920ab41e18edc2001e06abcca6735d87782d9cef68abd83941cf0e5"
B = "sha256:dde8e930c7b6a490f728e66292bc9bce42efc9bbb5278bae40e4f30f6e00fe8c"
H = "sha256:8a9e9863dbb6e10edb5adfe917c00da84e1700fa76e7ed02476aa6e6fb8ee0d8"
INDEX = "sha256:781cac1e16ff88655158d9b35bf1efbb768940eaf185175afc4ea747e9ff0cf6"
ECR = "123456789012.dkr.ecr.us-west-2.amazonaws.com"

Row = tuple[str, Action, str, str | None, str | None, str | None]
PUSH, DELETE = Action.PUSH, Action.DELETE

#: fixture -> (events as (source, action, repository, tag, digest, host), ignored (source, action), invalid)
EXPECTED: dict[str, tuple[list[Row], list[tuple[str, str]], int]] = {
    "distribution-push-tag": (
        [("distribution", PUSH, "team/api", "v1", INDEX, "registry.internal:5000")],
        [],
        0,
    ),
    "distribution-mixed-envelope": (
        [
            # A blob push: taken, and kept only if it brings back what a broken tag misses (receiver).
            ("distribution", PUSH, "team/api", None, E, "registry.internal:5000"),
            # A manifest or a blob: the event cannot say which.
            ("distribution", DELETE, "team/api", None, D, "registry.internal:5000"),
            ("distribution", DELETE, "team/api", "old", None, "registry.internal:5000"),
        ],
        [("distribution", "pull")],
        1,  # Team/API is no repository name
    ),
    "distribution-v3-delete-tag": (
        [("distribution", DELETE, "team/api", "v1", None, "registry.internal:5000")],
        [],
        0,
    ),
    "gitlab-push": (
        [("distribution", PUSH, "group/project/image", "main", D, "registry.gitlab.corp")],
        [],
        0,
    ),
    "harbor-push": ([("harbor", PUSH, "test-webhook/debian", "latest", H, "hub.harbor.com")], [], 0),
    # Deleting an artifact deletes its tags; the resource names the digest (where a tag would go too).
    "harbor-delete": ([("harbor", DELETE, "library/busybox", None, B, "harbor.dev")], [], 0),
    "harbor-pull": ([], [("harbor", "pull")], 0),
    "harbor-retention": ([("harbor", DELETE, "library/busybox", "1.35", None, "harbor.dev")], [], 0),
    "harbor-cloudevents-push": ([("harbor", PUSH, "library/busybox", "1.36", B, "harbor.dev")], [], 0),
    "harbor-cloudevents-delete": ([("harbor", DELETE, "library/busybox", "1.36", B, "harbor.dev")], [], 0),
    "zot-binary-push": ([("zot", PUSH, "team/api", "v2", D, None)], [], 0),
    "zot-binary-delete-tag": ([("zot", DELETE, "team/api", "v2", D, None)], [], 0),
    "zot-structured-lint": ([], [("zot", "other")], 0),
    "acr-push": ([("acr", PUSH, "hello-world", "v1", A, "myregistry.azurecr.io")], [], 0),
    "acr-delete": ([("acr", DELETE, "hello-world", None, A, "myregistry.azurecr.io")], [], 0),
    "acr-eventgrid-push": ([("acr", PUSH, "aci-helloworld", "v1", A, "myregistry.azurecr.io")], [], 0),
    "acr-eventgrid-validation": ([], [], 0),
    "quay-push": (
        [
            ("quay", PUSH, "dgangaia/test", "latest", None, "quay.io"),
            ("quay", PUSH, "dgangaia/test", "v1.2", None, "quay.io"),
        ],
        [],
        0,
    ),
    "quay-build-queued": ([], [("quay", "other")], 0),
    "dockerhub-push": ([("dockerhub", PUSH, "svendowideit/testhook", "latest", None, "docker.io")], [], 0),
    "ecr-push": ([("ecr", PUSH, "my-repository-name", "latest", D, ECR)], [], 0),
    "ecr-delete": ([("ecr", DELETE, "my-repository-name", "latest", E, ECR)], [], 0),
}


def fixture(name: str) -> tuple[bytes, dict[str, str], dict[str, Any]]:
    doc = json.loads((FIXTURES / f"{name}.json").read_text())
    assert doc["source"], name  # every fixture says where its shape comes from
    headers = {k.lower(): v for k, v in doc["headers"].items()}
    return json.dumps(doc["body"]).encode(), headers, doc


def test_every_fixture_is_checked() -> None:
    assert {p.stem for p in FIXTURES.glob("*.json")} == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture(name: str) -> None:
    body, headers, _ = fixture(name)
    parsed = parse(body, headers)
    rows, ignored, invalid = EXPECTED[name]
    got = [
        (e.source, e.action, e.repository, e.tag, str(e.digest) if e.digest else None, e.host) for e in parsed.events
    ]
    assert got == rows
    assert parsed.ignored == ignored
    assert len(parsed.invalid) == invalid
    # Every event can be told from every other: a redelivery is recognised, two events never merge.
    assert len({e.key for e in parsed.events}) == len(parsed.events)


def test_event_grid_validation_code_is_kept() -> None:
    body, headers, _ = fixture("acr-eventgrid-validation")
    assert parse(body, headers).validation_code == "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"


def test_a_redelivery_has_the_same_key() -> None:
    """Formats without an event id (Harbor's default, Quay, Docker Hub) are keyed by their content."""
    for name in ("harbor-push", "quay-push", "dockerhub-push", "distribution-push-tag"):
        body, headers, _ = fixture(name)
        assert [e.key for e in parse(body, headers).events] == [e.key for e in parse(body, headers).events]
    one = parse(fixture("harbor-push")[0], {}).events[0].key
    other = json.loads(fixture("harbor-push")[0])
    other["occur_at"] += 1
    assert parse(json.dumps(other).encode(), {}).events[0].key != one


def test_reference_and_description() -> None:
    event = parse(fixture("ecr-delete")[0], {}).events[0]
    assert event.digest == Digest.parse(E)
    assert event.describe() == "delete my-repository-name:latest@sha256:fe5b2640fe6f"
    repo = parse(
        json.dumps({"events": [{"id": "x", "action": "delete", "target": {"repository": "a/b"}}]}).encode(), {}
    )
    assert repo.events[0].describe() == "delete a/b"  # the whole repository


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "not JSON"),
        (b"<html>", "not JSON"),
        (b"[" * 100_000, "not JSON"),  # nesting deeper than the parser goes: refused, not a crash
        (b'"events"', "not an event of"),
        (b"{}", "not an event of"),
        (b'{"events": {}}', "'events' is missing or not a list"),
        (b'{"events": []}', "no event of"),
        (b'{"events": [{"action": "push", "target": {"repository": "a", "tag": 5}}]}', "'tag' is not a string"),
        (b'{"events": [{"action": "push", "target": {"repository": "a"}}]}', "names neither tag nor digest"),
        (b'{"events": [{"action": "push", "target": {"repository": "a", "digest": "md5:00"}}]}', "unsupported"),
        (b'{"events": [{"action": "push", "target": {"repository": "a", "tag": "a b"}}]}', "not a valid tag"),
        (b'{"events": [{"action": "push", "target": {"repository": "../x", "tag": "t"}}]}', "repository name"),
        (
            b'{"events": [{"action": "push", "target": {"repository": "a", "tag": "t", "url": "http://u@h/"}}]}',
            "not a host name",
        ),
        (b'{"specversion": "1.0", "type": "com.example.thing", "data": {}}', "is not one of"),
        (b'{"type": "PUSH_ARTIFACT", "event_data": {"repository": {}}}', "names no repository"),
        (b'[{"id": 1}]', "neither eventType"),
        (b'{"detail-type": "ECR Image Action", "detail": {"result": "SUCCESS", "action-type": "PUSH"}}', "repository"),
    ],
)
def test_unreadable_bodies_are_refused_naming_why(body: bytes, message: str) -> None:
    with pytest.raises(ParseError, match=message):
        parse(body, {})


def test_zot_binary_mode_needs_its_headers() -> None:
    """Without the ce-type header, zot's body is only data: nothing says what happened."""
    body, _, _ = fixture("zot-binary-push")
    with pytest.raises(ParseError):
        parse(body, {})


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=30,
)
KEYS = st.sampled_from(
    [
        "events",
        "action",
        "target",
        "repository",
        "tag",
        "digest",
        "specversion",
        "type",
        "data",
        "event_data",
        "resources",
        "push_data",
        "updated_tags",
        "detail-type",
        "detail",
        "eventType",
        "request",
        "host",
        "url",
    ]
)
SHAPED = st.recursive(
    st.none() | st.integers() | st.sampled_from(["push", "delete", "a/b", D, "v1", "", "harbor.artifact.pushed"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=6),
    max_leaves=40,
)


@given(st.one_of(JSON, SHAPED), st.sampled_from([None, "zotregistry.image.updated", "harbor.artifact.deleted"]))
def test_any_json_is_events_or_a_parse_error(doc: Any, ce_type: str | None) -> None:
    headers = {"ce-type": ce_type} if ce_type else {}
    try:
        parsed = parse(json.dumps(doc).encode(), headers)
    except ParseError:
        return
    assert parsed.usable

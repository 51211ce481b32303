from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from regprobe.digest import Digest
from regprobe.errors import DigestError, InvalidReferenceError, ParseError
from regprobe.reference import Reference, hub_repository

D = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("text", "host", "repository", "tag", "digest"),
    [
        ("alpine", "docker.io", "library/alpine", "latest", None),
        ("alpine:3.20", "docker.io", "library/alpine", "3.20", None),
        ("bitnami/redis", "docker.io", "bitnami/redis", "latest", None),
        ("docker.io/alpine", "docker.io", "library/alpine", "latest", None),
        ("index.docker.io/library/alpine:edge", "docker.io", "library/alpine", "edge", None),
        ("localhost/app", "localhost", "app", "latest", None),
        ("localhost:5000/team/app:v1", "localhost:5000", "team/app", "v1", None),
        ("127.0.0.1:5000/a/b/c:1.0-rc_1", "127.0.0.1:5000", "a/b/c", "1.0-rc_1", None),
        ("ghcr.io/org/img@" + D, "ghcr.io", "org/img", None, D),
        ("ghcr.io/org/img:v2@" + D, "ghcr.io", "org/img", "v2", D),
        ("[::1]:5000/app", "[::1]:5000", "app", "latest", None),
        ("registry.example.com/a__b/c-d/e.f", "registry.example.com", "a__b/c-d/e.f", "latest", None),
    ],
)
def test_parse(text: str, host: str, repository: str, tag: str | None, digest: str | None) -> None:
    ref = Reference.parse(text)
    assert (ref.host, ref.repository, ref.tag) == (host, repository, tag)
    assert (str(ref.digest) if ref.digest else None) == digest


def test_docker_hub_api_host() -> None:
    assert Reference.parse("alpine").api_host == "registry-1.docker.io"
    assert Reference.parse("localhost:5000/x").api_host == "localhost:5000"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("Upper/case", "must be lowercase"),
        ("host.io/app:bad tag", "not a valid tag"),
        ("host.io/app@sha256:short", "lowercase hex"),
        ("host.io/app@md5:" + "a" * 32, "unsupported algorithm"),
        ("host.io/-app", "component"),
        ("host.io/a//b", "component"),
        ("host.io/app:" + "t" * 129, "not a valid tag"),
        (" alpine", "surrounding space"),
    ],
)
def test_reject(text: str, message: str) -> None:
    with pytest.raises(InvalidReferenceError, match=message):
        Reference.parse(text)


def test_digest_round_trip_and_short() -> None:
    digest = Digest.parse(D)
    assert str(digest) == D and digest.short == "sha256:aaaaaaaaaaaa"
    assert Digest.of(b"") == Digest.parse("sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")


@pytest.mark.parametrize(
    "bad", ["sha256:" + "A" * 64, "sha256:" + "a" * 63, "sha256" + "a" * 64, "sha256:../../etc", 42, None, "x:y"]
)
def test_digest_rejects(bad: object) -> None:
    with pytest.raises(DigestError):
        Digest.parse(bad)


@given(st.text(max_size=300))
def test_arbitrary_text_raises_only_parse_errors(text: str) -> None:
    try:
        ref = Reference.parse(text)
    except ParseError:
        return
    assert "/" in str(ref) and ref.repository == ref.repository.lower()


@given(st.text(max_size=200))
def test_arbitrary_digest_text_raises_only_digest_error(text: str) -> None:
    try:
        digest = Digest.parse(text)
    except DigestError:
        return
    assert str(digest) == text and "/" not in text and "." not in text


@given(st.text(max_size=100))
def test_media_type_normalise_never_raises(text: str) -> None:
    from regprobe.mediatypes import normalise

    assert ";" not in normalise(text)


@pytest.mark.parametrize(
    ("text", "meant"),
    [
        ("127.0.0.1:5000", "127.0.0.1:5000"),
        ("localhost:5000", "localhost:5000"),
        ("registry.example.com", "registry.example.com"),
        ("localhost", "localhost"),
        ("ubuntu:22.04", None),
        ("library/ubuntu", None),
        ("127.0.0.1:5000/app", None),
    ],
)
def test_a_registry_read_as_a_docker_hub_image_is_named(text: str, meant: str | None) -> None:
    """Docker's grammar reads a bare HOST:PORT as a Hub image; the hint names the registry meant."""
    ref = Reference.parse(text)
    assert ref.registry_lookalike(text) == meant
    if meant:
        assert ref.host == "docker.io"


def test_reference_errors_name_the_reference_once() -> None:
    for text in ("Bad/Name", "host:5000/app:bad/tag", "app:" + "x" * 200, " app"):
        with pytest.raises(InvalidReferenceError) as caught:
            Reference.parse(text)
        message = str(caught.value)
        assert message.startswith(f"reference {text[:80]!r}: "), message
        assert message.count("reference ") == 1, message


def test_default_tag() -> None:
    assert Reference.parse("h:1/app", default_tag=None).tag is None
    assert Reference.parse("h:1/app").tag == "latest"


@pytest.mark.parametrize(
    ("host", "name", "expected"),
    [
        ("registry-1.docker.io", "alpine", "library/alpine"),
        ("docker.io", "alpine", "library/alpine"),
        ("INDEX.docker.io", "alpine", "library/alpine"),
        ("registry-1.docker.io", "bitnami/redis", "bitnami/redis"),
        ("ghcr.io", "alpine", "alpine"),
    ],
)
def test_hub_repository(host: str, name: str, expected: str) -> None:
    assert hub_repository(host, name) == expected


def test_docker_hub_listed_single_names_get_library(monkeypatch: pytest.MonkeyPatch) -> None:
    """B13 (Docker Hub, REPORTED in distribution#1203): `repositories.list: [alpine]` means library/alpine;
    asked as `alpine`, every token grants nothing and every request is refused."""
    import asyncio

    from regprobe import config, runner
    from regprobe.model import RegistryResult

    seen: dict[str, tuple[str, ...]] = {}

    async def fake_guarded(name: str, url: str, settings: Any, *args: Any, **kw: Any) -> RegistryResult:
        settings.close()  # how to reach the registry: not needed to see what it would be asked for
        seen[name] = kw["selection"].names
        return RegistryResult(name=name, url=url)

    monkeypatch.setattr(runner, "guarded", fake_guarded)
    cfg = config.parse(
        {
            "registries": [
                {"name": "hub", "url": "https://registry-1.docker.io", "repositories": {"list": ["alpine", "o/app"]}},
                {"name": "own", "url": "https://r.corp.internal", "repositories": {"list": ["alpine"]}},
            ]
        },
        "test.yaml",
    )
    asyncio.run(runner.run_config(cfg))
    assert seen == {"hub": ("library/alpine", "o/app"), "own": ("alpine",)}

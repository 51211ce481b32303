"""Listing pages (REGISTRY-QUIRKS.md A and B): Links followed as sent, listings that cannot be read to
their end stopped with an error, odd tag entries skipped. Request tables for what registry:2 cannot be
made to do (opaque cursors, repeated pages, Links to nowhere). distribution 2.8 sends no Link after an
exact multiple of n, nor does v3's catalog; v3's tag lists do. The last test pages both real registries."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from regprobe.client import ClientSettings, RegistryClient, RetryPolicy
from regprobe.errors import PaginationError, RegistryError

from .registry import Registry

HOST = "http://registry.test"


def listing(handler: Callable[[httpx.Request], httpx.Response], path: str, key: str, **kw: Any) -> list[str]:
    async def go() -> list[str]:
        settings = ClientSettings(url=HOST, retry=RetryPolicy(attempts=1))
        out: list[str] = []
        async with RegistryClient(settings, transport=httpx.MockTransport(handler)) as c:
            async for page in c.pages(path, key, **kw):
                out.extend(page)
        return out

    return asyncio.run(go())


# B14: the Link header shapes registries send, and the request each must lead to.
@pytest.mark.parametrize(
    ("header_name", "link", "followed"),
    [
        ("Link", '</v2/r/tags/list?n=2&last=b>; rel="next"', "/v2/r/tags/list?n=2&last=b"),  # zot, Quay
        ("Link", f"<{HOST}/v2/r/tags/list?last=b>;rel=next", "/v2/r/tags/list?last=b"),  # absolute, unquoted rel
        ("Link", '</v2/r/tags/list?last=a%2Fb&n=100>; rel="next"', "/v2/r/tags/list?last=a%2Fb&n=100"),  # distribution
        ("Link", '</v2/r/tags/list?last=v1&n=2&orderby=>; rel="next"', "/v2/r/tags/list?last=v1&n=2&orderby="),  # ACR
        (
            "Link",
            '</v2/r/tags/list?last=0>; rel="prev", </v2/r/tags/list?last=b>; rel="next"',
            "/v2/r/tags/list?last=b",
        ),
        ("link", '</v2/r/tags/list?last=b&n=2>; rel="next"', "/v2/r/tags/list?last=b&n=2"),  # lower-case name
        # ECR: absolute, with an opaque cursor and no n - sent back exactly as received.
        (
            "Link",
            f'<{HOST}/v2/r/tags/list?last=ukwZ4k2%2BAb%3D%3D>; rel="next"',
            "/v2/r/tags/list?last=ukwZ4k2%2BAb%3D%3D",
        ),
    ],
)
def test_link_variants_are_followed_as_sent(header_name: str, link: str, followed: str) -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.raw_path.decode())
        if len(seen) == 1:
            return httpx.Response(200, json={"name": "r", "tags": ["a", "b"]}, headers={header_name: link})
        return httpx.Response(200, json={"name": "r", "tags": ["c"]})

    assert listing(handler, "/v2/r/tags/list", "tags") == ["a", "b", "c"]
    assert seen == ["/v2/r/tags/list?n=1000", followed]


def test_exact_multiple_then_empty_page_is_the_end() -> None:
    """A3: a full last page still carries a Link; the empty page it leads to ends the listing."""
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        if "last" not in request.url.params:
            return httpx.Response(
                200, json={"repositories": ["a", "b", "c"]}, headers={"link": '</v2/_catalog?last=c&n=3>; rel="next"'}
            )
        # Even if an empty page carried another Link, there is nothing after it.
        return httpx.Response(200, json={"repositories": []}, headers={"link": '</v2/_catalog?last=c&n=3>; rel="next"'})

    assert listing(handler, "/v2/_catalog", "repositories") == ["a", "b", "c"]
    assert len(seen) == 2


def test_repeated_page_is_an_incomplete_listing() -> None:
    """A4 (Quay): a cursor the server cannot decrypt is answered with page 1 again, for ever."""
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        cursor = f"gAAAA{len(seen)}"  # a fresh cursor each time: only the content repeats
        return httpx.Response(
            200,
            json={"repositories": ["ns/b", "ns/a"]},
            headers={"link": f'</v2/_catalog?n=2&next_page={cursor}>; rel="next"'},
        )

    with pytest.raises(PaginationError, match="page 2 repeats an earlier page; the listing is incomplete"):
        listing(handler, "/v2/_catalog", "repositories")
    assert len(seen) == 2


def test_link_back_to_a_read_page_is_an_incomplete_listing() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        last = request.url.params.get("last")
        names = {"x": ["y"], "y": ["z"]}.get(last or "", ["x"])
        # The third page points back to the second.
        back = {None: "x", "x": "y", "y": "x"}[last]
        return httpx.Response(
            200, json={"repositories": names}, headers={"link": f'</v2/_catalog?last={back}&n=1000>; rel="next"'}
        )

    with pytest.raises(PaginationError, match="leads back to a page already read"):
        listing(handler, "/v2/_catalog", "repositories")


def test_link_to_a_404_is_an_incomplete_listing_not_an_unknown_repository() -> None:
    """B4 (Artifactory, REPORTED in renovate#15080): the Link drops the repository-key prefix; the page
    it names is 404. That is not 'this repository has no tags' (the status a first page's 404 means)."""

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v2/docker-remote/team/app/tags/list":
            return httpx.Response(
                200,
                json={"name": "team/app", "tags": ["1", "2", "3"]},
                headers={"link": '</v2/team/app/tags/list?last=3&n=3>; rel="next"'},
            )
        return httpx.Response(404, json={"errors": [{"code": "NAME_UNKNOWN"}]})

    with pytest.raises(PaginationError, match=r"page 2, from the previous page's Link: GET answered 404") as caught:
        listing(handler, "/v2/docker-remote/team/app/tags/list", "tags")
    assert caught.value.status is None


def test_pages_without_end_stop_at_the_bound() -> None:
    count = [0]

    def handler(request: httpx.Request) -> httpx.Response:
        count[0] += 1
        return httpx.Response(
            200,
            json={"repositories": [f"r{count[0]}"]},
            headers={"link": f'</v2/_catalog?last=r{count[0]}>; rel="next"'},
        )

    with pytest.raises(PaginationError, match="more than 5 pages"):
        listing(handler, "/v2/_catalog", "repositories", max_pages=5)
    assert count[0] == 5


def test_first_page_404_keeps_its_status() -> None:
    """The 404 of the first page is the registry's answer about the repository, for the prober to read."""

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, json={"errors": [{"code": "NAME_UNKNOWN"}]})

    with pytest.raises(RegistryError) as caught:
        listing(handler, "/v2/x/tags/list", "tags")
    assert (type(caught.value), caught.value.status, caught.value.code) == (RegistryError, 404, "NAME_UNKNOWN")


def test_null_and_digest_shaped_tags_are_skipped_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    """B6 (Nexus 3.58, REPORTED in skopeo#2409) and B7 (Artifactory, REPORTED in skopeo#2346)."""
    digest = "sha256:" + "a" * 64

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"name": "r", "tags": ["1.0", None, "1.1", digest]})

    with caplog.at_level(logging.WARNING):
        assert listing(handler, "/v2/r/tags/list", "tags") == ["1.0", "1.1"]
    assert "skipped 1 null and 1 digest-shaped entries" in caplog.text


def test_a_catalog_with_null_entries_is_still_an_error() -> None:
    """Only tag lists are known to carry nulls; a catalog that does is not understood."""

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"repositories": ["a", None]})

    with pytest.raises(RegistryError, match="not a list of strings"):
        listing(handler, "/v2/_catalog", "repositories")


def test_json_labelled_text_plain_is_read() -> None:
    """B2 (ECR, REPORTED in deitch/docker_registry2#34): the tag list comes as text/plain."""

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, content=b'{"name":"r","tags":["18","161"]}', headers={"content-type": "text/plain; charset=utf-8"}
        )

    assert listing(handler, "/v2/r/tags/list", "tags") == ["18", "161"]


@pytest.mark.each_registry
def test_real_registry_listings_are_read_to_their_end(
    tmp_path: Path, flavour: str, regprobe: Any, probe_config: Any
) -> None:
    """Both registries page the catalog by `catalog.maxentries` and refuse a larger n. Tag lists differ:
    2.8.2 ignores n and answers every tag at once; v3 clamps n to `tags.maxtags` and pages, with a Link
    after a page of exactly n that leads to an empty page. v3's catalog, whose last page here is as full,
    sends no such Link (registry/storage/catalog.go notices a full page only on the entry after it)."""
    reg = Registry(
        tmp_path / "paged",
        extra={
            "catalog": {"maxentries": 3},
            "tags": {"maxtags": 3},  # v3 only; 2.8.2 ignores the key
            "log": {"level": "error", "accesslog": {"disabled": False}},
        },
        flavour=flavour,
    ).start()
    try:
        image = reg.push_image("paged/a", "t0", layers=[b"a"])
        for i in range(1, 6):
            reg.tag("paged/a", f"t{i}", image.digest)
        for i in range(5):
            reg.push_image(f"paged/r{i}", "v1", layers=[b"r"])

        result = regprobe("run", "-c", probe_config({"name": "paged", "url": reg.url}), "--format", "json")

        entry = result.report["registries"][0]
        assert (result.code, entry["repositories"], entry["images_checked"]) == (0, 6, 11), result.out
        asked = [
            line.split('"GET ', 1)[1].split(" HTTP", 1)[0]
            for line in (reg.workdir / "registry.log").read_text().splitlines()
            if '"GET /v2/' in line
        ]
        # The catalog is read as repositories finish, so its pages and the tag pages interleave.
        assert [a for a in asked if a.startswith("/v2/_catalog")] == [
            "/v2/_catalog?n=1000",  # 400 PAGINATION_NUMBER_INVALID
            "/v2/_catalog",
            "/v2/_catalog?last=paged%2Fr1&n=3",
        ]
        assert [a for a in asked if a.startswith("/v2/paged/a/tags/list")] == {
            "2": ["/v2/paged/a/tags/list?n=1000"],
            "3": [
                "/v2/paged/a/tags/list?n=1000",
                "/v2/paged/a/tags/list?last=t2&n=3",
                "/v2/paged/a/tags/list?last=t5&n=3",
            ],
        }[flavour]
    finally:
        reg.stop()

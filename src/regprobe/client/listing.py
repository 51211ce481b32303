"""Listings - the catalog and tag lists - read page by page to their end, or not at all: a listing that
cannot be read to its end raises :class:`PaginationError`, and nothing is judged from half a list. And
the pages of a manifest's OCI 1.1 referrers, one at a time (regprobe.referrers judges them)."""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING, Any

import httpx

from .. import mediatypes as mt
from ..digest import Digest
from ..errors import PaginationError, RegistryError
from ..facts import Reply
from ..redact import display_url
from .reading import read_into, require_api

if TYPE_CHECKING:
    from .api import RegistryClient

log = logging.getLogger(__name__)

MAX_PAGES = 100_000
_MAX_PAGE_BYTES = 16 << 20
_JSON = {"Accept": "application/json"}


async def pages(
    client: RegistryClient, path: str, key: str, page_size: int | None, max_pages: int
) -> AsyncGenerator[list[str], None]:
    """See :meth:`RegistryClient.pages`."""
    url = client.base.join(path)
    if page_size:
        url = url.copy_merge_params({"n": page_size})
    seen_urls: set[str] = set()
    seen_pages: set[bytes] = set()
    for number in range(max_pages):
        reply = await client.exchange("GET", url, _JSON, _read_json_body)
        require_api(reply)
        if reply.status == 400 and reply.code == "PAGINATION_NUMBER_INVALID" and "n" in url.params:
            # The server's page limit (catalog.maxentries) is below what we asked: let it choose.
            url = url.copy_remove_param("n")
            continue
        if not reply.ok:
            if number > 0:
                # The first page of a Link answers an error: the Link is wrong (Artifactory drops its
                # repository-key prefix and answers 404), and what follows is unknown. Not a 404 of
                # the repository: raised without the status so no caller reads it as "no tags".
                raise PaginationError(
                    f"{display_url(url)}: page {number + 1}, from the previous page's Link: "
                    f"{reply.describe('GET')}; the listing is incomplete",
                    url=str(url),
                    code=reply.code,
                )
            raise _listing_error(url, reply)
        names = _names(reply, key, url)
        if number == 0 and not names and getattr(client.settings.auth, "silent", False):
            # Quay answers an anonymous catalog with an empty page, no challenge: with credentials
            # configured, learn the scheme from /v2/ and ask again with them.
            await client.ping()
            if not getattr(client.settings.auth, "silent", False):
                reply = await client.exchange("GET", url, _JSON, _read_json_body)
                if not reply.ok:
                    raise _listing_error(url, reply)
                names = _names(reply, key, url)
        page = hashlib.sha256("\0".join(names).encode()).digest() if names else b""
        if page and page in seen_pages:
            # Quay answers a cursor it cannot decrypt with page 1 again: following on never ends.
            raise PaginationError(
                f"GET {display_url(url)}: page {number + 1} repeats an earlier page; the listing is incomplete",
                url=str(url),
            )
        seen_pages.add(page)
        seen_urls.add(str(url))
        yield names
        next_url = reply.next_link
        if not next_url or not names:
            # An empty page ends the listing: distribution v3 sends a Link after a tag page of
            # exactly n entries, and the page it leads to is empty (tests/test_pagination.py).
            return
        target = url.join(next_url)
        if (target.scheme, target.host, target.port) != (url.scheme, url.host, url.port):
            raise PaginationError(
                f"GET {display_url(url)}: pagination Link points to another host ({target.host}); not followed",
                url=str(url),
            )
        if str(target) in seen_urls:
            raise PaginationError(
                f"GET {display_url(url)}: pagination Link leads back to a page already read; the listing is incomplete",
                url=str(url),
            )
        url = target
    raise PaginationError(f"GET {path}: more than {max_pages} pages; stopped, the listing is incomplete", url=str(url))


async def referrers_page(
    client: RegistryClient, repository: str, subject: Digest, max_bytes: int, after: Reply | None
) -> Reply:
    """See :meth:`RegistryClient.referrers`. The paging is the caller's: what a page says about the API is
    judged page by page (regprobe.referrers)."""
    url = client.base.join(f"/v2/{repository}/referrers/{subject}")
    if after is not None and after.next_link:
        try:
            url = httpx.URL(after.next_link)
        except (httpx.InvalidURL, ValueError):
            why = f"GET {after.url}: referrers Link is not a URL; not followed"
            raise PaginationError(why, url=after.url) from None
        base = client.base
        if (url.scheme, url.host, url.port) != (base.scheme, base.host, base.port):
            raise PaginationError(
                f"GET {after.url}: referrers Link points to another host ({url.host}); not followed", url=after.url
            )

    async def read(response: httpx.Response, reply: Reply) -> None:
        if reply.content_length is not None and reply.content_length > max_bytes:
            reply.over_limit = True
            return
        await read_into(response, reply, limit=max_bytes, keep=True, hash_=False)
        link = response.links.get("next", {}).get("url")
        try:
            reply.next_link = str(response.request.url.join(link)) if link else None
        except (httpx.InvalidURL, ValueError):
            reply.next_link = link  # refused when followed

    # Not require_api: an HTML page here (a catch-all route) is one more way of not serving the API.
    return await client.exchange("GET", url, {"Accept": mt.OCI_INDEX}, read)


async def _read_json_body(response: httpx.Response, reply: Reply) -> None:
    await read_into(response, reply, limit=_MAX_PAGE_BYTES, keep=True, hash_=False)
    reply.next_link = response.links.get("next", {}).get("url")


def _listing_error(url: httpx.URL, reply: Reply) -> RegistryError:
    message = f"{display_url(url)}: {reply.describe('GET')}"
    return RegistryError(message, url=str(url), status=reply.status, code=reply.code)


def _names(reply: Reply, key: str, url: httpx.URL) -> list[str]:
    if reply.over_limit:
        raise RegistryError(f"GET {display_url(url)}: listing page over 16 MiB", url=str(url))
    # The Content-Type is not consulted: ECR labels its JSON text/plain.
    try:
        doc = json.loads(reply.body)
    except (ValueError, RecursionError):
        raise RegistryError(f"GET {display_url(url)}: listing is not JSON", url=str(url)) from None
    if not isinstance(doc, dict):
        raise RegistryError(f"GET {display_url(url)}: listing is not a JSON object", url=str(url))
    names = doc.get(key)
    if names is None:  # distribution answers `"tags": null` for a repository without tags
        return []
    if not isinstance(names, list):
        raise RegistryError(f"GET {display_url(url)}: '{key}' is not a list of strings", url=str(url))
    if key == "tags":
        names = _usable_tags(names, url)
    if not all(isinstance(n, str) for n in names):
        raise RegistryError(f"GET {display_url(url)}: '{key}' is not a list of strings", url=str(url))
    return names


_DIGEST_SHAPED = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+")


def _usable_tags(entries: list[Any], url: httpx.URL) -> list[Any]:
    """Drop what a tag list holds that is no tag: ``null`` (Nexus 3.58) and digests (Artifactory lists
    ``sha256:...`` among the tags). Neither can be pulled by tag, so neither is judged; a warning
    says they were there."""
    kept = [e for e in entries if e is not None and not (isinstance(e, str) and _DIGEST_SHAPED.fullmatch(e))]
    if len(kept) != len(entries):
        nulls = sum(e is None for e in entries)
        log.warning(
            "GET %s: skipped %d null and %d digest-shaped entries in the tag list (not tags)",
            display_url(url),
            nulls,
            len(entries) - len(kept) - nulls,
        )
    return kept

"""Pull-through caches (distribution's ``proxy: {remoteurl: ...}``): what a check may ask of one, and how
it tells that the cache's upstream is down.

A cache serves what it holds from its own storage and answers everything else by asking its upstream,
then storing what it got. Read in distribution 2.8 and 3 (``registry/proxy``) and measured on both
(docs/registries.md, "Pull-through caches"):

- a manifest by digest that the cache does not hold - ``HEAD`` as well as ``GET`` - is fetched and stored;
- a blob it does not hold - ``HEAD`` as well as ``GET`` - is fetched whole and stored;
- a tag is resolved at upstream first (its link rewritten), then its manifest fetched as above;
- ``tags/list`` is upstream's list (the cache's own only while upstream is down);
- a held object the cache cannot read back (link without data, a manifest that does not parse) counts
  as not held: it goes upstream again;
- only ``/v2/_catalog`` is answered from the cache's storage alone.

So the API cannot say what a cache holds without making it fetch what it does not: a walk of a cache
spends the upstream's pull quota and fills the cache with every platform of every index. The storage
can: :class:`CacheStorage` reads it (read-only, with fsck's reader), and the walk asks the cache only for
what it holds in a state it serves from storage. An upstream outage never reaches such a walk, so
:func:`upstream_outage` looks for one on purpose, with one request for a blob no registry holds.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .client import RegistryClient
from .digest import Digest
from .errors import RegistryError
from .facts import Key, Reply
from .fsck.storage import V2, Storage
from .redact import redact

#: A digest no content is known to hash to: no upstream holds it, so asking a cache for it can only make
#: the cache ask its upstream - never fetch or store anything. (The empty blob's digest would not do:
#: upstreams hold that one, and the cache would store it.)
CANARY = Digest("sha256", "0" * 64)
#: Longest account of an upstream failure kept in a report.
_MAX_DETAIL = 300


@dataclass(frozen=True, slots=True)
class Holdings:
    """What one repository of the cache serves from its own storage, without asking upstream."""

    #: Tag -> manifest, for the tags whose manifest the cache holds.
    tags: Mapping[str, Digest]
    manifests: frozenset[Digest]
    blobs: frozenset[Digest]
    #: Tags whose link names a manifest the cache does not hold (expired, lost): a pull fetches it again.
    unheld_tags: tuple[str, ...] = ()
    #: Parts of the repository's storage that could not be read; what they hold counts as not held.
    errors: tuple[str, ...] = ()

    def serves(self, key: Key) -> bool:
        kind, digest = key
        return digest in (self.manifests if kind == "manifest" else self.blobs)


class CacheStorage:
    """A cache's storage root (its ``rootdirectory``), read-only: which objects it holds."""

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        self._storage = Storage(self.root)
        #: fsck's reader keeps a blob cache across repositories; repositories are read from threads.
        self._lock = threading.Lock()

    def check(self) -> None:
        """Raise unless the root is a registry's storage: an empty mount must not pass for an empty cache."""
        if not os.path.isdir(os.path.join(self.root, V2)):
            raise RegistryError(
                f"storage_root {self.root}: no {V2} under it (not the cache's rootdirectory, or not mounted)"
            )

    def holdings(self, repository: str) -> Holdings:
        """Read one repository's links, manifests and blob data. Blocking: call it from a thread."""
        rel = f"{V2}/repositories/{repository}"
        if not os.path.isdir(os.path.join(self.root, rel)):
            raise RegistryError(
                f"storage_root {self.root} holds no repository {repository}, which the cache lists:"
                " is it this cache's rootdirectory?"
            )
        with self._lock:
            before = self._storage.error_count
            facts = self._storage.collect(repository, rel)
            unreadable = self._storage.error_count - before
            errors = tuple(self._storage.errors[before : before + unreadable])
        if unreadable > len(errors):
            errors += (f"storage_root: {unreadable - len(errors)} more unreadable paths",)
        # A revision is served from storage only when its link is sound and its body parses (distribution
        # goes upstream for any manifest it cannot read back); a blob only when its data file is there.
        manifests = frozenset(
            digest
            for digest, link in facts.revisions.items()
            if link.target is not None and (body := facts.manifests.get(digest)) is not None and body.parsed is not None
        )
        blobs = frozenset(
            digest
            for digest, link in facts.layers.items()
            if link.target is not None and (data := facts.blobs.get(digest)) is not None and not data.missing
        )
        tags = {tag: link.target for tag, link in facts.tags.items() if link.target in manifests}
        unheld = tuple(sorted(tag for tag in facts.tags if tag not in tags))
        return Holdings(tags, manifests, blobs, unheld, errors)


async def upstream_outage(client: RegistryClient, repository: str) -> str | None:
    """Why the cache cannot reach its upstream right now, or None when the upstream answers.

    One ``GET`` of :data:`CANARY` in ``repository`` (one the cache lists): the cache holds no such blob,
    so it asks its upstream, which answers 404 - passed on as 404 - when it is up. Anything else is the
    upstream failing as the cache saw it: refused connections, 5xx, an upstream rate limit or refused
    credentials, passed on as 5xx (distribution 2.8) or as they came (3: 401, 429).
    """
    reply = await client.cache_upstream(repository, CANARY)
    if reply.status == 404:
        return None
    return _outage(reply)


def _outage(reply: Reply) -> str:
    detail = _detail(reply.error_body)
    # Distribution 3 passes the upstream's 401 and 429 on; 2.8 wraps them in a 500 whose detail has them.
    status, code = reply.status, None
    if isinstance(detail, dict):
        said = detail.get("StatusCode")
        status = said if isinstance(said, int) else status
        code = detail.get("code")
    if status == 429 or code == "TOOMANYREQUESTS":
        why = "it rate-limits the cache"
    elif status in (401, 403) or code in ("UNAUTHORIZED", "DENIED"):
        why = "it refuses the cache's credentials, proxy.username and proxy.password"
    else:
        why = "the cache gets no answer from it"
    heard = upstream_detail(reply.error_body)
    return (
        f"upstream of the pull-through cache unavailable ({why}): {reply.describe('GET')} for a blob the cache"
        f" does not hold{': ' + heard if heard else ''}; only what the cache holds can be pulled through it now"
    )


def upstream_detail(body: bytes) -> str | None:
    """The cache's account of its upstream's failure: the first error's ``detail``, which distribution 3
    sends as Go's error text and 2.8 as the error value in JSON (``{"Op": "Get", "URL": ..., "Err":
    {...}}`` for a failed connection, ``{"Status": "503 Service Unavailable"}``, the upstream's own error).
    An odd shape is no detail, never a failure; what is kept is bounded and has its URLs redacted."""
    detail = _detail(body)
    text = detail if isinstance(detail, str) else _go_error(detail, depth=0)
    if not text:
        return None
    text = redact(" ".join(text.split()))
    return text if len(text) <= _MAX_DETAIL else text[: _MAX_DETAIL - 1] + "…"


def _detail(body: bytes) -> Any:
    """The first error's ``detail`` in a registry error body; None for any other shape."""
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        return None
    errors = doc.get("errors") if isinstance(doc, dict) else None
    first = errors[0] if isinstance(errors, list) and errors else None
    return first.get("detail") if isinstance(first, dict) else None


def _go_error(value: Any, depth: int) -> str:
    """Go's error text for the error values 2.8 serialises, as far as their shape is known."""
    if depth > 4 or not isinstance(value, dict):
        return ""
    inner = _go_error(value.get("Err"), depth + 1)
    if isinstance(value.get("URL"), str):  # *url.Error
        return f"{value.get('Op', '')} {value['URL']}: {inner or 'failed'}".strip()
    if isinstance(value.get("Net"), str):  # *net.OpError
        addr = value.get("Addr")
        where = f" {addr.get('IP')}:{addr.get('Port')}" if isinstance(addr, dict) and "IP" in addr else ""
        return f"{value.get('Op', '')} {value['Net']}{where}: {inner or 'failed'}".strip()
    if isinstance(value.get("Syscall"), str) and isinstance(value.get("Err"), int):  # *os.SyscallError
        return f"{value['Syscall']}: {os.strerror(value['Err']).lower()}"
    if isinstance(value.get("Status"), str):
        return f"upstream answered {value['Status']}"
    if isinstance(value.get("StatusCode"), int):
        return f"upstream answered {value['StatusCode']}"
    if isinstance(value.get("code"), str):  # the upstream's own registry error
        return f"upstream answered {value['code']}: {value.get('message', '')}".rstrip(": ")
    return json.dumps(value, separators=(",", ":"))[:_MAX_DETAIL]

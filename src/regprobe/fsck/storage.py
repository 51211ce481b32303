"""Reading (and, for ``--repair``, editing) a registry:2 filesystem storage root.

The only part of fsck that touches the disk. It collects facts about one repository at a time - its
link files, its manifests' bodies, the blob data those point at - and never judges them;
:mod:`regprobe.fsck.check` does. Paths are built only from directory entries the walk found and from
validated :class:`~regprobe.digest.Digest` values, never from a link file's content as read.
"""

from __future__ import annotations

import logging
import os
import stat
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from .. import manifest as manifest_mod
from ..digest import Digest
from ..errors import ConfigError, DigestError, ManifestError
from ..model import Kind, Problem

log = logging.getLogger(__name__)

V2 = "docker/registry/v2"
#: Directories inside a repository that are not repositories themselves.
_REPOSITORY_PARTS = frozenset({"_manifests", "_layers", "_uploads"})
#: The same bound the HTTP walk puts on a manifest body (``WalkPolicy.max_manifest_bytes``).
MAX_MANIFEST_BYTES = 4 << 20
#: A link file holds ``algorithm:hex`` (at most 7 + 128 characters); anything longer is not a link.
_MAX_LINK_BYTES = 512
_CHUNK = 1 << 20
#: Unreadable paths kept for the report; a storage root that is unreadable throughout would otherwise
#: produce one message per file.
MAX_ERRORS = 100
#: Blob facts remembered across repositories (blobs are shared); bounded so memory does not grow with
#: the number of blobs in storage. ~100 bytes an entry.
_CACHE_ENTRIES = 1 << 16

_K = TypeVar("_K")
_V = TypeVar("_V")


class _Lru(Generic[_K, _V]):
    def __init__(self, capacity: int) -> None:
        self._data: OrderedDict[_K, _V] = OrderedDict()
        self._capacity = capacity

    def get(self, key: _K) -> _V | None:
        value = self._data.get(key)
        if value is not None:
            self._data.move_to_end(key)
        return value

    def put(self, key: _K, value: _V) -> None:
        self._data[key] = value
        self._data.move_to_end(key)
        if len(self._data) > self._capacity:
            self._data.popitem(last=False)


@dataclass(frozen=True, slots=True)
class Data:
    """What sits at a blob's ``data`` path."""

    size: int | None  # None: no data file
    #: What the content hashes to, when it was hashed (manifests always, blobs with --verify-digests).
    actual: Digest | None = None

    @property
    def missing(self) -> bool:
        return self.size is None


#: The digest of zero bytes, per algorithm: the one blob whose data may legitimately be empty.
_EMPTY = {algorithm: Digest.of(b"", algorithm) for algorithm in ("sha256", "sha512")}


def emptied(digest: Digest, data: Data) -> bool:
    """The data file is there but holds 0 bytes, and ``digest`` is not the digest of 0 bytes."""
    return data.size == 0 and digest != _EMPTY.get(digest.algorithm)


def content_lost(digest: Digest, data: Data) -> bool:
    """Whether a layer link to this data may be removed without losing anything: the data is gone or
    emptied. The rule ``--repair`` offers by, and checks again right before it removes."""
    return data.missing or emptied(digest, data)


@dataclass(frozen=True, slots=True)
class Link:
    """One link file (layer, revision, or a tag's ``current/link``)."""

    path: str  # relative to ROOT
    target: Digest | None
    #: Why ``target`` is None: garbage content (invalid) or no link file (missing, tags only).
    problem: Problem | None = None
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Junk:
    """A directory entry where the layout wants a digest and the name is not one."""

    kind: Kind
    path: str
    detail: str


@dataclass(frozen=True, slots=True)
class Body:
    """A revision's manifest as stored: its data facts and what parsing made of it."""

    data: Data
    parsed: manifest_mod.Manifest | None = None
    error: str | None = None  # over the size bound, or not a manifest we can parse


@dataclass(slots=True)
class RepositoryFacts:
    name: str
    path: str  # relative to ROOT
    layers: dict[Digest, Link] = field(default_factory=dict)  # keyed by the digest the link is filed under
    revisions: dict[Digest, Link] = field(default_factory=dict)
    tags: dict[str, Link] = field(default_factory=dict)
    junk: list[Junk] = field(default_factory=list)
    #: Bodies of revisions whose link names a digest; absent where the body could not be read at all.
    manifests: dict[Digest, Body] = field(default_factory=dict)
    #: Data facts for every blob a layer link or a manifest names; absent where unreadable.
    blobs: dict[Digest, Data] = field(default_factory=dict)

    def layer_link_path(self, digest: Digest) -> str:
        return f"{self.path}/_layers/{digest.algorithm}/{digest.encoded}/link"

    def revision_link_path(self, digest: Digest) -> str:
        return f"{self.path}/_manifests/revisions/{digest.algorithm}/{digest.encoded}/link"


class Storage:
    """A storage root. Unreadable parts are recorded in :attr:`errors` and skipped, never guessed at."""

    def __init__(self, root: str, *, verify_digests: bool = False) -> None:
        self.root = root
        self.v2 = os.path.join(root, V2)
        self.verify_digests = verify_digests
        #: The first :data:`MAX_ERRORS` messages; :attr:`error_count` counts them all.
        self.errors: list[str] = []
        self.error_count = 0
        self._data = _Lru[Digest, Data](_CACHE_ENTRIES)

    # -- the walk ---------------------------------------------------------------------------------

    def repositories(self) -> Iterator[tuple[str, str]]:
        """(name, path relative to ROOT) of every repository, depth first in name order.

        A repository is a directory holding ``_manifests`` or ``_layers``; names nest (``a/b`` and
        ``a/b/c`` can both be repositories), so the walk goes on below one. Only one directory's
        entries are held at a time per level.
        """
        base = f"{V2}/repositories"
        stack: list[str] = [""]
        while stack:
            name = stack.pop()
            rel = f"{base}/{name}" if name else base
            entries = self._listdir(rel, required=bool(name))
            if entries is None:
                continue
            # Symlinks are not followed here: one pointing at an ancestor would make the walk endless.
            dirs = sorted(e.name for e in entries if _is_dir(e, follow=False))
            if name and ("_manifests" in dirs or "_layers" in dirs):
                yield name, rel
            children = [f"{name}/{d}" if name else d for d in dirs if d not in _REPOSITORY_PARTS]
            stack.extend(reversed(children))

    def collect(self, name: str, rel: str) -> RepositoryFacts:
        """Everything fsck needs to know about one repository, read from disk."""
        facts = RepositoryFacts(name, rel)
        self._links(facts, f"{rel}/_layers", Kind.LAYER, facts.layers)
        self._links(facts, f"{rel}/_manifests/revisions", Kind.MANIFEST, facts.revisions)
        self._tags(facts, f"{rel}/_manifests/tags")
        for digest, revision in sorted(facts.revisions.items()):
            if revision.target is not None:
                body = self._manifest(digest)
                if body is not None:
                    facts.manifests[digest] = body
        wanted: set[Digest] = {d for d, link in facts.layers.items() if link.target is not None}
        for body in facts.manifests.values():
            if isinstance(body.parsed, manifest_mod.Image):
                wanted.add(body.parsed.config.digest)
                wanted.update(layer.digest for layer in body.parsed.layers if not layer.foreign)
        for digest in sorted(wanted):
            # Only blobs this repository links are hashed: without a link the registry serves nothing,
            # and the finding is the missing link whatever the data holds.
            layer = facts.layers.get(digest)
            data = self.data(digest, verify=self.verify_digests and layer is not None and layer.target is not None)
            if data is not None:
                facts.blobs[digest] = data
        return facts

    # -- link files -------------------------------------------------------------------------------

    def _links(self, facts: RepositoryFacts, rel: str, kind: Kind, into: dict[Digest, Link]) -> None:
        """``<rel>/<algorithm>/<encoded>/link`` for every digest directory under ``rel``."""
        algorithms = self._listdir(rel, required=False)
        for algorithm in sorted(algorithms or (), key=lambda e: e.name):
            if not _is_dir(algorithm):
                continue
            entries = self._listdir(f"{rel}/{algorithm.name}", required=True)
            for entry in sorted(entries or (), key=lambda e: e.name):
                path = f"{rel}/{algorithm.name}/{entry.name}"
                if not _is_dir(entry):
                    facts.junk.append(Junk(kind, path, f"{entry.name[:80]!r} is not a digest directory"))
                    continue
                try:
                    digest = Digest.parse(f"{algorithm.name}:{entry.name}")
                except DigestError:
                    facts.junk.append(
                        Junk(kind, path, f"{entry.name[:80]!r} under {algorithm.name[:20]!r} is not a digest")
                    )
                    continue
                link = self._read_link(f"{path}/link", expected=digest)
                # A digest directory without its link file is what the registry treats as no link at all.
                if link is not None:
                    into[digest] = link

    def _tags(self, facts: RepositoryFacts, rel: str) -> None:
        for entry in sorted(self._listdir(rel, required=False) or (), key=lambda e: e.name):
            if not _is_dir(entry):
                continue
            path = f"{rel}/{entry.name}/current/link"
            link = self._read_link(path, expected=None)
            if link is None and self._exists(path) is False:
                # tags/list still lists the tag; a GET by tag answers 404 MANIFEST_UNKNOWN.
                link = Link(path, None, Problem.MISSING, f"tag {entry.name}: no current/link")
            if link is not None:
                facts.tags[entry.name] = link

    def _read_link(self, rel: str, expected: Digest | None) -> Link | None:
        """The link at ``rel``; None when there is no file there (or it is unreadable: recorded)."""
        try:
            with open(os.path.join(self.root, rel), "rb") as f:
                raw = f.read(_MAX_LINK_BYTES + 1)
        except FileNotFoundError:
            return None
        except OSError as exc:
            self._error(rel, exc)
            return None
        # distribution parses the content as it is (no trimming): a stray newline breaks it too.
        try:
            target = Digest.parse(raw.decode("utf-8")) if len(raw) <= _MAX_LINK_BYTES else None
        except (UnicodeDecodeError, DigestError):
            target = None
        if target is None:
            return Link(rel, None, Problem.INVALID, f"link holds {raw[:80]!r}, not a digest")
        if expected is not None and target != expected:
            # The registry follows the content, so it would serve another object under this digest.
            return Link(rel, None, Problem.INVALID, f"link names {target}, not the digest it is filed under")
        return Link(rel, target)

    # -- blob data --------------------------------------------------------------------------------

    def data(self, digest: Digest, *, verify: bool = False, fresh: bool = False) -> Data | None:
        """Stat (and with ``verify`` hash) a blob's data; None when that could not be done (recorded)."""
        cached = None if fresh else self._data.get(digest)
        if cached is not None and (cached.actual is not None or not verify or cached.size is None):
            return cached
        rel = data_path(digest)
        try:
            st = os.stat(os.path.join(self.root, rel))
        except FileNotFoundError:
            result = Data(None)
        except OSError as exc:
            self._error(rel, exc)
            return None
        else:
            if not stat.S_ISREG(st.st_mode):
                result = Data(None)
            elif verify:
                actual = self._hash(rel, digest)
                if actual is None:
                    return None
                result = Data(st.st_size, actual)
            else:
                result = Data(st.st_size)
        self._data.put(digest, result)
        return result

    def _hash(self, rel: str, digest: Digest) -> Digest | None:
        hasher = digest.hasher()
        try:
            with open(os.path.join(self.root, rel), "rb") as f:
                while chunk := f.read(_CHUNK):
                    hasher.update(chunk)
        except OSError as exc:
            self._error(rel, exc)
            return None
        return Digest(digest.algorithm, hasher.hexdigest())

    def _manifest(self, digest: Digest) -> Body | None:
        rel = data_path(digest)
        try:
            with open(os.path.join(self.root, rel), "rb") as f:
                body = f.read(MAX_MANIFEST_BYTES + 1)
                size = os.fstat(f.fileno()).st_size
        except (FileNotFoundError, IsADirectoryError):
            return Body(Data(None))
        except OSError as exc:
            self._error(rel, exc)
            return None
        if len(body) > MAX_MANIFEST_BYTES:
            return Body(Data(size), error=f"manifest data over the size bound ({size} bytes)")
        # Manifests are read whole anyway, so hashing them costs nothing: always verified.
        data = Data(size, Digest.of(body, digest.algorithm))
        try:
            parsed = manifest_mod.parse(body, None)
        except ManifestError as exc:
            return Body(data, error=f"manifest {exc}")
        # Other bytes than the digest names are never used; that they do not even parse is told above
        # (distribution answers such a manifest with 500 on every pull: the HTTP walk's server_error).
        return Body(data, parsed if data.actual == digest else None)

    # -- repair -----------------------------------------------------------------------------------

    def remove_layer_link(self, rel: str, digest: Digest) -> bool:
        """Remove the layer link ``rel`` (and its digest directory) if its data is still missing or empty.

        Checked again right before removing: on a live pull-through cache the registry may have
        fetched the blob again since the scan, and then the link is good.
        """
        link = self._read_link(rel, expected=digest)
        data = self.data(digest, fresh=True)
        if link is None or link.target != digest or data is None:
            return False
        if not content_lost(digest, data):
            return False
        try:
            os.unlink(os.path.join(self.root, rel))
        except FileNotFoundError:
            return False  # the registry or another fsck got there first
        except OSError as exc:
            self._error(rel, exc, "cannot remove")
            return False
        try:
            os.rmdir(os.path.dirname(os.path.join(self.root, rel)))
        except OSError as exc:
            log.warning("removed %s but kept its directory: %s", rel, exc.strerror)
        return True

    # -- helpers ----------------------------------------------------------------------------------

    def _listdir(self, rel: str, *, required: bool) -> list[os.DirEntry[str]] | None:
        try:
            with os.scandir(os.path.join(self.root, rel)) as it:
                return list(it)
        except FileNotFoundError:
            if required:
                self._error(rel, FileNotFoundError("vanished during the scan"))
            return None
        except NotADirectoryError:
            return None
        except OSError as exc:
            self._error(rel, exc)
            return None

    def _exists(self, rel: str) -> bool | None:
        try:
            os.stat(os.path.join(self.root, rel))
        except FileNotFoundError:
            return False
        except OSError:
            return None
        return True

    def _error(self, rel: str, exc: BaseException, what: str = "cannot read") -> None:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        message = f"{what} {rel}: {why}"
        log.warning("%s", message)
        self.error_count += 1
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(message)


def check_root(given: str, absolute: str) -> None:
    """:class:`ConfigError` (exit 2) unless ``absolute`` (``given`` by the user) is a storage root."""
    if not os.path.isdir(absolute):
        why = "not a directory" if os.path.exists(absolute) else "no such directory"
        raise ConfigError(f"ROOT {given}: {why}")
    if os.path.isdir(os.path.join(absolute, V2)):
        return
    message = f"ROOT {given}: no {V2} under it"
    # The usual mistake: pointing at docker/registry/v2 itself rather than the rootdirectory.
    parts = absolute.rstrip("/").split("/")
    if parts[-3:] == V2.split("/") and os.path.isdir(os.path.join(absolute, "repositories")):
        message += f" (it looks like {V2} itself; the rootdirectory is {'/'.join(parts[:-3]) or '/'})"
    raise ConfigError(message)


def data_path(digest: Digest) -> str:
    """Where a blob's content lives, relative to ROOT (shared by every repository)."""
    return f"{V2}/blobs/{digest.algorithm}/{digest.encoded[:2]}/{digest.encoded}/data"


def _is_dir(entry: os.DirEntry[str], follow: bool = True) -> bool:
    try:
        return entry.is_dir(follow_symlinks=follow)
    except OSError:
        return False

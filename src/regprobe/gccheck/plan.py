"""Reads the output of ``registry garbage-collect --dry-run [--delete-untagged] CONFIG``, distribution
2.8's or 3's (``registry/storage/garbagecollect.go``); which one is told from the lines that differ.

The grammar, on stdout::

    <repository>                                         once per repository with _manifests
    <repository>: marking manifest <digest>␠             a manifest it keeps (trailing space)
    <repository>: marking blob <digest>                  what that manifest references (3: all the way down)
    manifest eligible for deletion: <digest>             2.8: in the block of its repository
    manifest tags path of repository <repository> does not exist
                                                         3: in that block; its untagged manifests stay
    manifest eligible for deletion: {<repository> <digest> [<tag> ...]}
                                                         3: after every block (the tags are all the
                                                         repository's: their history entries go too)
                                                         (one empty line)
    N blobs marked, M blobs and K manifests eligible for deletion
    blob eligible for deletion: <digest>                 M of these
    <repository>: layer link eligible for deletion: <digest>
                                                         3: links to blobs nothing marked when that
                                                         repository was enumerated

Anything else is refused: a plan is trusted to say what will be deleted, so a line we do not
understand could hide a deletion. The summary line is required and its counts must match the lines,
which catches empty input, a failed dry run (its error goes to stderr; stdout stops before the summary)
and a plan cut short before its layer links (3 prints no count of those). A real collection prints the
same stdout as a dry run; that case is caught against storage, where what it names is already gone
(:mod:`.reconcile`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import BinaryIO, Final

from ..digest import Digest
from ..errors import ConfigError, DigestError
from ..reference import REPOSITORY

_MARKING: Final = re.compile(r"(?P<repo>\S+): marking (?P<what>manifest|blob) (?P<digest>\S+)")
_NO_TAGS: Final = re.compile(r"manifest tags path of repository (?P<repo>\S+) does not exist")
_MANIFEST: Final = re.compile(r"manifest eligible for deletion: (?P<digest>[^\s{]\S*)")
_V3_MANIFEST_START: Final = "manifest eligible for deletion: {"
# Go's %s of struct ManifestDel{Name, Digest, Tags}.
_V3_MANIFEST: Final = re.compile(
    r"manifest eligible for deletion: \{(?P<repo>\S+) (?P<digest>\S+) \[(?:[^\s\]]+(?: [^\s\]]+)*)?\]\}"
)
_SUMMARY: Final = re.compile(
    r"(?P<marked>\d+) blobs marked, (?P<blobs>\d+) blobs and (?P<manifests>\d+) manifests eligible for deletion"
)
_BLOB: Final = re.compile(r"blob eligible for deletion: (?P<digest>\S+)")
_LAYER_LINK: Final = re.compile(r"(?P<repo>\S+): layer link eligible for deletion: (?P<digest>\S+)")
#: Longest line the grammar produces is a repository name (at most 255 characters in distribution)
#: or a sha512 digest line; anything much longer is not a plan...
MAX_LINE: Final = 1024
#: ... except distribution 3's manifest lines, which list every tag of the repository: 8 MiB holds
#: 60,000 tags of the longest kind (128 characters), and bounds what one line costs to read.
MAX_MANIFEST_LINE: Final = 8 << 20


class PlanError(ConfigError):
    """The plan is not the output of a garbage-collect dry run (exit 2)."""


@dataclass(frozen=True, slots=True)
class Plan:
    #: Per repository, the manifests whose revision links the collection removes.
    manifests: Mapping[str, frozenset[Digest]]
    #: Blob data the collection removes, shared by every repository (manifests' own data included).
    blobs: frozenset[Digest]
    #: Every repository the collection enumerated.
    repositories: frozenset[str]
    #: Per repository, the layer links the collection removes (distribution 3 only), data kept or not.
    layer_links: Mapping[str, frozenset[Digest]] = field(default_factory=dict)
    #: Per repository, the manifests it keeps ("marking manifest"): a plan that deletes nothing still
    #: names these, so a plan of other storage is told apart by them too.
    kept: Mapping[str, frozenset[Digest]] = field(default_factory=dict)

    @property
    def manifest_count(self) -> int:
        return sum(len(digests) for digests in self.manifests.values())

    @property
    def layer_link_count(self) -> int:
        return sum(len(digests) for digests in self.layer_links.values())


def read_plan(source: str, stdin: BinaryIO) -> Plan:
    """The plan in file ``source``, or in ``stdin`` for ``-``; :class:`PlanError` naming it."""
    if source == "-":
        return parse(physical_lines(stdin), "(stdin)")
    try:
        with open(source, "rb") as f:
            return parse(physical_lines(f), source)
    except OSError as exc:
        raise PlanError(f"plan {source}: cannot read: {exc.strerror or exc}") from None


def physical_lines(stream: BinaryIO) -> Iterator[bytes]:
    """Each line as read, newline kept; a line past the bound is cut there and ends the reading, so a
    binary file without newlines is never read whole, and a long line is never taken for two."""
    while line := stream.readline(MAX_MANIFEST_LINE + 2):  # room for "\r\n"
        yield line
        if not line.endswith(b"\n"):
            return


class _Section(IntEnum):
    """Where in the output a line is; the output only moves forward."""

    BLOCKS = 0  # a repository line, then what is marked in it
    MANIFESTS = 1  # 3: the manifests it deletes
    BLOBS = 2  # after the summary: the blobs it deletes
    LAYER_LINKS = 3  # 3: the layer links it deletes


_AFTER: Final = {
    _Section.MANIFESTS: "after the manifests eligible for deletion",
    _Section.BLOBS: "after the summary line",
    _Section.LAYER_LINKS: "after the layer link lines",
}


def parse(lines: Iterable[bytes], source: str) -> Plan:
    """The plan in ``lines`` (one physical line each, newline kept or not); :class:`PlanError` naming
    ``source``."""
    return _Parser(source).parse(lines)


class _Parser:
    def __init__(self, source: str) -> None:
        self.source = source
        self.number = 0
        self.section = _Section.BLOCKS
        self.repository: str | None = None
        self.repositories: set[str] = set()
        self.manifests: dict[str, set[Digest]] = {}
        self.blobs: set[Digest] = set()
        self.layer_links: dict[str, set[Digest]] = {}
        self.kept: dict[str, set[Digest]] = {}
        self.summary: re.Match[str] | None = None
        #: "2" or "3" once a line only that version prints was read; the two never mix.
        self.version: str | None = None

    def fail(self, why: str) -> PlanError:
        at = f": line {self.number}" if self.number else ""
        return PlanError(f"plan {self.source}{at}: {why}; expected the output of `registry garbage-collect --dry-run`")

    def parse(self, lines: Iterable[bytes]) -> Plan:
        for self.number, raw in enumerate(lines, 1):
            self.line(raw)
        self.number = 0
        if self.summary is None:
            if not self.repositories:
                raise self.fail("empty, or no line of it is garbage-collect output (3's --quiet prints nothing)")
            raise self.fail(
                "no summary line ('N blobs marked, M blobs and K manifests eligible for deletion'): cut short, "
                "or the dry run failed (its error is on its stderr)"
            )
        plan = Plan(
            {r: frozenset(d) for r, d in self.manifests.items()},
            frozenset(self.blobs),
            frozenset(self.repositories),
            {r: frozenset(d) for r, d in self.layer_links.items()},
            {r: frozenset(d) for r, d in self.kept.items()},
        )
        manifests, blobs = int(self.summary["manifests"]), int(self.summary["blobs"])
        if blobs != len(plan.blobs) or manifests != plan.manifest_count:
            raise self.fail(
                f"the summary announces {blobs} blobs and {manifests} manifests, "
                f"the plan lists {len(plan.blobs)} and {plan.manifest_count}: cut short or edited"
            )
        return plan

    def line(self, raw: bytes) -> None:
        body = raw.removesuffix(b"\n").removesuffix(b"\r")
        # Measured before the trailing space (the "marking manifest" lines end with one) is dropped: a
        # line padded past the bound is not a line distribution printed.
        bound = MAX_MANIFEST_LINE if body.startswith(_V3_MANIFEST_START.encode()) else MAX_LINE
        if len(body) > bound:
            raise self.fail(f"longer than {bound} bytes")
        try:
            line = body.decode("utf-8").rstrip(" ")
        except UnicodeDecodeError:
            raise self.fail("not UTF-8 text") from None
        if not line:
            return
        if REPOSITORY.fullmatch(line):
            self.place(line, _Section.BLOCKS)
            self.repository = line
            self.repositories.add(line)
        elif m := _MARKING.fullmatch(line):
            self.place(line, _Section.BLOCKS)
            self.in_block(line, m["repo"])
            digest = _digest(m["digest"], self.fail)
            if m["what"] == "manifest":
                self.kept.setdefault(m["repo"], set()).add(digest)
        elif m := _NO_TAGS.fullmatch(line):
            self.place(line, _Section.BLOCKS)
            self.in_block(line, m["repo"])
            self.of_version("3", line)
        elif m := _MANIFEST.fullmatch(line):
            self.place(line, _Section.BLOCKS)
            self.of_version("2", line)
            if self.repository is None:
                raise self.fail(f"{_quote(line)} comes before any repository")
            self.doomed(self.repository, m["digest"])
        elif m := _V3_MANIFEST.fullmatch(line):
            self.place(line, _Section.BLOCKS, _Section.MANIFESTS)
            self.of_version("3", line)
            self.doomed(self.enumerated(line, m["repo"]), m["digest"])
        elif m := _SUMMARY.fullmatch(line):
            self.place(line, _Section.BLOCKS, _Section.MANIFESTS)
            self.section = _Section.BLOBS
            self.summary = m
        elif m := _BLOB.fullmatch(line):
            self.place(line, _Section.BLOBS)
            self.blobs.add(_digest(m["digest"], self.fail))
        elif m := _LAYER_LINK.fullmatch(line):
            self.place(line, _Section.BLOBS, _Section.LAYER_LINKS)
            self.of_version("3", line)
            self.layer_links.setdefault(self.enumerated(line, m["repo"]), set()).add(_digest(m["digest"], self.fail))
        elif "level=" in line and "deleting" in line.lower():
            raise self.fail(f"{_quote(line)} is the log of a real collection, which has already deleted")
        else:
            raise self.fail(f"{_quote(line)} is not a garbage-collect line")

    def place(self, line: str, first: _Section, last: _Section | None = None) -> None:
        """Refuse ``line`` outside the sections ``first`` to ``last`` (or just ``first``); enter ``last``."""
        last = last or first
        if self.section > last:
            raise self.fail(f"{_quote(line)} comes {_AFTER[self.section]}")
        if self.section < first:
            raise self.fail(f"{_quote(line)} comes before the summary line")
        self.section = last

    def in_block(self, line: str, repository: str) -> None:
        if repository != self.repository:
            raise self.fail(f"{_quote(line)} is outside the block of repository {repository[:100]!r}")

    def enumerated(self, line: str, repository: str) -> str:
        if repository not in self.repositories:
            raise self.fail(f"{_quote(line)} names a repository the collection did not enumerate")
        return repository

    def of_version(self, version: str, line: str) -> None:
        if self.version is not None and self.version != version:
            raise self.fail(f"{_quote(line)} is distribution {version}'s output, the lines before are {self.version}'s")
        self.version = version

    def doomed(self, repository: str, digest: str) -> None:
        self.manifests.setdefault(repository, set()).add(_digest(digest, self.fail))


def _digest(text: str, fail: Callable[[str], PlanError]) -> Digest:
    try:
        return Digest.parse(text)
    except DigestError as exc:
        raise fail(str(exc)) from None


def _quote(line: str) -> str:
    return repr(line[:100] + ("..." if len(line) > 100 else ""))

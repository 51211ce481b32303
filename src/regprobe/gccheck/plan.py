"""Reads the output of ``registry garbage-collect --dry-run [--delete-untagged] CONFIG``.

The grammar, as distribution 2.8 prints it on stdout (``registry/storage/garbagecollect.go``)::

    <repository>                                           once per repository with _manifests
    <repository>: marking manifest <digest>␠               a manifest it keeps (trailing space)
    <repository>: marking blob <digest>                    a blob that manifest keeps
    manifest eligible for deletion: <digest>               in the block of its repository
                                                           (one empty line)
    N blobs marked, M blobs and K manifests eligible for deletion
    blob eligible for deletion: <digest>                   M of these, after the summary

Anything else is refused: a plan is trusted to say what will be deleted, so a line we do not
understand could hide a deletion. The summary line is required and its counts must match the lines,
which catches empty input, a failed dry run (its error goes to stderr; stdout stops before the summary)
and a plan cut short. A real collection prints the same stdout as a dry run; that case is caught
against storage, where what it names is already gone (:mod:`regprobe.gccheck`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import BinaryIO, Final

from ..digest import Digest
from ..errors import ConfigError, DigestError
from ..reference import REPOSITORY

_MARKING: Final = re.compile(r"(?P<repo>\S+): marking (?:manifest|blob) (?P<digest>\S+)")
_MANIFEST: Final = re.compile(r"manifest eligible for deletion: (?P<digest>\S+)")
_BLOB: Final = re.compile(r"blob eligible for deletion: (?P<digest>\S+)")
_SUMMARY: Final = re.compile(
    r"(?P<marked>\d+) blobs marked, (?P<blobs>\d+) blobs and (?P<manifests>\d+) manifests eligible for deletion"
)
#: Longest line the grammar produces is a repository name (at most 255 characters in distribution)
#: or a sha512 digest line; anything much longer is not a plan.
MAX_LINE: Final = 1024


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

    @property
    def manifest_count(self) -> int:
        return sum(len(digests) for digests in self.manifests.values())


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
    while line := stream.readline(MAX_LINE + 2):  # room for "\r\n"
        yield line
        if not line.endswith(b"\n"):
            return


def parse(lines: Iterable[bytes], source: str) -> Plan:
    """The plan in ``lines`` (one physical line each, newline kept or not); :class:`PlanError` naming
    ``source``."""
    repository: str | None = None
    repositories: set[str] = set()
    manifests: dict[str, set[Digest]] = {}
    blobs: set[Digest] = set()
    summary: re.Match[str] | None = None
    number = 0

    def fail(why: str) -> PlanError:
        at = f": line {number}" if number else ""
        return PlanError(f"plan {source}{at}: {why}; expected the output of `registry garbage-collect --dry-run`")

    for number, raw in enumerate(lines, 1):  # noqa: B007 - ``fail`` reads the line number
        body = raw.removesuffix(b"\n").removesuffix(b"\r")
        # Measured before the trailing space (2.8's "marking manifest" lines end with one) is dropped:
        # a line padded past the bound is not a line distribution printed.
        if len(body) > MAX_LINE:
            raise fail(f"longer than {MAX_LINE} bytes")
        try:
            line = body.decode("utf-8").rstrip(" ")
        except UnicodeDecodeError:
            raise fail("not UTF-8 text") from None
        if not line:
            continue
        if summary is None and REPOSITORY.fullmatch(line):
            repository = line
            repositories.add(line)
            continue
        if summary is None and (m := _MARKING.fullmatch(line)):
            if m["repo"] != repository:
                raise fail(f"{_quote(line)} is outside the block of repository {m['repo'][:100]!r}")
            _digest(m["digest"], fail)
            continue
        if summary is None and (m := _MANIFEST.fullmatch(line)):
            if repository is None:
                raise fail(f"{_quote(line)} comes before any repository")
            manifests.setdefault(repository, set()).add(_digest(m["digest"], fail))
            continue
        if summary is None and (m := _SUMMARY.fullmatch(line)):
            summary = m
            continue
        if summary is not None and (m := _BLOB.fullmatch(line)):
            blobs.add(_digest(m["digest"], fail))
            continue
        if "level=" in line and "deleting" in line:
            raise fail(f"{_quote(line)} is the log of a real collection, which has already deleted")
        raise fail(f"{_quote(line)} is not a garbage-collect line")

    number = 0
    if summary is None:
        if not repositories:
            raise fail("empty, or no line of it is garbage-collect output")
        raise fail(
            "no summary line ('N blobs marked, M blobs and K manifests eligible for deletion'): cut short, "
            "or the dry run failed (its error is on its stderr)"
        )
    plan = Plan({r: frozenset(d) for r, d in manifests.items()}, frozenset(blobs), frozenset(repositories))
    if int(summary["blobs"]) != len(blobs) or int(summary["manifests"]) != plan.manifest_count:
        raise fail(
            f"the summary announces {summary['blobs']} blobs and {summary['manifests']} manifests, "
            f"the plan lists {len(blobs)} and {plan.manifest_count}: cut short or edited"
        )
    return plan


def _digest(text: str, fail: Callable[[str], PlanError]) -> Digest:
    try:
        return Digest.parse(text)
    except DigestError as exc:
        raise fail(str(exc)) from None


def _quote(line: str) -> str:
    return repr(line[:100] + ("..." if len(line) > 100 else ""))

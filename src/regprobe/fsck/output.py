"""fsck's report: the summary first, as ``run`` prints it, then every finding. Findings are known before
the summary, so each repository's are spooled as it is judged - in memory up to :data:`SPOOL_BYTES`,
then in a temporary file - and memory does not grow with the number of findings. Text for people, one
JSON document for machines."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol, TextIO

from ..render import BOLD, DIM, RED, YELLOW, painter, state
from ..tagorder import sorted_tags
from .check import FsckFinding


class Repair(StrEnum):
    OFF = "off"  # read-only: findings --repair would fix are marked repairable
    DRY_RUN = "dry-run"  # --repair --dry-run: say what would be removed, remove nothing
    ON = "on"


@dataclass(slots=True)
class Summary:
    repositories: int = 0
    manifests: int = 0  # revision links
    layer_links: int = 0
    #: Layer links no manifest uses whose data is gone: garbage-collection leftovers, not findings.
    orphaned_links: int = 0
    findings: int = 0
    repairable: int = 0
    repaired: int = 0
    errors: list[str] = field(default_factory=list)
    error_count: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def complete(self) -> bool:
        return self.error_count == 0


#: Findings text held in memory before the spool moves to a temporary file.
SPOOL_BYTES = 1 << 20


class Output(Protocol):
    out: TextIO

    def repository(self, name: str, findings: Sequence[FsckFinding]) -> None:
        """Spool a repository's findings (nothing is written to ``out`` before :meth:`finish`)."""

    def finish(self, summary: Summary) -> None:
        """Write the report: the summary, then the spooled findings."""


class _Spool:
    def __init__(self) -> None:
        self._spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES, mode="w+", encoding="utf-8")  # noqa: SIM115 - closed by drain

    def write(self, text: str) -> None:
        self._spool.write(text)

    def drain(self, out: TextIO) -> None:
        with self._spool:
            self._spool.seek(0)
            shutil.copyfileobj(self._spool, out)


class TextOutput:
    def __init__(self, root: str, out: TextIO, colour: bool, repair: Repair = Repair.OFF) -> None:
        self.root, self.out, self.mode = root, out, repair
        self._paint = painter(colour)
        self._findings = _Spool()
        self._any = False

    def repository(self, name: str, findings: Sequence[FsckFinding]) -> None:
        if not findings:
            return
        tags = sorted_tags({t for f in findings for t in f.tags})
        lines = [f"  {self._paint(name, BOLD)}  " + (f"tags: {', '.join(tags)}" if tags else "(no tags affected)")]
        for f in findings:
            digest = f.digest.short if f.digest else "(no digest)"
            head = f"    {f.kind.value:<8} {digest:<19} {self._paint(f.problem.value, RED)}"
            if f.parent:
                head += f"  under {f.parent.short}"
            lines.append(head)
            lines.append(self._paint(f"      {f.detail}", DIM))
            lines.append(self._paint(f"      {f.path}", DIM))
            if f.repair is not None:
                lines.extend(self._repair_line(f, f.repair))
        self._findings.write("\n".join(lines) + "\n")

    def _repair_line(self, f: FsckFinding, link: str) -> list[str]:
        directory = os.path.dirname(link)
        if f.repaired:
            return [f"      {self._paint('removed', YELLOW)} {directory}"]
        if self.mode is Repair.DRY_RUN:
            return [f"      {self._paint('would remove', YELLOW)} {directory}"]
        if self.mode is Repair.OFF:
            return [f"      {self._paint('repairable', YELLOW)}: --repair removes {directory}"]
        return []  # data back since the scan, or not removable (then an error says why)

    def finish(self, s: Summary) -> None:
        """As ``run`` reports a registry: state, counts, the findings, then what could not be read."""
        repair = {
            Repair.OFF: f"{s.repairable} repairable with --repair",
            Repair.DRY_RUN: f"{s.repairable} would be repaired (dry run: nothing changed)",
            Repair.ON: f"{s.repaired} repaired",
        }[self.mode]
        lines = [
            f"{self._paint(self.root, BOLD)}  {state(bool(s.findings), s.complete, self._paint)}",
            f"  {s.repositories} repositories, {s.manifests} manifests, {s.layer_links} layer links; "
            f"{s.findings} broken objects, {repair}; {time.monotonic() - s.started:.1f}s",
        ]
        if s.orphaned_links:
            lines.append(
                f"  {s.orphaned_links} unused layer links to deleted data (left by garbage collection; harmless)"
            )
        self.out.write("\n".join(lines) + "\n")
        self._findings.drain(self.out)
        lines = ["  " + self._paint("! " + e, YELLOW) for e in s.errors]
        if s.error_count > len(s.errors):
            lines.append("  " + self._paint(f"! ... and {s.error_count - len(s.errors)} more", YELLOW))
        self.out.write("".join(line + "\n" for line in lines))


class JsonOutput:
    """``{"root": ..., <summary>, "findings": [...]}``, written by :meth:`finish`."""

    def __init__(self, root: str, out: TextIO, repair: Repair = Repair.OFF) -> None:
        self.root, self.out, self.mode = root, out, repair
        self._findings = _Spool()
        self._first = True

    def repository(self, name: str, findings: Sequence[FsckFinding]) -> None:
        for f in findings:
            self._findings.write(("\n" if self._first else ",\n") + "    " + json.dumps(f.to_json()))
            self._first = False

    def finish(self, s: Summary) -> None:
        head = {
            "root": self.root,
            "complete": s.complete,
            "repositories": s.repositories,
            "manifests": s.manifests,
            "layer_links": s.layer_links,
            "orphaned_layer_links": s.orphaned_links,
            "repairable": s.repairable,
            "repaired": s.repaired,
            "dry_run": self.mode is Repair.DRY_RUN,
            "errors": s.errors,
            "error_count": s.error_count,
            "duration_seconds": round(time.monotonic() - s.started, 3),
        }
        self.out.write("{\n" + "".join(f"  {json.dumps(k)}: {json.dumps(v)},\n" for k, v in head.items()))
        self.out.write('  "findings": [')
        self._findings.drain(self.out)
        self.out.write(("]" if self._first else "\n  ]") + "\n}\n")

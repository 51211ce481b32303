"""``regprobe fsck ROOT``: an offline scan of a registry:2 filesystem storage root.

Where the HTTP walk answers "can a client pull it", fsck answers "what is broken on disk", in the same
vocabulary (kind, problem) so the two reports can be compared. It reads one repository at a time and
keeps only that repository's links and manifests in memory; blob facts are cached in a bounded LRU.
Nothing on disk changes unless ``repair`` is set (and ``dry_run`` is not), and then only layer links
whose blob data is missing or empty are removed. See docs/fsck.md.

Exit codes: 0 clean; 1 findings (also when every one was repaired: the images that needed those blobs
are still broken until the content is re-supplied); 2 ROOT missing or not a storage root; 3 parts of
the tree could not be read and nothing was found in the rest.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from typing import TextIO

from .. import exitcodes, progress
from ..counters import Counters
from ..errors import ConfigError
from . import check
from .check import FsckFinding
from .output import JsonOutput, Output, Repair, Summary, TextOutput
from .storage import Storage, check_root

__all__ = ["FsckFinding", "Repair", "Storage", "run_fsck", "scan"]

log = logging.getLogger(__name__)


def run_fsck(
    root: str,
    *,
    index_children: bool = True,
    repair: bool = False,
    dry_run: bool = False,
    verify_digests: bool = False,
    fmt: str = "text",
    out: TextIO | None = None,
    quiet: bool = False,
) -> int:
    """Scan ``root``, write the report (``fmt`` "text" or "json") to ``out`` (stdout), return the exit code.

    Raises :class:`~regprobe.errors.ConfigError` (exit 2) when ``root`` is not a storage root, or for
    ``dry_run`` without ``repair``.
    """
    if dry_run and not repair:
        raise ConfigError("--dry-run goes with --repair: plain fsck changes nothing already")
    mode = Repair.DRY_RUN if dry_run else Repair.ON if repair else Repair.OFF
    absolute = os.path.abspath(root)
    check_root(root, absolute)
    stream = out if out is not None else sys.stdout
    output: Output
    if fmt == "json":
        output = JsonOutput(absolute, stream, mode)
    else:
        colour = stream.isatty() and "NO_COLOR" not in os.environ
        output = TextOutput(absolute, stream, colour, mode)
    counters = Counters(absolute)
    with progress.Display([counters], progress.mode_for(quiet)) as display:
        summary = scan(
            Storage(absolute, verify_digests=verify_digests), output, index_children, mode, counters, display
        )
    return exitcodes.verdict(bool(summary.findings), summary.complete)


def scan(
    storage: Storage,
    output: Output,
    index_children: bool = True,
    repair: Repair = Repair.OFF,
    counters: Counters | None = None,
    display: progress.Display | None = None,
) -> Summary:
    """``counters`` follow the scan; ``display`` (showing them) is told when findings are written."""
    summary = Summary()
    counters = counters or Counters(storage.root)
    shown = display or progress.Display([counters], progress.Mode.OFF)
    for name, rel in storage.repositories():
        facts = storage.collect(name, rel)
        judgement = check.judge(facts, index_children=index_children)
        found = judgement.findings
        if repair is Repair.ON:
            found = [_repair(storage, f) for f in found]
        summary.repositories += 1
        summary.manifests += len(facts.revisions)
        summary.layer_links += len(facts.layers)
        summary.orphaned_links += judgement.orphaned_links
        summary.findings += len(found)
        summary.repairable += sum(f.repairable for f in found)
        summary.repaired += sum(f.repaired for f in found)
        counters.selected(1)
        counters.repository_done(len(facts.revisions) + len(facts.layers), len(found))
        with shown.writing(output.out) if found else contextlib.nullcontext():
            output.repository(name, found)
    summary.errors, summary.error_count = storage.errors, storage.error_count
    counters.all_selected()
    with shown.writing(output.out):
        output.finish(summary)
    return summary


def _repair(storage: Storage, finding: FsckFinding) -> FsckFinding:
    if finding.repair is None or finding.digest is None:
        return finding
    if not storage.remove_layer_link(finding.repair, finding.digest):
        return finding
    log.info("removed %s", os.path.dirname(finding.repair))
    return finding.with_repaired()

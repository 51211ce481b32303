"""Renders results for people (text) and machines (one JSON document)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from itertools import groupby

from .mediatypes import artifact_name
from .model import Dangling, Finding, Kind, RegistryResult, Skipped
from .render import BOLD, DIM, RED, YELLOW, Paint, painter, plural, state
from .tagorder import sorted_tags


def to_json(results: Sequence[RegistryResult]) -> str:
    return json.dumps({"registries": [r.to_json() for r in results]}, indent=2)


def to_text(results: Sequence[RegistryResult], colour: bool = False, catalog: bool = True) -> str:
    """``catalog``: whether the catalog was to be read (``run``), so its state is worth a word."""
    paint = painter(colour)
    lines: list[str] = []
    for result in results:
        broken = result.broken_images
        shard = f"  shard {result.shard}" if result.shard else ""
        verdict = state(result.broken, result.complete, paint)
        # `check` names a registry by its host: the URL says it already.
        title = result.url if result.url.partition("://")[2] == result.name else f"{result.name} {result.url}"
        unpushed = "  " + paint("NOT PUSHED", YELLOW + BOLD) if result.push and not result.push.ok else ""
        lines.append(f"{paint(title, BOLD)}  {verdict}{shard}{unpushed}")
        summary = (
            f"  {plural(result.repositories, 'repository', 'repositories')}, "
            f"{plural(result.images_checked, 'tag')} walked, "
            f"{plural(len(result.findings), 'broken object')} in {plural(len(broken), 'tag')}, "
            f"{result.duration_seconds:.1f}s"
        )
        if catalog and not result.catalog_accessible:
            summary += ", " + paint("catalog not accessible", YELLOW)
        lines.append(summary)
        coverage = result.coverage
        # A run without a ledger that walked everything has nothing to add to the line above.
        if coverage is not None and (coverage.ledger is not None or result.stopped != "done"):
            lines.append("  " + _coverage_line(result))
        for repository, group in groupby(result.findings, key=lambda f: f.repository):
            findings = list(group)
            tags = sorted_tags({t for f in findings for t in f.tags})
            lines.append(f"  {paint(repository, BOLD)}  tags: {', '.join(tags)}")
            lines.extend(_finding_lines(f, paint, show_tags=len(findings) > 1) for f in findings)
        lines.extend(_dangling_lines(result.dangling or [], paint))
        for skip in sorted(result.skipped, key=Skipped.order):
            lines.append(f"  skipped {skip.repository}:{skip.tag} ({skip.reason})")
            lines.append(paint(f"      {skip.detail}", DIM))
        for error in result.errors:
            lines.append("  " + paint("! " + error, YELLOW))
        if result.push and result.push.error:
            lines.append("  " + paint(f"! push failed: {result.push.error}", YELLOW))
        lines.append("")
    return "\n".join(lines)


def _coverage_line(result: RegistryResult) -> str:
    """Where continuous verification stands: what this run verified, why it stopped, the window."""
    coverage = result.coverage
    assert coverage is not None
    line = (
        f"coverage: {coverage.verified} verified by this run ({result.stopped}), "
        f"{coverage.verified_within_window} of {coverage.known} within {_hours(coverage.window_seconds)}"
    )
    if coverage.oldest_age_seconds is not None:
        line += f", the least recently verified {_hours(coverage.oldest_age_seconds)} ago"
    known = result.known_broken
    if known is not None and known.images:
        found = {(f.repository, t) for f in result.findings for t in f.tags}
        kept = sum(1 for image in known.images if image not in found)
        if kept:
            line += f"; {plural(kept, 'tag')} broken at the last look not reached (`regprobe ledger --broken`)"
    return line


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f}h" if seconds >= 3600 else f"{seconds / 60:.0f}m"


def _finding_lines(f: Finding, paint: Paint, show_tags: bool) -> str:
    unresolved = "(referrer list)" if f.kind is Kind.REFERRER else "(tag unresolved)"
    digest = f.digest.short if f.digest else unresolved
    text = f"    {f.kind.value:<8} {digest:<19} {paint(f.problem.value, RED)}"
    if f.kind is Kind.REFERRER and f.subject:
        what = artifact_name(f.artifact_type) + " " if f.artifact_type else ""
        text += f"  {what}of {f.subject.short}"
    if f.platform:
        text += f"  {f.platform}"
    if f.parent and f.parent != f.subject:
        text += f"  under {f.parent.short}"
    if show_tags:
        text += f"  tags: {', '.join(f.tags)}"
    text += "\n" + paint(f"      {f.detail}", DIM)
    if f.registry_error is not None:
        text += "\n" + paint(f"      the registry says: {f.registry_error}", DIM)
    return text


def _dangling_lines(dangling: list[Dangling], paint: Paint) -> list[str]:
    """Clutter, shown apart from the findings: nothing is broken, so nothing is red."""
    if not dangling:
        return []
    lines = [f"  {plural(len(dangling), 'dangling referrer')} (subject gone: clutter, not broken images)"]
    for d in sorted(dangling, key=Dangling.order):
        if d.reason == "orphaned_fallback_tag":
            text = f"fallback tag {d.tag} of {d.subject.short}, whose subject is gone"
        else:
            what = artifact_name(d.artifact_type)
            text = f"{d.digest.short if d.digest else '?'} {what} of {d.subject.short}, listed by {d.tag}"
        lines.append(paint(f"    {d.repository}  {text}", DIM))
    return lines

"""Renders results for people (text) and machines (one JSON document)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from itertools import groupby

from .model import Finding, RegistryResult
from .render import BOLD, DIM, RED, YELLOW, Paint, painter, state


def to_json(results: Sequence[RegistryResult]) -> str:
    return json.dumps({"registries": [r.to_json() for r in results]}, indent=2)


def to_text(results: Sequence[RegistryResult], colour: bool = False) -> str:
    paint = painter(colour)
    lines: list[str] = []
    for result in results:
        broken = result.broken_images
        shard = f"  shard {result.shard}" if result.shard else ""
        verdict = state(bool(result.findings), result.complete, paint)
        unpushed = "  " + paint("NOT PUSHED", YELLOW + BOLD) if result.push and not result.push.ok else ""
        lines.append(f"{paint(result.name, BOLD)} {result.url}  {verdict}{shard}{unpushed}")
        summary = (
            f"  {result.repositories} repositories, {result.images_checked} tags walked, "
            f"{len(result.findings)} broken objects in {len(broken)} tags, {result.duration_seconds:.1f}s"
        )
        if not result.catalog_accessible:
            summary += ", " + paint("catalog not accessible", YELLOW)
        lines.append(summary)
        for repository, group in groupby(result.findings, key=lambda f: f.repository):
            findings = list(group)
            tags = sorted({t for f in findings for t in f.tags})
            lines.append(f"  {paint(repository, BOLD)}  tags: {', '.join(tags)}")
            lines.extend(_finding_lines(f, paint, show_tags=len(findings) > 1) for f in findings)
        for skip in sorted(result.skipped, key=lambda s: (s.repository, s.tag)):
            lines.append(f"  skipped {skip.repository}:{skip.tag} ({skip.reason})")
            lines.append(paint(f"      {skip.detail}", DIM))
        for error in result.errors:
            lines.append("  " + paint("! " + error, YELLOW))
        if result.push and result.push.error:
            lines.append("  " + paint(f"! push failed: {result.push.error}", YELLOW))
        lines.append("")
    return "\n".join(lines)


def _finding_lines(f: Finding, paint: Paint, show_tags: bool) -> str:
    digest = f.digest.short if f.digest else "(tag unresolved)"
    text = f"    {f.kind.value:<8} {digest:<19} {paint(f.problem.value, RED)}"
    if f.parent:
        text += f"  under {f.parent.short}"
    if show_tags:
        text += f"  tags: {', '.join(f.tags)}"
    return text + "\n" + paint(f"      {f.detail}", DIM)

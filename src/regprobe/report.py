"""Renders results for people (text) and machines (one JSON document)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from itertools import groupby

from .model import Finding, RegistryResult

_RED, _YELLOW, _GREEN, _BOLD, _DIM, _RESET = "\033[31m", "\033[33m", "\033[32m", "\033[1m", "\033[2m", "\033[0m"


def to_json(results: Sequence[RegistryResult]) -> str:
    return json.dumps({"registries": [r.to_json() for r in results]}, indent=2)


def to_text(results: Sequence[RegistryResult], colour: bool = False) -> str:
    def paint(text: str, code: str) -> str:
        return f"{code}{text}{_RESET}" if colour else text

    lines: list[str] = []
    for result in results:
        broken = result.broken_images
        if result.findings:
            state = paint("BROKEN", _RED + _BOLD)
        elif not result.complete:
            state = paint("INCOMPLETE", _YELLOW + _BOLD)
        else:
            state = paint("OK", _GREEN + _BOLD)
        shard = f"  shard {result.shard}" if result.shard else ""
        unpushed = "  " + paint("NOT PUSHED", _YELLOW + _BOLD) if result.push and not result.push.ok else ""
        lines.append(f"{paint(result.name, _BOLD)} {result.url}  {state}{shard}{unpushed}")
        summary = (
            f"  {result.repositories} repositories, {result.images_checked} tags walked, "
            f"{len(result.findings)} broken objects in {len(broken)} tags, {result.duration_seconds:.1f}s"
        )
        if not result.catalog_accessible:
            summary += ", " + paint("catalog not accessible", _YELLOW)
        lines.append(summary)
        for repository, group in groupby(result.findings, key=lambda f: f.repository):
            findings = list(group)
            tags = sorted({t for f in findings for t in f.tags})
            lines.append(f"  {paint(repository, _BOLD)}  tags: {', '.join(tags)}")
            lines.extend(_finding_lines(f, paint, show_tags=len(findings) > 1) for f in findings)
        for error in result.errors:
            lines.append("  " + paint("! " + error, _YELLOW))
        if result.push and result.push.error:
            lines.append("  " + paint(f"! push failed: {result.push.error}", _YELLOW))
        lines.append("")
    return "\n".join(lines)


def _finding_lines(f: Finding, paint: Callable[[str, str], str], show_tags: bool) -> str:
    digest = f.digest.short if f.digest else "(tag unresolved)"
    text = f"    {f.kind.value:<8} {digest:<19} {paint(f.problem.value, _RED)}"
    if f.parent:
        text += f"  under {f.parent.short}"
    if show_tags:
        text += f"  tags: {', '.join(f.tags)}"
    return text + "\n" + paint(f"      {f.detail}", _DIM)

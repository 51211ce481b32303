"""Renders a gc-check result: text for people, one JSON document for machines."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from itertools import groupby

from ..mediatypes import artifact_name
from ..model import Kind
from ..render import BOLD, DIM, GREEN, RED, YELLOW, painter
from ..tagorder import sorted_tags
from .plan import Plan
from .predict import GcFinding


@dataclass(slots=True)
class Result:
    root: str
    plan: Plan
    findings: list[GcFinding] = field(default_factory=list)
    repositories: int = 0
    tags: int = 0
    #: The first unreadable paths (Storage.errors); error_count counts them all.
    errors: list[str] = field(default_factory=list)
    error_count: int = 0
    #: Where the plan contradicts storage (:mod:`.reconcile`): such a plan gets no verdict.
    mismatches: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return self.error_count == 0


def to_json(result: Result) -> str:
    return json.dumps(
        {
            "root": result.root,
            "plan": {
                "manifests": result.plan.manifest_count,
                "blobs": len(result.plan.blobs),
                "layer_links": result.plan.layer_link_count,
            },
            "findings": [f.to_json() for f in result.findings],
            "complete": result.complete,
            "repositories": result.repositories,
            "tags": result.tags,
            "errors": result.errors,
            "error_count": result.error_count,
        },
        indent=2,
    )


def to_text(result: Result, *, colour: bool) -> str:
    paint = painter(colour)
    broken = {(f.repository, t) for f in result.findings for t in f.tags}
    if result.findings:
        state = paint("UNSAFE: the collection would break tagged images", RED + BOLD)
    elif not result.complete:
        state = paint("UNKNOWN: parts of storage could not be read", YELLOW + BOLD)
    else:
        state = paint("SAFE: no tag needs what the collection deletes", GREEN + BOLD)
    lines = [
        f"{paint(result.root, BOLD)}  {state}",
        f"  plan deletes {_deletes(result.plan)}; "
        f"{result.repositories} repositories, {result.tags} tags walked; "
        f"{len(result.findings)} needed objects in {len(broken)} tags",
    ]
    for repository, group in groupby(result.findings, key=lambda f: f.repository):
        findings = list(group)
        tags = sorted_tags({t for f in findings for t in f.tags})
        lines.append(f"  {paint(repository, BOLD)}  tags: {', '.join(tags)}")
        for f in findings:
            head = f"    {f.kind.value:<8} {f.digest.short:<19} {paint(f.reason.value, RED)}"
            if f.kind is Kind.REFERRER and f.subject is not None:
                head += f"  {artifact_name(f.artifact_type)} of {f.subject.short}"
            if f.parent and f.parent != f.subject:  # a referrer's parent is its subject
                head += f"  under {f.parent.short}"
            if len(findings) > 1:
                head += f"  tags: {', '.join(f.tags)}"
            lines.append(head)
            lines.append(paint(f"      {f.detail}", DIM))
    lines.extend("  " + paint("! " + e, YELLOW) for e in result.errors)
    if result.error_count > len(result.errors):
        lines.append("  " + paint(f"! ... and {result.error_count - len(result.errors)} more", YELLOW))
    if result.findings:
        lines.append("  Do not run this collection; docs/gc.md says what to do instead.")
    return "\n".join(lines) + "\n"


def _deletes(plan: Plan) -> str:
    counts = f"{plan.manifest_count} manifests and {len(plan.blobs)} blobs"
    if plan.layer_link_count:  # distribution 3
        counts = f"{plan.manifest_count} manifests, {len(plan.blobs)} blobs and {plan.layer_link_count} layer links"
    return counts

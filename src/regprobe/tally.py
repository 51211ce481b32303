"""From one repository's judged walk to what the ledger keeps: a verdict per tag that got a fresh one, and
one per object that was looked at. Pure: no I/O.

A tag is verified only when the walk saw everything it reaches (docs/design/continuous-verification.md):

* a finding that names it: **broken**, whatever else its walk could not see (the finding is real);
* its walk met something it could not look at (refused, unreachable, not judged): **no verdict** - the
  tag keeps its earlier state, and an access problem never counts as a verification;
* skipped on purpose (a pull policy, a tag expired since the listing): **skipped**;
* walked to the end: **ok**;
* cut off before the end (deadline, signal): **no verdict**.
"""

from __future__ import annotations

from collections.abc import Mapping

from .digest import Digest
from .facts import Key, Node, TagRoot
from .judge import Judgement, reachable
from .ledger import ObjectVerdict, Problem, TagVerdict, Verdict
from .model import Finding


def tally(
    repository: str,
    roots: Mapping[str, TagRoot],
    nodes: Mapping[Key, Node],
    judged: Judgement,
    finished: set[str],
) -> tuple[list[TagVerdict], list[ObjectVerdict]]:
    broken: dict[str, list[Finding]] = {}
    for finding in judged.findings:
        for tag in finding.tags:
            broken.setdefault(tag, []).append(finding)
    skipped = {s.tag for s in judged.skipped}
    tags: list[TagVerdict] = []
    for tag, root in sorted(roots.items()):
        found = broken.get(tag)
        verdict: Verdict
        if found:
            verdict = "broken"
        elif tag in judged.blocked:
            continue
        elif tag in skipped:
            verdict = "skipped"
        elif tag in finished:
            verdict = "ok"
        else:
            continue
        reaches = tuple(dict.fromkeys(str(key[1]) for key, *_ in reachable(root.key, nodes))) if root.key else ()
        tags.append(
            TagVerdict(
                repository,
                tag,
                str(root.key[1]) if root.key else None,
                verdict,
                _detail(found[0]) if found else "",
                reaches,
                tuple(_problem(f) for f in found or ()),
            )
        )
    judged_broken = {f.digest for f in judged.findings}
    return tags, _objects(repository, nodes, judged_broken)


def _objects(repository: str, nodes: Mapping[Key, Node], judged_broken: set[Digest | None]) -> list[ObjectVerdict]:
    out = []
    for (what, digest), node in nodes.items():
        if what == "referrers":
            continue  # a manifest's list of referrers: no object of the registry's (its findings are the tags')
        if node.error is not None or node.absent:
            continue  # not looked at
        if node.problem is not None and digest not in judged_broken:
            continue  # not judged (a server_error while the registry failed the rest too)
        verdict: Verdict = "skipped" if node.skipped else "broken" if node.problem else "ok"
        out.append(ObjectVerdict(repository, str(digest), node.kind.value, verdict, node.size, node.hashed))
    return out


def _problem(finding: Finding) -> Problem:
    return finding.kind.value, str(finding.digest) if finding.digest else None


def _detail(finding: Finding) -> str:
    what = f"{finding.kind.value} {finding.digest.short}" if finding.digest else finding.kind.value
    return f"{what} {finding.problem.value}: {finding.detail}"

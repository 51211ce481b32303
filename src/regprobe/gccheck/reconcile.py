"""Whether a plan is of this storage, as it is now. Pure functions over facts already read.

Never a verdict on a plan of other storage: its deletions say nothing about this one. A real collection
prints what a dry run prints, and what it names is gone afterwards - so the output of a collection that
already ran fails here too, as does a plan older than a repository or a deletion made since.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from ..digest import Digest
from ..fsck.storage import Data, RepositoryFacts
from .plan import Plan, PlanError

#: How many mismatches the error message names.
_SHOWN = 3


def in_repository(facts: RepositoryFacts, plan: Plan) -> list[str]:
    """What the plan says of this repository that its storage contradicts."""
    out = []
    if facts.name not in plan.repositories and (facts.revisions or facts.tags):
        out.append(f"repository {facts.name} is not in the plan")
    doomed = plan.manifests.get(facts.name, frozenset())
    out.extend(f"manifest {d} is not in repository {facts.name}" for d in sorted(doomed - facts.revisions.keys()))
    kept = plan.kept.get(facts.name, frozenset())
    out.extend(
        f"manifest {d} the plan keeps is not in repository {facts.name}" for d in sorted(kept - facts.revisions.keys())
    )
    linked = {d for d, link in facts.layers.items() if link.target is not None}
    unlinked = plan.layer_links.get(facts.name, frozenset())
    out.extend(f"layer link {d} is not in repository {facts.name}" for d in sorted(unlinked - linked))
    return out


def in_root(plan: Plan, repositories: Iterable[str], data: Callable[[Digest], Data | None]) -> list[str]:
    """What the plan names that ROOT does not hold: ``repositories`` are those found in it, ``data``
    reads a blob's data facts (None when unreadable: not a mismatch, an incomplete scan)."""
    out = [f"repository {r} is not in ROOT" for r in sorted(plan.repositories - set(repositories))]
    for digest in sorted(plan.blobs):
        found = data(digest)
        if found is not None and found.missing:
            out.append(f"blob {digest} is not in ROOT")
    return out


def refusal(mismatches: list[str], source: str, root: str) -> PlanError:
    shown = "; ".join(mismatches[:_SHOWN])
    if len(mismatches) > _SHOWN:
        shown += f"; and {len(mismatches) - _SHOWN} more"
    return PlanError(
        f"plan {source}: does not match ROOT {root} ({shown}): is it the output of a real collection "
        "that already ran, of another registry's storage, or older than the last push? Run the dry run again"
    )

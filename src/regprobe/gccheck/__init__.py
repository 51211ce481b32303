"""``regprobe gc-check ROOT --plan FILE|-``: what would ``registry garbage-collect`` break?

registry:2's collection with ``--delete-untagged`` removes the revision links of every index child
(children carry no tag) and deletes their configs and layers: every pull of a multi-platform tag breaks
(distribution #3178; fixed only in v3). gc-check reads the registry's own dry run - so the prediction is
what that registry version will do - walks every tag in storage with fsck's reader, and names each
object a tag needs that the plan deletes. Content no tag needs (an overwritten tag's old image) is what
the collection is for, and is never reported. See docs/gc.md.

Exit codes: 0 safe; 1 the collection would break tagged images; 2 the plan is unreadable, not a dry
run, or not of this storage (also ROOT not a storage root); 3 storage could not be read completely and
nothing was found in the rest.
"""

from __future__ import annotations

import os
import sys
from typing import BinaryIO, TextIO

from .. import exitcodes
from ..fsck.storage import Storage, check_root
from . import predict
from .output import Result, to_json, to_text
from .plan import PlanError, read_plan

__all__ = ["PlanError", "read_plan", "run_gc_check"]

#: How many plan/storage mismatches the error message names.
_SHOWN = 3


def run_gc_check(
    root: str, plan_source: str, *, fmt: str = "text", out: TextIO | None = None, stdin: BinaryIO | None = None
) -> int:
    """Check ``plan_source`` (a path, or ``-`` for ``stdin``) against ``root``; write the report; the exit code.

    Raises :class:`~regprobe.errors.ConfigError` (exit 2) for a bad ROOT or plan.
    """
    absolute = os.path.abspath(root)
    check_root(root, absolute)
    plan = read_plan(plan_source, stdin if stdin is not None else sys.stdin.buffer)
    storage = Storage(absolute)
    result = Result(absolute, plan)
    mismatches: list[str] = []
    seen: set[str] = set()
    for name, rel in storage.repositories():
        facts = storage.collect(name, rel)
        seen.add(name)
        result.repositories += 1
        result.tags += len(facts.tags)
        if name not in plan.repositories and (facts.revisions or facts.tags):
            mismatches.append(f"repository {name} is not in the plan")
        judgement = predict.judge(facts, plan)
        result.findings.extend(judgement.findings)
        mismatches.extend(f"manifest {d} is not in repository {name}" for d in judgement.unknown_manifests)
    mismatches.extend(f"repository {r} is not in ROOT" for r in sorted(plan.repositories - seen))
    for digest in sorted(plan.blobs):
        data = storage.data(digest)
        if data is not None and data.missing:
            mismatches.append(f"blob {digest} is not in ROOT")
    result.errors, result.error_count = storage.errors, storage.error_count
    if mismatches and result.complete:
        # Never a verdict on a plan of other storage: its deletions say nothing about this one. A real
        # collection prints what a dry run prints, and what it names is gone afterwards.
        shown = "; ".join(mismatches[:_SHOWN]) + (
            f"; and {len(mismatches) - _SHOWN} more" if len(mismatches) > _SHOWN else ""
        )
        raise PlanError(
            f"plan {plan_source}: does not match ROOT {root} ({shown}): is it the output of a real collection "
            "that already ran, of another registry's storage, or older than the last push? Run the dry run again"
        )
    result.findings.sort(key=predict.order)
    stream = out if out is not None else sys.stdout
    if fmt == "json":
        stream.write(to_json(result) + "\n")
    else:
        stream.write(to_text(result, colour=stream.isatty() and "NO_COLOR" not in os.environ))
    return exitcodes.verdict(bool(result.findings), result.complete)

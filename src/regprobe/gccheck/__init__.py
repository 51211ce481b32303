"""``regprobe gc-check ROOT --plan FILE|-``: what would ``registry garbage-collect`` break?

registry:2's collection with ``--delete-untagged`` removes the revision links of every index child
(children carry no tag) and deletes their configs and layers: every pull of a multi-platform tag breaks
(distribution #3178). v3 keeps those children, yet still deletes referrers attached by digest only and,
when a copy of an index elsewhere is damaged, a healthy copy's blobs. gc-check reads the registry's own
dry run (2.8's or v3's) - so the prediction is what that registry version will do - walks every tag in
storage with fsck's reader, and names each object a tag needs that the plan deletes. Content no tag
needs (an overwritten tag's old image) is what the collection is for, and is never reported. See
docs/gc.md.

The plan is read (:mod:`.plan`), held against storage (:mod:`.reconcile`), judged repository by
repository (:mod:`.predict`) and rendered (:mod:`.output`); the exit code is the contract's
(:mod:`regprobe.exitcodes`): 0 safe; 1 the collection would break tagged images; 2 the plan is
unreadable, not a dry run, or not of this storage (also ROOT not a storage root); 3 storage could not be
read completely and nothing was found in the rest.
"""

from __future__ import annotations

import os
import sys
from typing import BinaryIO, TextIO

from .. import exitcodes
from ..fsck.storage import Storage, check_root
from . import predict, reconcile
from .output import Result, to_json, to_text
from .plan import Plan, PlanError, read_plan

__all__ = ["PlanError", "read_plan", "run_gc_check", "scan"]


def run_gc_check(
    root: str, plan_source: str, *, fmt: str = "text", out: TextIO | None = None, stdin: BinaryIO | None = None
) -> int:
    """Check ``plan_source`` (a path, or ``-`` for ``stdin``) against ``root``; write the report; the exit code.

    Raises :class:`~regprobe.errors.ConfigError` (exit 2) for a bad ROOT or plan.
    """
    absolute = os.path.abspath(root)
    check_root(root, absolute)
    plan = read_plan(plan_source, stdin if stdin is not None else sys.stdin.buffer)
    result = scan(Storage(absolute), plan)
    if result.mismatches and result.complete:
        raise reconcile.refusal(result.mismatches, plan_source, root)
    stream = out if out is not None else sys.stdout
    if fmt == "json":
        stream.write(to_json(result) + "\n")
    else:
        stream.write(to_text(result, colour=stream.isatty() and "NO_COLOR" not in os.environ))
    return exitcodes.verdict(bool(result.findings), result.complete)


def scan(storage: Storage, plan: Plan) -> Result:
    """Every repository in ``storage`` held against ``plan`` and judged by it."""
    result = Result(storage.root, plan)
    seen: list[str] = []
    for name, rel in storage.repositories():
        facts = storage.collect(name, rel)
        seen.append(name)
        result.repositories += 1
        result.tags += len(facts.tags)
        result.mismatches.extend(reconcile.in_repository(facts, plan))
        result.findings.extend(predict.judge(facts, plan))
    result.mismatches.extend(reconcile.in_root(plan, seen, storage.data))
    result.errors, result.error_count = storage.errors, storage.error_count
    result.findings.sort(key=predict.order)
    return result

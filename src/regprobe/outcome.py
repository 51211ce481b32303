"""One line per registry per run at the default log level (``run`` and ``serve``): what happened, for
``kubectl logs`` without ``-v`` - OK, BROKEN with counts, or INCOMPLETE with the reason."""

from __future__ import annotations

import logging

from .carryover import BrokenImages
from .model import RegistryResult
from .render import plural, verdict

#: Shown at the default verbosity (cli sets its level): these lines are the point of this logger.
log = logging.getLogger("regprobe.outcome")
#: Longest reason quoted; the report (and -v) has every error in full.
MAX_REASON = 300


def line(result: RegistryResult) -> str:
    word = verdict(result.broken, result.complete)
    walked = f"{plural(result.images_checked, 'tag')} walked in {result.duration_seconds:.1f}s"
    if result.findings:
        text = (
            f"{plural(len(result.broken_images), 'broken image')}"
            f" ({plural(len(result.findings), 'broken object')}), {walked}"
        )
        if not result.complete:
            text += f"; incomplete: {reason(result)}"
    elif not result.complete:
        text = f"{reason(result)}; {walked}"
    else:
        text = walked
    known = result.known_broken
    if known is not None and known.images and not result.findings:
        text += f"; {plural(len(known.images), 'tag')} broken at the last look, not reached by this run"
    if result.push is not None and not result.push.ok:
        text += "; NOT PUSHED"
    return f"registry {result.name}: {word}: {text}"


def reason(result: RegistryResult) -> str:
    if not result.errors:
        return "the run did not finish"
    first = result.errors[0]
    if len(first) > MAX_REASON:
        first = first[: MAX_REASON - 3] + "..."
    more = len(result.errors) - 1
    return first + (f" (and {plural(more, 'more error')})" if more else "")


def report(result: RegistryResult) -> None:
    log.log(logging.INFO if result.complete and not result.findings else logging.WARNING, "%s", line(result))


def kept(result: RegistryResult, verdict: BrokenImages | None) -> None:
    """Say so when a run's published verdict keeps earlier ones it did not re-check (an incomplete run's,
    or with a ledger one whose budget did not reach them)."""
    if verdict is not None and verdict.kept:
        log.info(
            "registry %s: %s from earlier runs kept as they were: this run did not re-check them",
            result.name,
            plural(verdict.kept, "broken image"),
        )

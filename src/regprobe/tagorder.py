"""The order tags are listed in, wherever regprobe lists them (findings, reports, fsck, gc-check, the
status page): natural, so ``v2`` comes before ``v10`` and ``1.9`` before ``1.10`` (issue 21)."""

from __future__ import annotations

import re
from collections.abc import Iterable

_RUNS = re.compile(r"(\d+)")

#: Per run of the tag: ``(0, text)`` for text, ``(length, digits)`` for a number - compared as a number
#: without converting it (a tag may hold more digits than ``int()`` accepts), leading zeros aside.
NaturalKey = tuple[tuple[tuple[int, str], ...], str]


def natural_key(tag: str) -> NaturalKey:
    """Sort key: text runs compare as text, digit runs as numbers; ties (``v01``, ``v1``) by the tag itself."""
    runs = _RUNS.split(tag)  # text at even positions, digits at odd ones: never compared with each other
    parts = tuple((0, run) if i % 2 == 0 else (len(run.lstrip("0")), run.lstrip("0")) for i, run in enumerate(runs))
    return parts, tag


def sorted_tags(tags: Iterable[str]) -> list[str]:
    return sorted(tags, key=natural_key)

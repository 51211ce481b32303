"""Exit codes, as CONTRACT.md fixes them for every command."""

from __future__ import annotations

from typing import Final

OK: Final = 0  # everything read, nothing broken
FINDINGS: Final = 1  # integrity findings
USAGE: Final = 2  # usage or configuration error (a bad config, ROOT or plan): nothing checked
INCOMPLETE: Final = 3  # could not read everything, and found nothing in what it read


def verdict(findings: bool, complete: bool) -> int:
    """Findings win over an incomplete run: what was found is broken whatever could not be read."""
    if findings:
        return FINDINGS
    return OK if complete else INCOMPLETE

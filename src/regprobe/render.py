"""What the text reports of ``run``/``check`` and ``fsck`` share: ANSI colours, and the one-word state
a person reads first."""

from __future__ import annotations

from collections.abc import Callable

RED, YELLOW, GREEN, BOLD, DIM, RESET = "\033[31m", "\033[33m", "\033[32m", "\033[1m", "\033[2m", "\033[0m"

Paint = Callable[[str, str], str]


def painter(colour: bool) -> Paint:
    """``paint(text, code)``: ``text`` in colour ``code`` when ``colour``, else as it is."""

    def paint(text: str, code: str) -> str:
        return f"{code}{text}{RESET}" if colour else text

    return paint


def state(broken: bool, complete: bool, paint: Paint) -> str:
    """BROKEN wins over INCOMPLETE, as exit code 1 wins over 3: what was found is found."""
    if broken:
        return paint("BROKEN", RED + BOLD)
    if not complete:
        return paint("INCOMPLETE", YELLOW + BOLD)
    return paint("OK", GREEN + BOLD)

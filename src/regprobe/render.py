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


def verdict(broken: bool, complete: bool) -> str:
    """The one word a person reads first. BROKEN wins over INCOMPLETE, as exit code 1 wins over 3: what
    was found is found."""
    if broken:
        return "BROKEN"
    if not complete:
        return "INCOMPLETE"
    return "OK"


_COLOURS = {"BROKEN": RED + BOLD, "INCOMPLETE": YELLOW + BOLD, "OK": GREEN + BOLD}


def state(broken: bool, complete: bool, paint: Paint) -> str:
    """:func:`verdict` in its colour."""
    word = verdict(broken, complete)
    return paint(word, _COLOURS[word])


def plural(count: int, singular: str, plural_form: str | None = None) -> str:
    """``1 tag``, ``2 tags``: a report reads as sentences."""
    return f"{count} {singular if count == 1 else plural_form or singular + 's'}"

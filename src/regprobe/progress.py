"""Progress of long work (``run``, ``check``, ``fsck``) for the person or the log watching it.

The work updates :class:`Counters` (plain integers, on its own thread); a :class:`Display` reads them
from a thread of its own and shows them: live bars (tqdm) when stderr is a terminal, otherwise one INFO
line per registry every 30 s, so a stuck CronJob is visible in ``kubectl logs``; nothing with ``-q``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from types import TracebackType
from typing import Never, Protocol, TextIO

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from .render import plural

log = logging.getLogger("regprobe.progress")
# Shown at the default verbosity: the periodic line is the point of this logger.
log.setLevel(logging.INFO)

#: Seconds between log lines when stderr is not a terminal. The variable is for tests, not operators.
LOG_INTERVAL = 30.0
_INTERVAL_ENV = "_REGPROBE_PROGRESS_INTERVAL"
_BAR_REFRESH = 0.2
# tqdm's own fields, then our figures (plain text: no braces in them).
_WITH_TOTAL = "{{desc}}: {{percentage:3.0f}}%|{{bar:20}}| {line}"
_NO_TOTAL = "{{desc}}: {line}"


class ProbeProgress(Protocol):
    """What a registry probe reports as it goes (:func:`regprobe.probe.probe_registry`)."""

    def pinned(self, repositories: int, images: int) -> None:
        """``check``: everything to walk is known at the start."""

    def selected(self, repositories: int) -> None: ...

    def all_selected(self) -> None:
        """Every repository is selected: the catalog is read (or the names were given)."""

    def listed(self, tags: int) -> None:
        """A selected repository's tags are listed."""

    def tag_done(self) -> None: ...

    def repository_done(self, objects: int, findings: int) -> None: ...


@dataclass(slots=True)
class Counters:
    """One registry's (or storage root's) work so far. Totals grow as listings are read."""

    name: str
    repositories_done: int = 0
    repositories: int = 0
    repositories_listed: int = 0
    selection_done: bool = False
    tags_done: int = 0
    tags: int = 0
    objects: int = 0
    findings: int = 0
    #: The client's live request counts (by outcome), for the request rate; None offline (fsck).
    requests: Counter[str] | None = None
    started: float = field(default_factory=time.monotonic)

    def pinned(self, repositories: int, images: int) -> None:
        self.repositories = self.repositories_listed = repositories
        self.tags = images
        self.selection_done = True

    def selected(self, repositories: int) -> None:
        self.repositories += repositories

    def all_selected(self) -> None:
        self.selection_done = True

    def listed(self, tags: int) -> None:
        self.tags += tags
        self.repositories_listed += 1

    @property
    def totals_final(self) -> bool:
        """Until every repository is selected and listed, the totals are lower bounds."""
        return self.selection_done and self.repositories_listed >= self.repositories

    def tag_done(self) -> None:
        self.tags_done += 1

    def repository_done(self, objects: int, findings: int) -> None:
        self.repositories_done += 1
        self.objects += objects
        self.findings += findings

    def request_count(self) -> int:
        if self.requests is None:
            return 0
        # A copy first (one C call, atomic under the GIL): the event loop's thread adds outcomes as it
        # meets them, and iterating the live dict from here could see it change size.
        counts = dict(self.requests)
        return sum(counts.values()) - counts.get("retried", 0)

    def line(self, now: float | None = None) -> str:
        """The figures in words, the same for the log line and the bar's tail."""
        elapsed = max(1e-9, (now if now is not None else time.monotonic()) - self.started)
        if self.selection_done or self.repositories > self.repositories_done:
            parts = [f"repositories {self.repositories_done}/{self.repositories}{'' if self.selection_done else '+'}"]
        else:  # as far as anyone knows yet, all done: no total to give
            parts = [f"repositories {self.repositories_done}"]
        if self.tags or self.requests is not None:
            parts.append(f"tags {self.tags_done}/{self.tags}{'' if self.totals_final else '+'}")
        parts.append(f"{plural(self.objects, 'object')} checked")
        parts.append(plural(self.findings, "finding"))
        if self.requests is not None:
            parts.append(f"{self.request_count() / elapsed:.0f} requests/s")
        eta = self._eta(elapsed)
        if eta is not None:
            parts.append(f"ETA {_duration(eta)}")
        return ", ".join(parts)

    def _eta(self, elapsed: float) -> float | None:
        if not self.totals_final or not self.tags_done or self.tags <= self.tags_done:
            return None
        return (self.tags - self.tags_done) * elapsed / self.tags_done


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


class Mode(StrEnum):
    OFF = "off"  # -q
    BARS = "bars"  # stderr is a terminal
    LOG = "log"  # a CronJob's log, a CI job's output


def mode_for(quiet: bool, stream: TextIO | None = None) -> Mode:
    if quiet:
        return Mode.OFF
    stream = stream if stream is not None else sys.stderr
    return Mode.BARS if stream.isatty() else Mode.LOG


def log_interval() -> float:
    try:
        return float(os.environ.get(_INTERVAL_ENV, LOG_INTERVAL))
    except ValueError:
        return LOG_INTERVAL


class Display:
    """Shows ``counters`` while the ``with`` block runs; bars vanish when it ends, before the report."""

    def __init__(
        self,
        counters: Sequence[Counters],
        mode: Mode,
        stream: TextIO | None = None,
        interval: float | None = None,
    ) -> None:
        self.counters, self.mode = list(counters), mode
        self.stream = stream if stream is not None else sys.stderr
        self.interval = interval if interval is not None else log_interval()
        self._bars: list[tqdm[Never]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._redirect: contextlib.ExitStack | None = None
        self._logged = False  # a periodic log line was written

    def __enter__(self) -> Display:
        if self.mode is Mode.OFF:
            return self
        if self.mode is Mode.BARS:
            self._bars = [
                tqdm(
                    desc=c.name,
                    total=None,
                    file=self.stream,
                    position=i,
                    leave=False,
                    dynamic_ncols=True,
                    bar_format=_NO_TOTAL.format(line="starting"),
                )
                for i, c in enumerate(self.counters)
            ]
            # Log records would run into the bars: tqdm writes them above, and redraws.
            self._redirect = contextlib.ExitStack()
            self._redirect.enter_context(logging_redirect_tqdm())
        self._thread = threading.Thread(target=self._loop, name="regprobe-progress", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._logged:
            # The last periodic line is up to an interval old; without this one the log's last figures
            # would disagree with the report that follows (issue 21).
            self._log_lines("done")
        if self._redirect is not None:
            self._redirect.close()
        if self._bars:
            self._draw()  # the final figures, for a moment, however short the work was
        for bar in self._bars:
            bar.close()
        self._bars = []

    def _loop(self) -> None:
        wait = _BAR_REFRESH if self.mode is Mode.BARS else self.interval
        while not self._stop.wait(wait):
            try:
                if self.mode is Mode.BARS:
                    self._draw()
                else:
                    self._log_lines("progress")
            except Exception:  # showing progress must never cost the run, nor print a thread's traceback
                log.debug("progress display failed", exc_info=True)

    def _log_lines(self, what: str) -> None:
        for counters in self.counters:
            log.info("%s %s: %s", what, counters.name, counters.line())
        self._logged = True

    def _draw(self) -> None:
        for bar, counters in zip(self._bars, self.counters, strict=True):
            # A total the bar can trust only once every repository's tags are listed.
            known = counters.totals_final and counters.tags > 0
            bar.total = counters.tags if known else None
            bar.n = counters.tags_done
            bar.bar_format = (_WITH_TOTAL if known else _NO_TOTAL).format(line=counters.line())
            bar.refresh()

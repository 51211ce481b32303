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
from collections.abc import Iterator, Sequence
from enum import StrEnum
from types import TracebackType
from typing import Never, TextIO

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from .counters import Counters

#: Shown at the default verbosity (cli sets its level): the periodic line is the point of this logger.
log = logging.getLogger("regprobe.progress")

#: Seconds between log lines when stderr is not a terminal. The variable is for tests, not operators.
LOG_INTERVAL = 30.0
_INTERVAL_ENV = "_REGPROBE_PROGRESS_INTERVAL"
_BAR_REFRESH = 0.2
# tqdm's own fields, then our figures (plain text: no braces in them).
_WITH_TOTAL = "{{desc}}: {{percentage:3.0f}}%|{{bar:20}}| {line}"
_NO_TOTAL = "{{desc}}: {line}"


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
        if self._redirect is not None:
            self._redirect.close()
        if self._bars:
            self._draw()  # the final figures, for a moment, however short the work was
        for bar in self._bars:
            bar.close()
        self._bars = []

    @contextlib.contextmanager
    def writing(self, out: TextIO) -> Iterator[None]:
        """Around output written to the terminal while the bars are up (fsck's streamed findings)."""
        if not self._bars:
            yield
            return
        with tqdm.external_write_mode(file=out):
            yield

    def _loop(self) -> None:
        wait = _BAR_REFRESH if self.mode is Mode.BARS else self.interval
        while not self._stop.wait(wait):
            try:
                if self.mode is Mode.BARS:
                    self._draw()
                else:
                    for counters in self.counters:
                        log.info("progress %s: %s", counters.name, counters.line())
            except Exception:  # showing progress must never cost the run, nor print a thread's traceback
                log.debug("progress display failed", exc_info=True)

    def _draw(self) -> None:
        for bar, counters in zip(self._bars, self.counters, strict=True):
            # A total the bar can trust only once every repository's tags are listed.
            known = counters.totals_final and counters.tags > 0
            bar.total = counters.tags if known else None
            bar.n = counters.tags_done
            bar.bar_format = (_WITH_TOTAL if known else _NO_TOTAL).format(line=counters.line())
            bar.refresh()

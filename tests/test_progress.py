"""Progress of long work: live on a terminal, a periodic log line without one, nothing with -q.

The terminal is a real pseudo-terminal and the command a real ``python -m regprobe`` process against the
real registry; the log interval (30 s for operators) is shortened through the internal variable.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections import Counter
from typing import Any

import pytest

from regprobe.counters import Counters
from regprobe.progress import Display, Mode, mode_for

from .registry import Registry
from .terminal import run_on_terminal
from .util import wait_for


def _spawn(argv: list[str], *, terminal: bool, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) with stderr on a pseudo-terminal (``terminal``) or a pipe."""
    if terminal:
        return run_on_terminal(argv, env=env)
    environment = {**os.environ, **(env or {})}
    command = [sys.executable, "-m", "regprobe", *argv]
    done = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=120, check=False)
    return done.returncode, done.stdout, done.stderr


@pytest.fixture
def broken_config(registry: Registry, ns: str, probe_config: Any) -> str:
    """Three repositories of two tags each in a namespace of the test's own; one layer's data is gone."""
    for name in ("a", "b", "c"):
        for tag in ("v1", "v2"):
            image = registry.push_image(f"{ns}/{name}", tag)
    registry.remove_blob_data(image.layers[0])
    path: str = probe_config({"name": "lab", "url": registry.url, "repositories": {"include": [f"{ns}/*"]}})
    return path


def test_run_on_a_terminal_shows_live_progress_then_clears_it(broken_config: str) -> None:
    code, out, err = _spawn(["run", "-c", broken_config, "--no-push"], terminal=True)
    assert code == 1, err
    assert "BROKEN" in out  # the report still goes to stdout, whole
    # The figures the probe counted, drawn on the terminal (the last frame, at least).
    assert "lab" in err
    assert "repositories 3/3, tags 6/6, " in err
    assert ", 1 finding," in err
    assert "requests/s" in err
    assert "progress lab" not in err  # no log lines on a terminal
    # The bar is drawn in place and wiped: the terminal ends on an empty line, not on the bar.
    assert "\r" in err
    assert err.rstrip(" ").endswith(("\r", "\x1b[A", "\x1b[K"))


def test_run_without_a_terminal_logs_the_figures_periodically(broken_config: str) -> None:
    code, _out, err = _spawn(
        ["run", "-c", broken_config, "--no-push"], terminal=False, env={"_REGPROBE_PROGRESS_INTERVAL": "0.01"}
    )
    assert code == 1, err
    lines = [line for line in err.splitlines() if "progress lab:" in line]
    assert lines, err
    assert all(line.startswith("regprobe: INFO: progress lab: repositories ") for line in lines)
    assert "\r" not in err  # no bar in a log


def test_quiet_silences_both(broken_config: str) -> None:
    for terminal in (True, False):
        code, out, err = _spawn(
            ["run", "-c", broken_config, "--no-push", "-q"],
            terminal=terminal,
            env={"_REGPROBE_PROGRESS_INTERVAL": "0.01"},
        )
        assert code == 1
        assert "3 repositories" in out  # the report is not progress: -q keeps it
        assert "progress" not in err
        assert "requests/s" not in err


def test_check_on_a_terminal(registry: Registry, ns: str) -> None:
    registry.push_image(f"{ns}/app", "v1")
    code, _out, err = _spawn(["check", "--plain-http", f"{registry.host}/{ns}/app:v1"], terminal=True)
    assert code == 0, err
    assert "repositories 1/1, tags 1/1, " in err


def test_log_line_names_every_figure(caplog: pytest.LogCaptureFixture) -> None:
    counters = Counters("lab")
    counters.selected(2)
    counters.all_selected()
    counters.listed(3)
    counters.tag_done()
    caplog.set_level(logging.INFO, logger="regprobe.progress")
    with Display([counters], Mode.LOG, interval=0.01):
        record = wait_for(lambda: [r for r in caplog.records if r.name == "regprobe.progress"], "a progress line")
    text = record[0].getMessage()
    # The second repository is not listed yet: its tags are unknown, so the total is a lower bound.
    assert text.startswith("progress lab: repositories 0/2, tags 1/3+, 0 objects checked, 0 findings"), text
    assert "ETA" not in text


def test_eta_once_every_total_is_known() -> None:
    counters = Counters("lab", started=100.0)
    counters.pinned(1, 4)
    counters.tag_done()
    assert counters.line(now=110.0).endswith("ETA 30s")


def test_mode() -> None:
    class Terminal:
        def isatty(self) -> bool:
            return True

    class Pipe:
        def isatty(self) -> bool:
            return False

    assert mode_for(False, Terminal()) is Mode.BARS  # type: ignore[arg-type]
    assert mode_for(False, Pipe()) is Mode.LOG  # type: ignore[arg-type]
    assert mode_for(True, Terminal()) is Mode.OFF  # type: ignore[arg-type]


def test_request_rate_counts_answers_not_retries() -> None:
    counters = Counters("lab", started=100.0, requests=Counter({"ok": 90, "timeout": 10, "retried": 7}))
    assert counters.request_count() == 100
    assert "50 requests/s" in counters.line(now=102.0)

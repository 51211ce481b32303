"""`regprobe ... | head`: when the reader of the output goes away, every command ends quietly, with the
status a shell gives a program that SIGPIPE ends (141), never a BrokenPipeError traceback.

Each command writes into a real pipe whose read end is already closed, so its first write meets EPIPE
whatever the size of the report (a reader like `head` that closes after a line races the writer: a
report that fits the pipe's buffer never sees EPIPE at all).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .registry import BINARY, Registry

BROKEN_PIPE = 141


@pytest.fixture
def reg(tmp_path: Path) -> Iterator[Registry]:
    registry = Registry(tmp_path / "registry", cache=False).start()
    registry.push_image("team/app", "v1")
    registry.remove_blob_data(registry.push_image("team/worker", "v1").layers[0])  # a finding to report
    yield registry
    registry.stop()


def into_closed_pipe(
    *argv: str, stderr_too: bool = False, unbuffered: bool = False
) -> subprocess.CompletedProcess[str]:
    """``python -m regprobe ARGV`` with stdout (and with ``stderr_too`` stderr) a pipe nobody reads.

    stdout is block-buffered, as on a workstation, unless ``unbuffered`` (PYTHONUNBUFFERED, as the image
    sets it): buffered, the report meets the closed pipe only when it is flushed, at the latest when
    Python exits - where nothing could catch the error any more.
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    if unbuffered:
        env["PYTHONUNBUFFERED"] = "1"
    read, write = os.pipe()
    os.close(read)
    try:
        return subprocess.run(
            [sys.executable, "-m", "regprobe", *argv],
            stdin=subprocess.DEVNULL,
            stdout=write,
            stderr=write if stderr_too else subprocess.PIPE,
            env=env,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write)


def assert_quiet(proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode == BROKEN_PIPE, proc.stderr
    for noise in ("Traceback", "BrokenPipeError", "Exception ignored"):
        assert noise not in (proc.stderr or ""), proc.stderr


@pytest.mark.parametrize(("fmt", "unbuffered"), [("text", False), ("json", False), ("text", True)])
def test_fsck(reg: Registry, fmt: str, unbuffered: bool) -> None:
    assert_quiet(into_closed_pipe("fsck", str(reg.root), "--format", fmt, unbuffered=unbuffered))


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_run(reg: Registry, fmt: str, probe_config: Any) -> None:
    config = probe_config({"name": "local", "url": reg.url})
    assert_quiet(into_closed_pipe("run", "-c", config, "--no-push", "--format", fmt))


def test_check_json(reg: Registry) -> None:
    assert_quiet(into_closed_pipe("check", "--plain-http", "--format", "json", f"{reg.host}/team/worker:v1"))


def test_gc_check(reg: Registry, tmp_path: Path) -> None:
    reg.stop()
    plan = subprocess.run(
        [BINARY, "garbage-collect", "--dry-run", "--delete-untagged", str(reg.config_path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    (tmp_path / "plan.txt").write_text(plan)
    assert_quiet(into_closed_pipe("gc-check", str(reg.root), "--plan", str(tmp_path / "plan.txt")))


def test_logs_into_the_same_gone_reader(reg: Registry, probe_config: Any) -> None:
    """`regprobe run -v 2>&1 | head`: log lines meet the closed pipe too; the status still says why."""
    config = probe_config({"name": "local", "url": reg.url})
    assert into_closed_pipe("run", "-c", config, "--no-push", "-v", stderr_too=True).returncode == BROKEN_PIPE

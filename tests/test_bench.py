"""The benchmark, run tiny: it must keep working, and regprobe must issue exactly the minimal request
list (one fetch per tag, per distinct manifest, per distinct blob per repository). Timings are the
benchmark's business (docs/performance.md), never asserted here."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(
    not all(shutil.which(t) for t in ("wrk", "skopeo", "taskset")),
    reason="wrk/skopeo/taskset not installed (make deps)",
)
@pytest.mark.timeout(180)
def test_tiny_benchmark_issues_exactly_the_minimal_requests() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.run_bench",
            "--repositories",
            "4",
            "--tags",
            "5",
            "--wrk-seconds",
            "1",
            "--rounds",
            "1",
            "--skopeo-sample",
            "2",
            "--with-direct",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=170,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    # Pinned wall, limit and ratio, then the same on shared cores, then the request count.
    pair = r"[\d.]+ s \| [\d.]+ s \| [\d.]+x"
    row = re.search(rf"\| 1 \| {pair} \| {pair} \| (\d+) / (\d+) \(\+0\.0%\) \| \d+ MiB \|", done.stdout)
    assert row, done.stdout
    assert row.group(1) == row.group(2)
    assert re.search(r"regprobe takes [\d.]+x the registry's limit, median of 1 rounds", done.stdout), done.stdout
    # The httpx-bypass experiment (bench/direct_aiohttp.py) ran too, and found the registry healthy.
    assert re.search(r"\| [\d.]+ ms \| [\d.]+ s, [\d.]+x, [\d.]+ ms \|$", done.stdout, re.MULTILINE), done.stdout


@pytest.mark.skipif(not shutil.which("taskset"), reason="taskset not installed (make deps)")
@pytest.mark.timeout(120)
def test_cost_per_request_side_by_side_keeps_working() -> None:
    """bench/cpu_per_request.py, tiny and on CPU time (callgrind is minutes): one row per tree."""
    tiny = ("--tool", "rusage", "--repositories", "2", "--tags", "2", "--runs", "1")
    done = subprocess.run(
        [sys.executable, "-m", "bench.cpu_per_request", *tiny, f"here={ROOT / 'src'}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert re.search(r"^\| here \| -?[\d.]+ \| -?[\d.]+ \| [\d.]+ \|$", done.stdout, re.MULTILINE), done.stdout

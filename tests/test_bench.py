"""The benchmark, run tiny: it must keep working, and regprobe must issue exactly the minimal request
list (one fetch per tag, per distinct manifest, per distinct blob per repository). Timings are the
benchmark's business (docs/performance.md), never asserted here."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .peers import peer
from .registry import Registry

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


LOOP_TOOLS = ("skopeo", "taskset", "curl", "jq")


@pytest.mark.skipif(
    not all(shutil.which(t) for t in LOOP_TOOLS), reason=f"one of {', '.join(LOOP_TOOLS)} is not installed (make deps)"
)
@pytest.mark.timeout(180)
def test_tiny_side_by_side() -> None:
    """regprobe, the crane loop and the skopeo loop walk the same registry in one run; each saw every tag
    and nothing broken (the benchmark stops otherwise), and regprobe issued exactly its minimal walk."""
    crane = peer("crane")
    done = subprocess.run(
        [sys.executable, "-m", "bench.side_by_side", "--repositories", "2", "--tags", "3", "--jobs", "1,4"],
        cwd=ROOT,
        env={**os.environ, "REGPROBE_PEERS": str(Path(crane).parent)},
        capture_output=True,
        text=True,
        timeout=170,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    minimal = re.search(r"regprobe's minimal walk (\d+) requests", done.stdout)
    assert minimal, done.stdout
    row = re.compile(r"^\| ([^|]+?) \| [^|]+ \| [\d.]+ s \| [\d.]+x \| (\d+) \|", re.MULTILINE)
    rows = {m.group(1): m.group(2) for m in row.finditer(done.stdout)}
    assert set(rows) == {
        "regprobe run",
        "crane loop, JOBS=1",
        "crane loop, JOBS=4",
        "skopeo loop, JOBS=1",
        "skopeo loop, JOBS=4",
    }, done.stdout
    assert rows["regprobe run"] == minimal.group(1)
    assert all(int(requests) > 0 for requests in rows.values())


@pytest.mark.skipif(not all(shutil.which(t) for t in ("skopeo", "curl", "jq")), reason="skopeo/curl/jq not installed")
@pytest.mark.parametrize("loop", ["crane", "skopeo"])
def test_loop_names_the_broken_tag(loop: str, tmp_path: Path) -> None:
    """The scripts the benchmark compares regprobe with really check: a tag whose layer the registry no
    longer has is reported, by name, and the loop exits 1."""
    env = {**os.environ, "CRANE": peer("crane")} if loop == "crane" else dict(os.environ)
    # No descriptor cache: a layer link removed under a caching registry:2 may still be answered from
    # the cache, and crane's --fast asks with HEAD (REGISTRY-FACTS.md).
    registry = Registry(tmp_path / "registry", cache=False).start()
    try:
        registry.push_image("loops/healthy", "v1")
        broken = registry.push_image("loops/broken", "v1")
        registry.push_image("loops/broken", "v2")
        registry.remove_layer_link("loops/broken", broken.layers[-1])
        done = subprocess.run(
            ["bash", str(ROOT / "bench" / "loops" / f"{loop}.sh"), registry.host],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        registry.stop()
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout.splitlines() == ["BROKEN loops/broken:v1", "3 tags, 1 broken"], done.stdout + done.stderr

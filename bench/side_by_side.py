"""regprobe against the scripts a user would write instead, on one registry in one run: a crane loop
(bench/loops/crane.sh: catalog, `crane ls`, `crane validate --fast --remote` per tag) and a skopeo loop
(bench/loops/skopeo.sh: catalog with curl, `skopeo list-tags`, `skopeo copy --all` per tag), each one
tag at a time and with as many tags in flight as regprobe's concurrency (xargs -P).

Each tool walks the same generated registry (bench/gen_storage.py) with the registry pinned to one core
and the tool - every process it starts - to the other (``taskset``), as bench/run_bench.py measures.
Per tool: wall time, the requests the registry answered and the bytes it sent (its access log), the
tool's CPU (its own and its children's, bench/rusage.py) and the registry's (/proc). Every tool must
find every tag and nothing broken, or the run stops.

    python -m bench.side_by_side --repositories 200 --tags 10
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.registry import PEERS, Registry

from bench.gen_storage import generate
from bench.run_bench import REGPROBE, RUN_ARGS, cores, cpu_seconds, pin

HERE = Path(__file__).resolve().parent
#: One access log line (gorilla's combined format): status and bytes sent.
ACCESS = re.compile(r'"[A-Z]+ /v2/\S* HTTP/[\d.]+" (\d{3}) (\d+|-)')
SUMMARY = re.compile(r"^(\d+) tags, (\d+) broken$", re.MULTILINE)


def regprobe_verdict(stdout: str) -> tuple[int, int]:
    """(tags walked, findings) from regprobe's JSON report."""
    entry = json.loads(stdout)["registries"][0]
    return int(entry["images_checked"]), len(entry["findings"])


def loop_verdict(stdout: str) -> tuple[int, int]:
    """(tags checked, tags broken) from a loop's last line."""
    summary = SUMMARY.search(stdout)
    if summary is None:
        raise SystemExit(f"no summary line in the loop's output:\n{stdout[-2000:]}")
    return int(summary.group(1)), int(summary.group(2))


@dataclass(frozen=True)
class Tool:
    name: str
    checks: str  # what it does per tag, for the table
    command: tuple[str, ...]
    env: dict[str, str]
    verdict: Callable[[str], tuple[int, int]] = loop_verdict


@dataclass
class Run:
    seconds: float
    client_cpu: float
    registry_cpu: float
    requests: int
    sent: int  # bytes in response bodies


def tools(config: Path, host: str, crane: str, jobs: list[int], concurrency: int) -> list[Tool]:
    regprobe = Tool(
        "regprobe run",
        f"manifests GET, children GET, one Range byte per distinct blob; {concurrency} requests in flight",
        (*REGPROBE, *RUN_ARGS, str(config)),
        {},
        regprobe_verdict,
    )
    loops = []
    for n in jobs:
        way = "one tag at a time" if n == 1 else f"{n} tags at a time"
        loops.append(
            Tool(
                f"crane loop, JOBS={n}",
                f"`crane validate --fast`: manifests and configs GET, layers HEAD; {way}",
                ("bash", str(HERE / "loops" / "crane.sh"), host),
                {"CRANE": crane, "JOBS": str(n)},
            )
        )
        loops.append(
            Tool(
                f"skopeo loop, JOBS={n}",
                f"`skopeo copy --all` to a scratch dir: every blob downloaded and hashed; {way}",
                ("bash", str(HERE / "loops" / "skopeo.sh"), host),
                {"JOBS": str(n)},
            )
        )
    return [regprobe, *loops]


def measure(tool: Tool, log: Path, registry_pid: int, prefix: tuple[str, ...], tags: int) -> Run:
    """Run ``tool`` once under ``prefix``; check that it saw every tag and found nothing broken."""
    offset = log.stat().st_size
    registry_before = cpu_seconds(registry_pid)
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        usage_file = Path(tmp) / "usage.json"
        proc = subprocess.run(
            [*prefix, sys.executable, "-m", "bench.rusage", str(usage_file), "--", *tool.command],
            capture_output=True,
            text=True,
            env={**os.environ, **tool.env},
            cwd=HERE.parent,
        )
        seconds = time.monotonic() - started
        usage = json.loads(usage_file.read_text())
    registry_cpu = cpu_seconds(registry_pid) - registry_before
    if proc.returncode != 0:
        raise SystemExit(f"{tool.name} exited {proc.returncode}:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    seen, broken = tool.verdict(proc.stdout)
    if (seen, broken) != (tags, 0):
        raise SystemExit(f"{tool.name} saw {seen} of {tags} tags and {broken} broken: not comparable")
    with log.open(errors="replace") as f:
        f.seek(offset)
        answered = ACCESS.findall(f.read())
    sent = sum(int(size) for _, size in answered if size != "-")
    return Run(seconds, usage["cpu"], registry_cpu, len(answered), sent)


def _ratio(value: float, base: float) -> str:
    return f"{value / base:.1f}x" if base else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repositories", type=int, default=200)
    parser.add_argument("--tags", type=int, default=10)
    parser.add_argument("--index-every", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=16, help="regprobe's, and the loops' parallel JOBS")
    parser.add_argument("--rounds", type=int, default=1, help="each tool this many times, interleaved; medians")
    parser.add_argument("--jobs", default="", help="the loops' JOBS, comma-separated (default: 1 and --concurrency)")
    args = parser.parse_args()
    jobs = [int(j) for j in args.jobs.split(",")] if args.jobs else [1, args.concurrency]
    crane = str(PEERS / "crane") if (PEERS / "crane").exists() else shutil.which("crane")
    if crane is None:
        raise SystemExit(f"crane is not installed (looked in {PEERS} and on PATH; see README, 'Peers')")
    for binary in ("docker-registry", "skopeo", "taskset", "curl", "jq"):
        if shutil.which(binary) is None:
            raise SystemExit(f"{binary} is not installed (make deps)")
    pair = cores()
    if pair is None:
        raise SystemExit("the pinned measurement needs two CPUs: one for the registry, one for the client")
    registry_core, client_core = pair
    prefix = ("taskset", "-c", client_core)

    with tempfile.TemporaryDirectory(prefix="regprobe-side-by-side-") as tmp:
        work = Path(tmp)
        registry = Registry(work / "registry", extra={"log": {"level": "error", "accesslog": {"disabled": False}}})
        plan = generate(registry.root, args.repositories, args.tags, args.index_every)
        tags = len(plan.tags)
        config = work / "config.yaml"
        registry.start()
        try:
            config.write_text(
                f"registries:\n  - name: bench\n    url: {registry.url}\n"
                f"concurrency: {args.concurrency}\ndeadline: 3600\n"
            )
            log = registry.workdir / "registry.log"
            pid = registry.proc.pid if registry.proc else 0
            pin(pid, registry_core)
            lineup = tools(config, registry.host, crane, jobs, args.concurrency)
            measure(lineup[0], log, pid, prefix, tags)  # warm the page cache and the registry's descriptor cache
            runs: dict[str, list[Run]] = {tool.name: [] for tool in lineup}
            for _ in range(args.rounds):
                for tool in lineup:
                    runs[tool.name].append(measure(tool, log, pid, prefix, tags))
        finally:
            registry.stop()

    def median(name: str, field: str) -> float:
        return float(statistics.median(getattr(run, field) for run in runs[name]))

    base = lineup[0].name
    print(
        f"\n{args.repositories} repositories x {args.tags} tags = {tags} tags (every {args.index_every}th an "
        f"index of two platforms with attestations); regprobe's minimal walk {len(plan.requests)} requests. "
        f"Registry on core {registry_core}, each tool and its children on core {client_core}; "
        f"median of {args.rounds} round(s).\n"
    )
    print(
        "| tool | per tag | wall | wall vs regprobe | requests | requests vs regprobe | bytes sent by the registry "
        "| tool CPU | tool CPU vs regprobe | registry CPU | registry CPU vs regprobe |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for tool in lineup:
        wall, requests, sent = median(tool.name, "seconds"), median(tool.name, "requests"), median(tool.name, "sent")
        cpu, reg_cpu = median(tool.name, "client_cpu"), median(tool.name, "registry_cpu")
        print(
            f"| {tool.name} | {tool.checks} | {wall:.1f} s | {_ratio(wall, median(base, 'seconds'))} "
            f"| {requests:.0f} | {_ratio(requests, median(base, 'requests'))} | {sent / 2**20:.1f} MiB "
            f"| {cpu:.1f} s | {_ratio(cpu, median(base, 'client_cpu'))} "
            f"| {reg_cpu:.1f} s | {_ratio(reg_cpu, median(base, 'registry_cpu'))} |"
        )


if __name__ == "__main__":
    main()

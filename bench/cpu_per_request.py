"""The client's cost per request, source trees side by side - for changes too small for the wall-clock
benchmark to see on a shared machine (docs/performance.md, issue 22).

Each tree (``NAME=SRC``, SRC a directory holding the ``regprobe`` package, e.g. from ``git archive``) runs
``regprobe run`` over the same storage, interleaved, with the registry on one core and the client on the
other. ``--tool callgrind`` counts instructions (valgrind; deterministic, whatever the load), ``rusage``
CPU time. A run that selects nothing is subtracted: what is left is the walk, over its requests.

    python -m bench.cpu_per_request --tool callgrind --repositories 20 --tags 10 base=/tmp/base/src new=src
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.registry import Registry

from bench.gen_storage import generate
from bench.run_bench import cores, pin


def cost(tool: str, config: Path, src: str, core: str) -> float:
    """Instructions (callgrind) or CPU seconds (rusage) of one ``regprobe run`` with ``src`` first on the path."""
    env = {**os.environ, "PYTHONPATH": src}
    run = (sys.executable, "-m", "regprobe", "run", "--no-push", "--format", "json", "-c", str(config))
    if tool == "callgrind":
        done = subprocess.run(
            ["taskset", "-c", core, "valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *run],
            capture_output=True,
            text=True,
            env=env,
        )
        counted = re.search(r"Collected : (\d+)", done.stderr)
        assert counted, done.stderr[-2000:]
        return float(counted.group(1))
    with tempfile.TemporaryDirectory() as tmp:
        usage = Path(tmp) / "usage.json"
        subprocess.run(
            ["taskset", "-c", core, sys.executable, "-m", "bench.rusage", str(usage), "--", *run],
            capture_output=True,
            env=env,
            cwd=Path(__file__).resolve().parent.parent,
        )
        return float(json.loads(usage.read_text())["cpu"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repositories", type=int, default=20)
    parser.add_argument("--tags", type=int, default=10)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--tool", choices=("callgrind", "rusage"), default="callgrind")
    parser.add_argument("trees", nargs="+", metavar="NAME=SRC")
    args = parser.parse_args()
    trees = dict(tree.split("=", 1) for tree in args.trees)
    pair = cores()
    if pair is None:
        raise SystemExit("needs two CPUs: one for the registry, one for the client")
    registry_core, client_core = pair
    timeout = 300 if args.tool == "callgrind" else 30  # a request takes ~50x longer under valgrind
    with tempfile.TemporaryDirectory(prefix="regprobe-cpu-") as tmp:
        registry = Registry(Path(tmp) / "registry")
        plan = generate(registry.root, args.repositories, args.tags, 5)
        registry.start()
        try:
            assert registry.proc is not None
            pin(registry.proc.pid, registry_core)
            common = f"concurrency: 16\ntimeout: {timeout}\ndeadline: 3600\n"
            walk, nothing = Path(tmp) / "walk.yaml", Path(tmp) / "nothing.yaml"
            walk.write_text(f"registries:\n  - name: bench\n    url: {registry.url}\n{common}")
            nothing.write_text(
                f"registries:\n  - name: bench\n    url: {registry.url}\n"
                f"    repositories: {{include: [none-such]}}\n{common}"
            )
            cost("rusage", walk, next(iter(trees.values())), client_core)  # warm the registry's caches
            walks: dict[str, list[float]] = {name: [] for name in trees}
            starts: dict[str, list[float]] = {name: [] for name in trees}
            for _ in range(args.runs):
                for name, src in trees.items():
                    walks[name].append(cost(args.tool, walk, src, client_core))
                    starts[name].append(cost(args.tool, nothing, src, client_core))
        finally:
            registry.stop()
    requests = len(plan.requests)
    unit, scale = ("k instructions", 1e-3) if args.tool == "callgrind" else ("ms CPU", 1e3)
    print(f"{args.repositories} x {args.tags} tags, {requests} requests a walk, {args.runs} runs per tree")
    print(f"| tree | per request, walk ({unit}) | runs | start-up |\n|---|---|---|---|")
    for name in trees:
        start = statistics.median(starts[name])
        each = sorted((w - start) / requests * scale for w in walks[name])
        print(f"| {name} | {statistics.median(each):.3f} | {', '.join(f'{e:.3f}' for e in each)} | {start:.4g} |")


if __name__ == "__main__":
    main()

"""Side-by-side benchmark on the real registry: regprobe's wall time against the registry's own limit
for the same minimal request list (replayed by wrk), requests regprobe actually issued (from the access
log), peak RSS, and skopeo inspect on a sample of the same tags.

Judged as in production, where the probe never shares the registry's CPUs: each round measures with the
registry pinned to one core and the client (wrk, then regprobe) to another (``taskset``) - the headline
is that ratio, the median of the rounds - and again with both free on all cores, for comparison.

    python -m bench.run_bench --repositories 200 --tags 10 --rounds 3
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
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.registry import Registry

from bench.gen_storage import generate

HERE = Path(__file__).resolve().parent
RUN_ARGS = ("run", "--no-push", "--format", "json", "-c")
REGPROBE = (sys.executable, "-m", "regprobe")
#: The experiment that bypasses httpx's client layer (bench/direct_aiohttp.py), for --with-direct.
DIRECT = (sys.executable, "-m", "bench.direct_aiohttp")
ACCESS = re.compile(r'"(?:GET|HEAD) /v2/\S* HTTP/[\d.]+" \d+ .*"regprobe/')


def cpu_seconds(pid: int) -> float:
    """User + system CPU a running process has used so far (the registry)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cores() -> tuple[str, str] | None:
    """(the registry's core, the client's core), or None where fewer than two are available."""
    available = sorted(os.sched_getaffinity(0))
    return (str(available[0]), str(available[1])) if len(available) >= 2 else None


def pin(pid: int, cpus: str) -> None:
    """Every thread of ``pid`` (the registry's Go runtime has several) onto ``cpus``; threads it starts
    later inherit the mask."""
    subprocess.run(["taskset", "-a", "-p", "-c", cpus, str(pid)], capture_output=True, check=True)


@dataclass
class Measured:
    seconds: float
    client_cpu: float = 0.0
    registry_cpu: float = 0.0
    rss: int = 0


@dataclass
class Round:
    run: Measured
    limit: float  # seconds wrk needs for the minimal list
    limit_cpu: float  # the registry's CPU per request serving wrk
    issued: int  # requests regprobe sent (access log)
    direct: Measured | None  # the httpx-bypass experiment, with --with-direct


def wrk(
    url: str, requests_file: Path, connections: int, seconds: int, registry_pid: int, prefix: tuple[str, ...] = ()
) -> tuple[float, float]:
    """Requests per second wrk sustains over the replay list, and the registry's CPU per request.
    ``prefix`` runs wrk under ``taskset``."""
    env = {**os.environ, "REPLAY_FILE": str(requests_file)}
    before = cpu_seconds(registry_pid)
    out = subprocess.run(
        [*prefix, "wrk", "-t", "2", "-c", str(connections), "-d", f"{seconds}s", "-s", str(HERE / "replay.lua"), url],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout
    spent = cpu_seconds(registry_pid) - before
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    assert rate and total, out
    return float(rate.group(1)), spent / int(total.group(1))


def run_regprobe(
    config: Path,
    transport: str,
    registry_pid: int,
    program: tuple[str, ...] = REGPROBE,
    prefix: tuple[str, ...] = (),
) -> tuple[Measured, dict[str, object]]:
    """Wall seconds, CPU (regprobe's and the registry's), peak RSS and the JSON report of one run."""
    registry_before = cpu_seconds(registry_pid)
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        usage_file = Path(tmp) / "usage.json"
        proc = subprocess.run(
            [*prefix, sys.executable, "-m", "bench.rusage", str(usage_file), "--", *program, *RUN_ARGS, str(config)],
            capture_output=True,
            env={**os.environ, "REGPROBE_HTTP_TRANSPORT": transport},
            cwd=HERE.parent,
        )
        seconds = time.monotonic() - started
        usage = json.loads(usage_file.read_text())
    measured = Measured(
        seconds=seconds,
        client_cpu=usage["cpu"],
        registry_cpu=cpu_seconds(registry_pid) - registry_before,
        rss=usage["maxrss"],
    )
    stdout, stderr = proc.stdout, proc.stderr
    if proc.returncode != 0:
        raise SystemExit(f"regprobe exited {proc.returncode}: {stderr.decode()[-2000:]}")
    return measured, json.loads(stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repositories", type=int, default=200)
    parser.add_argument("--tags", type=int, default=10)
    parser.add_argument("--index-every", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--wrk-seconds", type=int, default=5)
    parser.add_argument("--skopeo-sample", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--scale-only", action="store_true", help="one cold regprobe run, no wrk or skopeo: memory and wall at size"
    )
    parser.add_argument("--transport", choices=("aiohttp", "httpx"), default="aiohttp", help="what runs under httpx")
    parser.add_argument(
        "--with-direct",
        action="store_true",
        help="each round also runs bench/direct_aiohttp.py (httpx's client layer bypassed), for comparison",
    )
    args = parser.parse_args()
    for tool in ("docker-registry", "wrk", "skopeo", "taskset"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed (make deps)")
    pair = cores()
    if pair is None:
        raise SystemExit("the pinned measurement needs two CPUs: one for the registry, one for the client")
    registry_core, client_core = pair
    everywhere = ",".join(str(c) for c in sorted(os.sched_getaffinity(0)))

    with tempfile.TemporaryDirectory(prefix="regprobe-bench-") as tmp:
        work = Path(tmp)
        registry = Registry(work / "registry", extra={"log": {"level": "error", "accesslog": {"disabled": False}}})
        t0 = time.monotonic()
        plan = generate(registry.root, args.repositories, args.tags, args.index_every)
        generated = time.monotonic() - t0
        replay = work / "requests.tsv"
        replay.write_text(
            "".join(f"{m}\t{p}\t{h.get('Accept', '')}\t{h.get('Range', '')}\n" for m, p, h in plan.requests)
        )
        config = work / "config.yaml"
        registry.start()
        try:
            config.write_text(
                f"registries:\n  - name: bench\n    url: {registry.url}\n"
                f"concurrency: {args.concurrency}\ndeadline: 3600\n"
            )
            log = registry.workdir / "registry.log"
            pid = registry.proc.pid if registry.proc else 0
            if args.scale_only:
                run, report = run_regprobe(config, args.transport, pid)
                entry = report["registries"][0]  # type: ignore[index]
                assert entry["images_checked"] == len(plan.tags) and not entry["findings"], entry
                with log.open(errors="replace") as f:
                    issued = len(ACCESS.findall(f.read()))
                print(
                    f"\n{len(plan.tags)} tags, {len(plan.requests)} minimal requests (generated in {generated:.0f}s): "
                    f"regprobe {run.seconds:.1f} s ({run.seconds / issued * 1000:.2f} ms per request), "
                    f"{issued} requests issued, CPU per request: regprobe {run.client_cpu / issued * 1e3:.2f} ms, "
                    f"registry {run.registry_cpu / issued * 1e3:.2f} ms; peak RSS {run.rss / 2**20:.0f} MiB"
                )
                return
            run_regprobe(config, args.transport, pid)  # warm the page cache and the registry's descriptor cache
            rows = []

            def measure(pinned: bool) -> Round:
                pin(pid, registry_core if pinned else everywhere)
                prefix = ("taskset", "-c", client_core) if pinned else ()
                # The registry's limit: the faster of 16 and 64 connections; its CPU per request there.
                limit_rps, limit_cpu = max(
                    wrk(registry.url, replay, c, args.wrk_seconds, pid, prefix) for c in (16, 64)
                )
                before = log.stat().st_size
                run, report = run_regprobe(config, args.transport, pid, prefix=prefix)
                with log.open(errors="replace") as f:
                    f.seek(before)
                    issued = len(ACCESS.findall(f.read()))
                entry = report["registries"][0]  # type: ignore[index]
                assert entry["images_checked"] == len(plan.tags) and not entry["findings"], entry
                direct = run_regprobe(config, args.transport, pid, DIRECT, prefix)[0] if args.with_direct else None
                return Round(run, len(plan.requests) / limit_rps, limit_cpu, issued, direct)

            for _ in range(args.rounds):
                rows.append((measure(pinned=True), measure(pinned=False)))
            pin(pid, everywhere)
            sample = plan.tags[: args.skopeo_sample]
            t0 = time.monotonic()
            for repo, tag in sample:
                subprocess.run(
                    ["skopeo", "inspect", "--tls-verify=false", f"docker://{registry.host}/{repo}:{tag}"],
                    capture_output=True,
                    check=True,
                )
            skopeo_per_tag = (time.monotonic() - t0) / len(sample)
        finally:
            registry.stop()

    tags, minimal = len(plan.tags), len(plan.requests)
    print(
        f"\n{args.repositories} repositories x {args.tags} tags = {tags} tags "
        f"(every {args.index_every}th an index with attestations); minimal walk {minimal} requests; "
        f"storage generated in {generated:.1f}s; regprobe concurrency {args.concurrency}, "
        f"httpx over {args.transport}\n"
    )
    headline = statistics.median(p.run.seconds / p.limit for p, _ in rows)
    print(
        f"Headline (registry on core {registry_core}, client on core {client_core}): regprobe takes "
        f"{headline:.2f}x the registry's limit, median of {len(rows)} rounds (target: within 1.15x)\n"
    )
    print(
        "| round | pinned: regprobe wall | pinned: registry limit (wrk) | pinned: ratio "
        "| shared cores: regprobe wall | shared: limit | shared: ratio | requests issued / minimal | peak RSS "
        "| CPU per request (pinned): regprobe | registry, serving regprobe | registry, serving wrk |"
        + (" experiment, pinned: httpx bypassed (wall, ratio, CPU per request) |" if args.with_direct else "")
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|" + ("---|" if args.with_direct else ""))
    for i, (p, shared) in enumerate(rows, 1):
        extra = ""
        if p.direct is not None:
            per_request = p.direct.client_cpu / p.issued * 1e3
            extra = f" {p.direct.seconds:.2f} s, {p.direct.seconds / p.limit:.2f}x, {per_request:.2f} ms |"
        print(
            f"| {i} | {p.run.seconds:.2f} s | {p.limit:.2f} s | {p.run.seconds / p.limit:.2f}x "
            f"| {shared.run.seconds:.2f} s | {shared.limit:.2f} s | {shared.run.seconds / shared.limit:.2f}x "
            f"| {p.issued} / {minimal} ({(p.issued - minimal) / minimal:+.1%}) | {p.run.rss / 2**20:.0f} MiB "
            f"| {p.run.client_cpu / p.issued * 1e3:.2f} ms | {p.run.registry_cpu / p.issued * 1e3:.2f} ms "
            f"| {p.limit_cpu * 1e3:.2f} ms |{extra}"
        )
    print(
        f"\nskopeo inspect: {skopeo_per_tag * 1000:.0f} ms per tag on a sample of {len(sample)}; "
        f"{skopeo_per_tag * tags:.0f} s extrapolated to all {tags} tags (one tag at a time)."
    )


if __name__ == "__main__":
    main()

"""Memory of ``regprobe serve`` under a burst of registry events: 10,000 events posted as fast as the
client can, one per request as distribution sends them, to a real serve (events on, the default
``max_pending`` of 1,000 and settle time of 2 s) in front of a real registry:2.

Two bursts: 10,000 events for 10,000 repositories (the queue bound is hit: 1,000 wait, 9,000 are refused
and counted), then 10,000 pushes of distinct tags of one repository (coalesced into one re-check, its
tags bounded). RSS and tracemalloc (current and peak) of the serve process are read before, right after
each burst, and once its re-checks are done; the numbers go in docs/performance.md.

    python -m bench.events_burst [--events 10000] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SECRET = "bench-secret"
MiB = 1 << 20


# --- the serve process -----------------------------------------------------------------------------------


def serve(config: str, port: int, report: str) -> None:
    """Run serve in this process, tracemalloc on; SIGUSR1 writes RSS and traced memory to ``report``."""
    tracemalloc.start()
    from regprobe import config as config_mod
    from regprobe.serve.app import Server

    def snapshot(*_: Any) -> None:
        current, peak = tracemalloc.get_traced_memory()
        rss = int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        Path(report).write_text(json.dumps({"rss": rss, "traced": current, "traced_peak": peak}))

    signal.signal(signal.SIGUSR1, snapshot)
    cfg = config_mod.load(config)
    asyncio.run(Server(cfg, 3600, None).run("127.0.0.1", port, "bench"))


# --- the benchmark -----------------------------------------------------------------------------------------


def envelope(i: int, repository: str, tag: str) -> bytes:
    event = {"id": f"burst-{i}", "action": "push", "target": {"repository": repository, "tag": tag}}
    return json.dumps({"events": [event]}).encode()


async def burst(url: str, bodies: list[bytes], concurrency: int) -> float:
    slots = asyncio.Semaphore(concurrency)
    headers = {"Authorization": f"Bearer {SECRET}", "Content-Type": "application/json"}
    async with httpx.AsyncClient(timeout=30) as client:

        async def one(body: bytes) -> None:
            async with slots:
                response = await client.post(url, content=body, headers=headers)
                assert response.status_code in (200, 202), response.text

        started = time.monotonic()
        await asyncio.gather(*(one(b) for b in bodies))
        return time.monotonic() - started


def metric(base: str, name: str, **labels: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    total = 0.0
    for family in text_string_to_metric_families(httpx.get(f"{base}/metrics", timeout=10).text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--serve", nargs=3, metavar=("CONFIG", "PORT", "REPORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve[0], int(args.serve[1]), args.serve[2])
        return

    from tests.registry import Registry, free_port

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        registry = Registry(work / "registry").start()
        secret = work / "secret"
        secret.write_text(SECRET)
        config = work / "config.yaml"
        config.write_text(
            json.dumps(
                {
                    "registries": [{"name": "bench", "url": registry.url}],
                    "serve": {"events": {"secret_file": str(secret)}},
                }
            )
        )
        port, report = free_port(), work / "report.json"
        base = f"http://127.0.0.1:{port}"
        events_url = f"{base}/events?registry=bench"
        log = open(work / "serve.log", "wb")  # noqa: SIM115 - lives as long as the process
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench.events_burst", "--serve", str(config), str(port), str(report)],
            cwd=Path(__file__).resolve().parent.parent,
            stdout=log,
            stderr=log,
        )
        rows: list[tuple[str, dict[str, int], str]] = []

        def measure(what: str, note: str = "") -> None:
            report.unlink(missing_ok=True)
            proc.send_signal(signal.SIGUSR1)
            deadline = time.monotonic() + 10
            while not report.exists() or not report.read_text():
                if time.monotonic() > deadline:
                    raise SystemExit("serve did not report its memory")
                time.sleep(0.05)
            rows.append((what, json.loads(report.read_text()), note))

        def drained() -> None:
            deadline = time.monotonic() + 600
            while (
                metric(base, "regprobe_event_queue_depth")
                or "waiting for its re-check" in httpx.get(base, timeout=10).text
            ):
                if time.monotonic() > deadline:
                    raise SystemExit("the re-checks did not drain within 10 minutes")
                time.sleep(0.5)

        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit(f"serve did not start: {(work / 'serve.log').read_text()[-2000:]}")
                time.sleep(0.1)
            time.sleep(1)  # the first scheduled run (of an empty registry) is over
            measure("before")

            spread = [envelope(i, f"bench/r{i}", "v1") for i in range(args.events)]
            seconds = asyncio.run(burst(events_url, spread, args.concurrency))
            queued = metric(base, "regprobe_event_queue_depth")
            dropped = metric(base, "regprobe_events_rejected_total", reason="queue_full")
            measure(
                f"{args.events} events, {args.events} repositories",
                f"{seconds:.1f} s ({args.events / seconds:.0f}/s); {queued:.0f} queued, {dropped:.0f} dropped",
            )
            drained()
            measure("re-checks done")

            one = [envelope(args.events + i, "bench/one", f"t{i}") for i in range(args.events)]
            seconds = asyncio.run(burst(events_url, one, args.concurrency))
            measure(
                f"{args.events} events, 1 repository",
                f"{seconds:.1f} s ({args.events / seconds:.0f}/s); coalesced into one re-check",
            )
            drained()
            measure("re-checks done")
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
            registry.stop()

    print("| when | RSS | tracemalloc current | tracemalloc peak | |")
    print("|---|---|---|---|---|")
    for what, numbers, note in rows:
        print(
            f"| {what} | {numbers['rss'] / MiB:.1f} MiB | {numbers['traced'] / MiB:.2f} MiB"
            f" | {numbers['traced_peak'] / MiB:.2f} MiB | {note} |"
        )


if __name__ == "__main__":
    main()

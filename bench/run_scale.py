"""Continuous verification at scale, on the real registry: for a given ``budget.requests``, how many runs
cover every tag, what each run requests (the listing, and the verification the budget bounds), the
ledger's size on disk, each run's peak RSS, and the time to choose work from the ledger.

The registry serves a storage tree written by bench/gen_storage.py (``--storage DIR`` keeps it, so the
8 GB of a 100,000-tag tree are written once). Each run is ``regprobe run`` as a process of its own, as
a CronJob runs it, with ``state_dir`` and the budget; runs go on until the ledger says every tag was
verified within the window, then one more (steady state). Requests are counted in the registry's
access log: catalog and tag-list pages are the listing, everything else verification.

The time to choose work is measured on a copy of the ledger the runs left: what every run does before
it verifies - the listing recorded (every tag's ``listed_at``) and the plan read to its end (broken,
new, least recently verified). ``--grow N`` then copies the ledger's rows under new repository names
(and blob digests) until it holds N tags, and measures the same at sizes no registry here can serve.

    python -m bench.run_scale --repositories 1000 --tags 20 --budget-requests 20000
    python -m bench.run_scale --repositories 5000 --tags 20 --budget-requests 100000 \\
        --storage /var/tmp/bench-100k --grow 1000000 --grow 10000000
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.registry import FilesystemStorage, Registry

from bench.gen_storage import generate
from regprobe.ledger import Ledger

HERE = Path(__file__).resolve().parent
REGISTRY_NAME = "bench"
#: One access-log line per request regprobe sent: (path).
ACCESS = re.compile(r'"(?:GET|HEAD) (/v2/\S*) HTTP/[\d.]+" \d+ .*"regprobe/')
LISTING = re.compile(r"^/v2/(?:_catalog|.+/tags/list)")


@dataclass
class Run:
    seconds: float
    cpu: float
    rss: int
    code: int
    stopped: str
    verified: int
    known: int
    covered: int
    listing: int  # catalog and tag-list requests (access log)
    verification: int  # every other request (access log)
    reported: int  # requests the report counts (retries included once each)


def run_once(config: Path, log: Path) -> Run:
    """One ``regprobe run`` as its own process (from bench/rusage.py: its own CPU and peak RSS)."""
    before = log.stat().st_size
    with tempfile.TemporaryDirectory() as tmp:
        usage_file = Path(tmp) / "usage.json"
        started = time.monotonic()
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "bench.rusage",
                str(usage_file),
                "--",
                sys.executable,
                "-m",
                "regprobe",
                "run",
                "--no-push",
                "--format",
                "json",
                "-q",
                "-c",
                str(config),
            ],
            capture_output=True,
            cwd=HERE.parent,
        )
        seconds = time.monotonic() - started
        usage = json.loads(usage_file.read_text())
    if proc.returncode not in (0, 1):
        raise SystemExit(f"regprobe exited {proc.returncode}: {proc.stderr.decode()[-2000:]}")
    entry = json.loads(proc.stdout)["registries"][0]
    with log.open(errors="replace") as f:
        f.seek(before)
        paths = ACCESS.findall(f.read())
    listing = sum(1 for p in paths if LISTING.match(p))
    coverage = entry["coverage"]
    return Run(
        seconds=seconds,
        cpu=usage["cpu"],
        rss=usage["maxrss"],
        code=proc.returncode,
        stopped=entry["stopped"],
        verified=coverage["verified"],
        known=coverage["known"],
        covered=coverage["verified_within_window"],
        listing=listing,
        verification=len(paths) - listing,
        reported=sum(v for k, v in entry["requests"].items() if k != "retried"),
    )


def ledger_files(state_dir: Path) -> list[Path]:
    return sorted(p for p in state_dir.iterdir() if ".ledger.sqlite" in p.name and not p.name.endswith(".lock"))


def ledger_bytes(path: Path) -> int:
    """The database and its write-ahead log, as they sit on the volume."""
    return sum(p.stat().st_size for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists())


@dataclass
class Choosing:
    tags: int
    bytes: int
    #: (wall, CPU) seconds of each step: the machine is shared, so CPU says what the step costs.
    open: tuple[float, float]  # lock, open and check (quick_check) the ledger
    listing: tuple[float, float]  # the listing recorded: every tag's listed_at, repository by repository
    first: tuple[float, float]  # the plan's first tag
    plan: tuple[float, float]  # the plan read to its end


def _clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _since(then: tuple[float, float], now: tuple[float, float]) -> tuple[float, float]:
    return now[0] - then[0], now[1] - then[1]


def time_to_choose(path: Path) -> Choosing:
    """On ``path`` (a copy: it is written), what a run does before verifying: open the ledger, record the
    listing, then read the plan (broken, new, least recently verified). The ledger's own code, called as
    a run calls it; the listing is fed from the ledger's own rows, a repository at a time."""
    size = ledger_bytes(path)
    source = sqlite3.connect(path)
    try:
        (identity,) = source.execute("SELECT value FROM meta WHERE key = 'identity'").fetchone()
        started = _clock()
        ledger = Ledger.open(path, identity=identity)
        opened = _clock()
        try:
            now = time.time()
            rows = source.execute("SELECT repository, tag FROM tags ORDER BY repository, tag")
            for repository, group in itertools.groupby(rows, key=lambda row: str(row[0])):
                ledger.note_listed(repository, [str(tag) for _, tag in group], now)
            listed = _clock()
            plan = ledger.plan(now)
            next(plan)
            first = _clock()
            count = 1 + sum(1 for _ in plan)
            done = _clock()
        finally:
            ledger.close()
    finally:
        source.close()
    return Choosing(
        count, size, _since(started, opened), _since(opened, listed), _since(listed, first), _since(listed, done)
    )


def copy_ledger(source: Path, target: Path) -> Path:
    """A consistent copy (SQLite's backup: the write-ahead log included)."""
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    return target


def grow(path: Path, tags: int) -> None:
    """Copy the ledger's rows under new names until it holds about ``tags`` tags: each copy renames the
    repository (tags, objects) or the digest (blobs), so keys stay unique and the shape stays the real
    one - same tags per repository, objects per tag, verification times."""
    with sqlite3.connect(path) as db:
        (base,) = db.execute("SELECT count(*) FROM tags").fetchone()
        tables = [name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        plans = []
        for table in tables:
            columns = [(row[1], row[5]) for row in db.execute(f"PRAGMA table_info({table})")]
            keys = [name for name, pk in sorted(columns, key=lambda c: c[1]) if pk]
            if not keys or table == "meta":
                continue
            renamed = "repository" if "repository" in keys else keys[0]
            names = [name for name, _ in columns]
            plans.append((table, renamed, names))
        for copy in range(1, -(-tags // base)):
            for table, renamed, names in plans:
                select = ", ".join(f"{n} || '~{copy}'" if n == renamed else n for n in names)
                db.execute(
                    f"INSERT INTO {table} ({', '.join(names)}) SELECT {select} FROM {table}"
                    f" WHERE {renamed} NOT LIKE '%~%'"
                )
            db.commit()
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repositories", type=int, default=1000)
    parser.add_argument("--tags", type=int, default=20, help="tags per repository")
    parser.add_argument("--index-every", type=int, default=5)
    parser.add_argument("--budget-requests", type=int, required=True, help="budget.requests of every run")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--window", default="24h", help="coverage.window")
    parser.add_argument("--max-runs", type=int, default=50)
    parser.add_argument("--storage", type=Path, help="keep the generated storage here (reused when present)")
    parser.add_argument("--grow", type=int, action="append", default=[], help="also measure at this many tags")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="regprobe-scale-") as tmp:
        work = Path(tmp)
        root = args.storage or work / "storage"
        marker = root / "generated.json"
        wanted = {"repositories": args.repositories, "tags": args.tags, "index_every": args.index_every}
        generated = 0.0
        if not (marker.exists() and json.loads(marker.read_text()) == wanted):
            shutil.rmtree(root, ignore_errors=True)
            t0 = time.monotonic()
            generate(root, args.repositories, args.tags, args.index_every)
            generated = time.monotonic() - t0
            marker.write_text(json.dumps(wanted))
        access = {"log": {"level": "error", "accesslog": {"disabled": False}}}
        registry = Registry(work / "registry", storage=FilesystemStorage(root), extra=access)
        state_dir = work / "state"
        config = work / "config.yaml"
        registry.start()
        runs: list[Run] = []
        try:
            config.write_text(
                f"registries:\n  - name: {REGISTRY_NAME}\n    url: {registry.url}\n"
                f"state_dir: {state_dir}\ncoverage:\n  window: {args.window}\n"
                f"budget:\n  requests: {args.budget_requests}\n"
                f"concurrency: {args.concurrency}\ndeadline: 7200\n"
            )
            log = registry.workdir / "registry.log"
            while len(runs) < args.max_runs:
                run = run_once(config, log)
                runs.append(run)
                print(
                    f"run {len(runs)}: {run.stopped}, {run.verified} tags verified, {run.covered}/{run.known} "
                    f"covered, {run.listing} + {run.verification} requests, {run.seconds:.0f} s",
                    file=sys.stderr,
                )
                if run.covered == run.known and runs[:-1] and runs[-2].covered == runs[-2].known:
                    break  # covered, and one more run in steady state
        finally:
            registry.stop()

        (ledger,) = ledger_files(state_dir)
        on_disk = ledger_bytes(ledger)
        measured = [time_to_choose(copy_ledger(ledger, work / "copy.sqlite"))]
        for size in args.grow:
            grown = copy_ledger(ledger, work / f"grown-{size}.sqlite")
            t0 = time.monotonic()
            grow(grown, size)
            print(f"grown to {size} tags in {time.monotonic() - t0:.0f} s", file=sys.stderr)
            measured.append(time_to_choose(grown))
            grown.unlink()

    tags = args.repositories * args.tags
    full = next((i for i, r in enumerate(runs, 1) if r.covered == r.known), None)
    print(
        f"\n{args.repositories} repositories x {args.tags} tags = {tags} tags (every {args.index_every}th an "
        f"index with attestations); budget.requests {args.budget_requests}, concurrency {args.concurrency}"
        + (f"; storage generated in {generated:.0f} s" if generated else "; storage reused")
        + "\n"
    )
    print(
        "| run | stopped | tags verified | covered / known | listing requests | verification requests "
        "| verification per tag | wall | CPU | peak RSS |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for i, r in enumerate(runs, 1):
        per_tag = r.verification / r.verified if r.verified else 0.0
        print(
            f"| {i} | {r.stopped} | {r.verified} | {r.covered} / {r.known} | {r.listing} | {r.verification} "
            f"| {per_tag:.2f} | {r.seconds:.1f} s | {r.cpu:.1f} s | {r.rss / 2**20:.0f} MiB |"
        )
    over = [r for r in runs if r.verification > args.budget_requests]
    print(
        f"\nRuns per full coverage: {full if full is not None else f'more than {len(runs)}'}; verification "
        f"requests per run at most {max(r.verification for r in runs)} (budget {args.budget_requests}"
        + (f", exceeded by {len(over)} runs" if over else ", never exceeded")
        + f"); report and access log agree on {sum(r.reported == r.listing + r.verification for r in runs)} "
        f"of {len(runs)} runs; peak RSS at most {max(r.rss for r in runs) / 2**20:.0f} MiB; the ledger "
        f"the runs left: {on_disk / 2**20:.1f} MiB on disk.\n"
    )
    print("Seconds of wall time (of CPU time) each step took:\n")
    print(
        "| tags in the ledger | ledger (compacted copy) | per tag | open and check | listing recorded "
        "| plan: first tag | plan: every tag |"
    )
    print("|---|---|---|---|---|---|---|")
    for m in measured:
        steps = " | ".join(f"{wall:.2f} s ({cpu:.2f} s)" for wall, cpu in (m.open, m.listing, m.first, m.plan))
        print(f"| {m.tags} | {m.bytes / 2**20:.1f} MiB | {m.bytes / m.tags:.0f} B | {steps} |")


if __name__ == "__main__":
    main()

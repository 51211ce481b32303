"""What the rolling digest scrub costs per byte, on the real registry: regprobe's CPU and the registry's
CPU per GiB downloaded and hashed, and the throughput of one run's scrub.

Writes a storage tree of ``--images`` single-layer images with layers of ``--layer-mib`` MiB each
(straight into storage, as bench/gen_storage.py does), then runs ``regprobe run`` twice with a ledger:
once with the scrub off (verification only: the ledger learns the blobs and their sizes), once with
``scrub.bytes_per_run`` large enough to hash every blob. The difference between the two runs is the
scrub's.

    python -m bench.scrub_cost --images 16 --layer-mib 64
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.registry import Registry

from bench.gen_storage import OCI_CONFIG, OCI_LAYER, Writer
from bench.run_bench import run_regprobe
from regprobe.mediatypes import OCI_MANIFEST


def write_images(root: Path, images: int, layer_bytes: int) -> int:
    """``images`` repositories of one tag each, a layer of ``layer_bytes`` each; returns the bytes stored."""
    w = Writer(root)
    stored = 0
    for i in range(images):
        repository = f"scrub/app{i:03d}"
        seed = hashlib.sha256(repository.encode()).digest()
        layer = (seed * (layer_bytes // len(seed) + 1))[:layer_bytes]
        config = json.dumps({"architecture": "amd64", "os": "linux", "i": i}).encode()
        digests = {w.blob(config): len(config), w.blob(layer): len(layer)}
        for digest in digests:
            w.layer_link(repository, digest)
        (config_digest, config_size), (layer_digest, size) = digests.items()
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": config_size},
            "layers": [{"mediaType": OCI_LAYER, "digest": layer_digest, "size": size}],
        }
        top = w.blob(json.dumps(manifest).encode())
        w.revision(repository, top)
        w.tag(repository, "v1", top)
        stored += size + config_size
    return stored


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--layer-mib", type=int, default=64)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="regprobe-scrub-") as tmp:
        work = Path(tmp)
        registry = Registry(work / "registry")
        stored = write_images(registry.root, args.images, args.layer_mib << 20)
        registry.start()
        try:
            pid = registry.proc.pid if registry.proc else 0
            base = (
                f"registries:\n  - name: bench\n    url: {registry.url}\nstate_dir: {work / 'state'}\n"
                "deadline: 3600\ntimeout: 300\n"
            )
            verify = work / "verify.yaml"
            verify.write_text(base)
            scrubbing = work / "scrub.yaml"
            scrubbing.write_text(base + f"scrub:\n  bytes_per_run: {stored}\n")
            # Both files read through the page cache, as a registry's hot storage would be.
            for path in registry.root.rglob("data"):
                path.read_bytes()
            plain, _ = run_regprobe(verify, "aiohttp", pid)
            started = time.monotonic()
            scrubbed, report = run_regprobe(scrubbing, "aiohttp", pid)
            wall = time.monotonic() - started
        finally:
            registry.stop()
    entry = report["registries"][0]  # type: ignore[index]
    read = entry["scrub"]["bytes"]
    gib = read / 2**30
    assert read >= stored * 0.99 and not entry["findings"], entry
    print(
        f"\n{args.images} blobs of {args.layer_mib} MiB ({stored / 2**30:.2f} GiB stored), "
        f"{entry['scrub']['blobs']} scrubbed, {gib:.2f} GiB read in one run ({wall:.1f} s wall, "
        f"{gib / wall * 1024:.0f} MiB/s):\n"
        f"regprobe {(scrubbed.client_cpu - plain.client_cpu) / gib:.2f} s of CPU per GiB, "
        f"the registry {(scrubbed.registry_cpu - plain.registry_cpu) / gib:.2f} s per GiB "
        "(the scrub run less the run without it)"
    )


if __name__ == "__main__":
    main()

"""Writes a synthetic registry:2 filesystem storage tree directly - fast, any size - and the minimal
list of requests a complete walk of it needs.

Layout per repository: one base layer shared by every tag of the repository; each tag is either a
single-platform OCI image (base + one layer of its own) or, for every ``index_every``-th tag, an OCI
index of two platforms plus a BuildKit attestation manifest per platform.

The walk also asks, once per run, whether the registry serves the OCI referrers API: registry:2 answers
404, no fallback tag (``sha256-<hex>``) is listed, so no manifest's referrers cost a request more.

    python -m bench.gen_storage ROOT --repositories 100 --tags 10
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from regprobe.mediatypes import ACCEPT, OCI_INDEX, OCI_MANIFEST

OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
IN_TOTO = "application/vnd.in-toto+json"


@dataclass
class Plan:
    """What a complete, minimal walk requests: (method, path, headers)."""

    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    tags: list[tuple[str, str]] = field(default_factory=list)


class Writer:
    def __init__(self, root: Path) -> None:
        self.v2 = root / "docker" / "registry" / "v2"
        self.written: set[str] = set()

    def blob(self, data: bytes) -> str:
        hexd = hashlib.sha256(data).hexdigest()
        if hexd not in self.written:
            directory = self.v2 / "blobs" / "sha256" / hexd[:2] / hexd
            directory.mkdir(parents=True, exist_ok=True)
            (directory / "data").write_bytes(data)
            self.written.add(hexd)
        return "sha256:" + hexd

    def link(self, path: Path, digest: str) -> None:
        path.mkdir(parents=True, exist_ok=True)
        (path / "link").write_text(digest)

    def layer_link(self, repo: str, digest: str) -> None:
        self.link(self.v2 / "repositories" / repo / "_layers" / "sha256" / digest[7:], digest)

    def revision(self, repo: str, digest: str) -> None:
        self.link(self.v2 / "repositories" / repo / "_manifests" / "revisions" / "sha256" / digest[7:], digest)

    def tag(self, repo: str, tag: str, digest: str) -> None:
        base = self.v2 / "repositories" / repo / "_manifests" / "tags" / tag
        self.link(base / "current", digest)
        self.link(base / "index" / "sha256" / digest[7:], digest)


def _bytes(*parts: object, size: int = 512) -> bytes:
    seed = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return (seed * (size // len(seed) + 1))[:size]


class _Repository:
    """Writes one repository's images and records the requests a walk of it needs."""

    def __init__(self, writer: Writer, plan: Plan, name: str) -> None:
        self.w, self.plan, self.name = writer, plan, name
        self.checked: set[str] = set()  # blobs: one check per repository
        self.manifests: set[str] = set()  # index children: one GET each

    def image(self, tag: str, platform: str, attestation_of: str | None = None) -> tuple[str, int]:
        # Configs shaped as docker and BuildKit write them (crane validate refuses anything else: no
        # rootfs, or an index child whose config lacks the platform the index names). The layers are
        # not real gzip tarballs, so only a validation that does not decompress them - regprobe's,
        # `crane validate --fast`, a copy - accepts them; diff_ids are the bytes' own digests.
        if attestation_of:
            statement = {"_type": "https://in-toto.io/Statement/v0.1", "subject": attestation_of}
            layers, layer_type = [json.dumps(statement).encode()], IN_TOTO
            os_, arch, labels = "unknown", "unknown", {}
        else:
            layers, layer_type = [_bytes(self.name, "base", size=2048), _bytes(self.name, tag, platform)], OCI_LAYER
            os_, arch, labels = "linux", platform, {"tag": tag}
        diff_ids = ["sha256:" + hashlib.sha256(data).hexdigest() for data in layers]
        config = json.dumps(
            {
                "architecture": arch,
                "os": os_,
                "config": {"Labels": labels} if labels else {},
                "rootfs": {"type": "layers", "diff_ids": diff_ids},
            }
        ).encode()
        config_digest = self.w.blob(config)
        self.w.layer_link(self.name, config_digest)
        descs = []
        sizes = {config_digest: len(config)}
        for data in layers:
            digest = self.w.blob(data)
            self.w.layer_link(self.name, digest)
            descs.append({"mediaType": layer_type, "digest": digest, "size": len(data)})
            sizes[digest] = len(data)
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config)},
            "layers": descs,
        }
        body = json.dumps(manifest).encode()
        digest = self.w.blob(body)
        self.w.revision(self.name, digest)
        for blob, size in sizes.items():
            if blob not in self.checked:
                self.checked.add(blob)
                last = f"bytes={size - 1}-{size - 1}"  # what blob_check: range asks for
                self.plan.requests.append(("GET", f"/v2/{self.name}/blobs/{blob}", {"Range": last}))
        return digest, len(body)

    def index(self, tag: str) -> str:
        entries: list[dict[str, object]] = []
        for arch in ("amd64", "arm64"):
            digest, size = self.image(tag, arch)
            platform = {"architecture": arch, "os": "linux"}
            entries.append({"mediaType": OCI_MANIFEST, "digest": digest, "size": size, "platform": platform})
            att, att_size = self.image(tag, arch, attestation_of=digest)
            entries.append(
                {
                    "mediaType": OCI_MANIFEST,
                    "digest": att,
                    "size": att_size,
                    "platform": {"architecture": "unknown", "os": "unknown"},
                    "annotations": {
                        "vnd.docker.reference.type": "attestation-manifest",
                        "vnd.docker.reference.digest": digest,
                    },
                }
            )
        body = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}).encode()
        top = self.w.blob(body)
        self.w.revision(self.name, top)
        for entry in entries:
            child = str(entry["digest"])
            if child not in self.manifests:
                self.manifests.add(child)
                self.plan.requests.append(("GET", f"/v2/{self.name}/manifests/{child}", {"Accept": ACCEPT}))
        return top


def generate(
    root: Path, repositories: int, tags: int, index_every: int = 5, page: int = 1000, prefix: str = "bench"
) -> Plan:
    """``prefix``: the first component of every repository name (tests keep apart by it)."""
    w = Writer(root)
    plan = Plan()
    names = sorted(f"{prefix}/team{r // 50:03d}/app{r:05d}" for r in range(repositories))
    for start in range(0, len(names), page):
        last = f"&last={names[start - 1]}" if start else ""
        plan.requests.append(("GET", f"/v2/_catalog?n={page}{last}", {"Accept": "application/json"}))
    for name in names:
        plan.requests.append(("GET", f"/v2/{name}/tags/list?n={page}", {"Accept": "application/json"}))
        repo = _Repository(w, plan, name)
        for t in range(tags):
            tag = f"v{t}"
            top = repo.index(tag) if index_every and t % index_every == 0 else repo.image(tag, "amd64")[0]
            w.tag(name, tag, top)
            plan.requests.append(("GET", f"/v2/{name}/manifests/{tag}", {"Accept": ACCEPT}))
            plan.tags.append((name, tag))
            if len(plan.tags) == 1:  # the referrers API, asked about the first manifest walked
                plan.requests.append(("GET", f"/v2/{name}/referrers/{top}", {"Accept": OCI_INDEX}))
    return plan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--repositories", type=int, default=100)
    parser.add_argument("--tags", type=int, default=10, help="tags per repository")
    parser.add_argument("--index-every", type=int, default=5, help="every Nth tag is a multi-platform index (0: none)")
    args = parser.parse_args()
    plan = generate(args.root, args.repositories, args.tags, args.index_every)
    (args.root / "requests.json").write_text(json.dumps(plan.requests))
    print(f"{len(plan.tags)} tags, {len(plan.requests)} requests in a minimal walk, under {os.fspath(args.root)}")


if __name__ == "__main__":
    main()

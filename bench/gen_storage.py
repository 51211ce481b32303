"""Writes a synthetic registry:2 filesystem storage tree directly - fast, any size - and the minimal
list of requests a complete walk of it needs.

Layout per repository: one base layer shared by every tag of the repository; each tag is either a
single-platform OCI image (base + one layer of its own) or, for every ``index_every``-th tag, an OCI
index of two platforms plus a BuildKit attestation manifest per platform.

    python -m bench.gen_storage ROOT --repositories 100 --tags 10
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
ACCEPT = f"{OCI_INDEX}, {OCI_MANIFEST}, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json"


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


def generate(root: Path, repositories: int, tags: int, index_every: int = 5, page: int = 1000) -> Plan:
    w = Writer(root)
    plan = Plan()
    names = sorted(f"bench/team{r // 50:03d}/app{r:05d}" for r in range(repositories))
    for start in range(0, len(names), page):
        last = f"&last={names[start - 1]}" if start else ""
        plan.requests.append(("GET", f"/v2/_catalog?n={page}{last}", {"Accept": "application/json"}))
    for repo in names:
        plan.requests.append(("GET", f"/v2/{repo}/tags/list?n={page}", {"Accept": "application/json"}))
        checked: set[str] = set()
        manifests: set[str] = set()

        def image(tag: str, platform: str, attestation_of: str | None = None) -> tuple[str, int]:
            config = b"{}" if attestation_of else json.dumps({"architecture": platform, "os": "linux", "tag": tag}).encode()
            layers = (
                [json.dumps({"_type": "https://in-toto.io/Statement/v0.1", "subject": attestation_of}).encode()]
                if attestation_of
                else [_bytes(repo, "base", size=2048), _bytes(repo, tag, platform)]
            )
            descs = []
            config_digest = w.blob(config)
            w.layer_link(repo, config_digest)
            for data in layers:
                digest = w.blob(data)
                w.layer_link(repo, digest)
                descs.append({"mediaType": OCI_LAYER, "digest": digest, "size": len(data)})
            body = json.dumps(
                {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config)}, "layers": descs}
            ).encode()
            digest = w.blob(body)
            w.revision(repo, digest)
            for d in [config_digest] + [x["digest"] for x in descs]:
                if d not in checked:
                    checked.add(d)
                    plan.requests.append(("GET", f"/v2/{repo}/blobs/{d}", {"Range": "bytes=0-0"}))
            return digest, len(body)

        for t in range(tags):
            tag = f"v{t}"
            if index_every and t % index_every == 0:
                entries = []
                for arch in ("amd64", "arm64"):
                    digest, size = image(tag, arch)
                    entries.append({"mediaType": OCI_MANIFEST, "digest": digest, "size": size, "platform": {"architecture": arch, "os": "linux"}})
                    att, att_size = image(tag, arch, attestation_of=digest)
                    entries.append(
                        {"mediaType": OCI_MANIFEST, "digest": att, "size": att_size, "platform": {"architecture": "unknown", "os": "unknown"},
                         "annotations": {"vnd.docker.reference.type": "attestation-manifest", "vnd.docker.reference.digest": digest}}
                    )
                body = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}).encode()
                top = w.blob(body)
                w.revision(repo, top)
                for entry in entries:
                    if entry["digest"] not in manifests:
                        manifests.add(str(entry["digest"]))
                        plan.requests.append(("GET", f"/v2/{repo}/manifests/{entry['digest']}", {"Accept": ACCEPT}))
            else:
                top, _ = image(tag, "amd64")
            w.tag(repo, tag, top)
            plan.requests.append(("GET", f"/v2/{repo}/manifests/{tag}", {"Accept": ACCEPT}))
            plan.tags.append((repo, tag))
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

"""A real distribution registry (Debian ``docker-registry``) for tests and the demo, plus helpers that
push synthetic images over the HTTP API and break them in storage the way clean-up scripts and GC do.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import shutil
import socket
import subprocess
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx

BINARY = shutil.which("docker-registry") or "/usr/bin/docker-registry"
#: Where ``scripts/install-peers.sh`` puts the pinned Go peers (distribution v3, crane, oras, helm, ...).
PEERS = Path(os.environ.get("REGPROBE_PEERS", Path.home() / "go" / "bin"))
#: The registries the suite runs against: Debian's distribution 2.8.2, and distribution v3 (``registry:3``).
BINARIES = {"2": BINARY, "3": str(PEERS / "registry")}
FLAVOURS = tuple(BINARIES)
#: How test ids and messages name them.
FLAVOUR_NAMES = {"2": "2.8.2", "3": "v3"}

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_FOREIGN = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
#: OCI 1.1's empty config (``{}``), which artifacts carry.
EMPTY = "application/vnd.oci.empty.v1+json"


#: Credentials of the basic-auth registry the tests share (conftest.py, ``basic_registry``).
BASIC_USER, BASIC_PASSWORD = "ci", "correct-horse-battery-staple"


def free_port() -> int:
    """A port nobody listens on right now: for addresses that must refuse connections. A server the
    tests start binds port 0 instead (see :func:`listening_port`): a port picked in advance can be taken
    by another process before the server binds it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def listening_port(pid: int) -> int | None:
    """The TCP port process ``pid`` listens on (a server started on port 0), from /proc; None while it
    listens on none."""
    try:
        inodes = {os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
    except OSError:
        return None
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                # local address "0100007F:9C41", state 0A = LISTEN, inode in column 10
                if fields[3] == "0A" and f"socket:[{fields[9]}]" in inodes:
                    return int(fields[1].rsplit(":", 1)[1], 16)
    return None


def stop_process(proc: subprocess.Popen[bytes] | None) -> None:
    """Terminate a server the tests started; kill it if it does not go within 10 s."""
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def tar_layer(content: bytes) -> tuple[bytes, str]:
    """A real layer holding one file: (its gzipped tar, the tar's digest - the config's diff_id)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("content")
        info.size = len(content)
        tar.addfile(info, io.BytesIO(content))
    return gzip.compress(out.getvalue(), mtime=0), sha256(out.getvalue())


class Storage(Protocol):
    """Where a registry keeps its objects, as the fault helpers need it: paths relative to
    ``docker/registry/v2`` (``blobs/sha256/ab/abcd.../data``, ``repositories/<repo>/_layers/...``)."""

    def driver(self) -> dict[str, Any]:
        """The registry config's ``storage`` driver section (``{"filesystem": {...}}``, ``{"s3": {...}}``)."""
        ...

    def read(self, path: str) -> bytes: ...

    def write(self, path: str, data: bytes) -> None: ...

    def remove_tree(self, path: str) -> None:
        """Delete the object or directory at ``path`` and everything under it."""
        ...


class FilesystemStorage:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.v2 = root / "docker" / "registry" / "v2"

    def driver(self) -> dict[str, Any]:
        return {"filesystem": {"rootdirectory": str(self.root)}}

    def read(self, path: str) -> bytes:
        return (self.v2 / path).read_bytes()

    def write(self, path: str, data: bytes) -> None:
        (self.v2 / path).write_bytes(data)

    def remove_tree(self, path: str) -> None:
        shutil.rmtree(self.v2 / path)


@dataclass
class Image:
    """What was pushed: digests to aim faults at."""

    repository: str
    digest: str
    config: str = ""
    layers: list[str] = field(default_factory=list)
    children: list[Image] = field(default_factory=list)


class Registry:
    def __init__(
        self,
        workdir: Path,
        *,
        cache: bool = True,
        extra: dict[str, Any] | None = None,
        tls: tuple[Path, Path] | None = None,
        storage: Storage | None = None,
        flavour: str = "2",
    ) -> None:
        """``tls``: (certificate, key) to serve HTTPS with; ``storage``: where objects live (a directory
        under ``workdir`` unless given, e.g. an S3 bucket: tests/s3.py); ``flavour``: ``"2"`` (Debian's
        2.8.2) or ``"3"`` (distribution v3, from the peers)."""
        self.flavour = flavour
        self.binary = BINARIES[flavour]
        self.workdir = workdir
        self.root = workdir / "data"
        self.storage: Storage = storage or FilesystemStorage(self.root)
        self.scheme = "https" if tls else "http"
        #: 0 until the first start: the registry binds a port of its own choosing, then keeps it.
        self.port = 0
        storage_config: dict[str, Any] = {**self.storage.driver(), "delete": {"enabled": True}}
        if cache:
            # The registry:2 image's default config has this cache; it is what makes GC's damage show
            # as HEAD 200 / GET empty body (REGISTRY-FACTS.md).
            storage_config["cache"] = {"blobdescriptor": "inmemory"}
        config: dict[str, Any] = {
            "version": 0.1,
            "log": {"level": "error", "accesslog": {"disabled": True}},
            "storage": storage_config,
            "http": {"addr": "127.0.0.1:0", "secret": "test-secret"},
            # Lets foreign (Windows-style) layers be pushed; distribution rejects their URLs by default.
            # Loopback: a test may serve one (tests/test_client_agreement.py).
            "validation": {"manifests": {"urls": {"allow": ["^https://", r"^http://127\.0\.0\.1:"]}}},
        }
        if tls:
            config["http"]["tls"] = {"certificate": str(tls[0]), "key": str(tls[1])}
        for key, value in (extra or {}).items():
            config[key] = value
        self.config = config
        self.config_path = workdir / "config.yml"
        self.proc: subprocess.Popen[bytes] | None = None
        workdir.mkdir(parents=True, exist_ok=True)
        self.http = httpx.Client(timeout=30, verify=False)

    @property
    def url(self) -> str:
        assert self.port, "the registry has not started yet"
        return f"{self.scheme}://127.0.0.1:{self.port}"

    @property
    def host(self) -> str:
        return self.url.split("://", 1)[1]

    @classmethod
    def with_basic_auth(cls, workdir: Path, username: str, password: str, *, flavour: str = "2") -> Registry:
        """Started behind htpasswd basic auth; the harness's own client carries the credentials."""
        import bcrypt

        workdir.mkdir(parents=True, exist_ok=True)
        htpasswd = workdir / "htpasswd"
        htpasswd.write_text(f"{username}:" + bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode() + "\n")
        reg = cls(
            workdir, extra={"auth": {"htpasswd": {"realm": "test", "path": str(htpasswd)}}}, flavour=flavour
        ).start()
        reg.http.auth = (username, password)
        return reg

    @property
    def v2(self) -> Path:
        return self.root / "docker" / "registry" / "v2"

    def start(self) -> Registry:
        """Start (or restart, on the port it had) and wait until it answers."""
        self.config["http"]["addr"] = f"127.0.0.1:{self.port}"
        self.config_path.write_text(json.dumps(self.config))  # JSON is YAML
        log = open(self.workdir / "registry.log", "ab")  # noqa: SIM115 - lives as long as the process
        # The S3 driver's AWS SDK panics at start when AWS_CA_BUNDLE is set (REGISTRY-FACTS.md).
        env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}
        self.proc = subprocess.Popen([self.binary, "serve", str(self.config_path)], stdout=log, stderr=log, env=env)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.binary} exited: {(self.workdir / 'registry.log').read_text()[-2000:]}")
            self.port = self.port or listening_port(self.proc.pid) or 0
            try:
                if self.port and self.http.get(f"{self.url}/v2/").status_code in (200, 401):
                    self.http.base_url = httpx.URL(self.url)
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"{self.binary} did not start within 20s")

    def stop(self) -> None:
        stop_process(self.proc)
        self.proc = None

    def restart(self) -> None:
        """Drops the in-memory descriptor cache."""
        self.stop()
        self.start()

    # -- pushing ------------------------------------------------------------------------------------

    def push_blob(self, repository: str, data: bytes) -> str:
        digest = sha256(data)
        started = self.http.post(f"/v2/{repository}/blobs/uploads/")
        assert started.status_code == 202, started.text
        location = started.headers["location"]
        sep = "&" if "?" in location else "?"
        done = self.http.put(
            f"{location}{sep}digest={digest}", content=data, headers={"Content-Type": "application/octet-stream"}
        )
        assert done.status_code == 201, done.text
        return digest

    def push_manifest(self, repository: str, reference: str, body: bytes, media_type: str) -> str:
        response = self.http.put(
            f"/v2/{repository}/manifests/{reference}", content=body, headers={"Content-Type": media_type}
        )
        assert response.status_code == 201, response.text
        return sha256(body)

    def push_image(
        self,
        repository: str,
        tag: str | None,
        *,
        layers: list[bytes] | None = None,
        docker: bool = False,
        platform: str = "linux/amd64",
        foreign: bool | tuple[bytes, str] = False,
        config_extra: dict[str, Any] | None = None,
        runnable: bool = False,
    ) -> Image:
        """A single-platform image (OCI, or Docker schema2 with ``docker``). Its layers are the bytes given,
        unless ``runnable``: then each is a gzipped tar holding them, listed in the config's ``diff_ids``,
        as a client that unpacks layers (``crane validate``) requires. ``foreign`` adds a last layer the
        registry does not hold: ``(content, url)`` for one that ``url`` serves (as a layer, if runnable)."""
        layers = layers if layers is not None else [os.urandom(1500), os.urandom(2500)]
        foreign_data, foreign_url = (
            foreign if isinstance(foreign, tuple) else (os.urandom(64), "https://example.invalid/layer")
        )
        rootfs: dict[str, Any] = {"type": "layers"}
        if runnable:
            packed = [tar_layer(content) for content in layers]
            layers = [gz for gz, _ in packed]
            rootfs["diff_ids"] = [diff_id for _, diff_id in packed]
            if foreign:
                foreign_data, diff_id = tar_layer(foreign_data)
                rootfs["diff_ids"].append(diff_id)
        os_name, arch = platform.split("/")[:2]
        config = json.dumps(
            {"architecture": arch, "os": os_name, "rootfs": rootfs, **(config_extra or {})},
            sort_keys=True,
        ).encode()
        config_digest = self.push_blob(repository, config)
        layer_descs: list[dict[str, Any]] = []
        for data in layers:
            layer_descs.append(
                {
                    "mediaType": DOCKER_LAYER if docker else OCI_LAYER,
                    "digest": self.push_blob(repository, data),
                    "size": len(data),
                }
            )
        if foreign:
            # A Windows base layer: served from `urls`, never from this registry.
            layer_descs.append(
                {
                    "mediaType": DOCKER_FOREIGN,
                    "digest": sha256(foreign_data),
                    "size": len(foreign_data),
                    "urls": [foreign_url],
                }
            )
        manifest = {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST if docker else OCI_MANIFEST,
            "config": {
                "mediaType": DOCKER_CONFIG if docker else OCI_CONFIG,
                "digest": config_digest,
                "size": len(config),
            },
            "layers": layer_descs,
        }
        body = json.dumps(manifest, indent=3).encode()
        media = DOCKER_MANIFEST if docker else OCI_MANIFEST
        digest = self.push_manifest(repository, tag or sha256(body), body, media)
        return Image(repository, digest, config_digest, [str(d["digest"]) for d in layer_descs if "urls" not in d])

    def push_healthy_set(self, ns: str) -> None:
        """Six healthy repositories of every shape a walk meets, seven tags: OCI images sharing a base
        layer, a docker image tagged twice, OCI and docker indexes, a Windows image with a foreign layer,
        and a repository listed in the catalog without tags (normal)."""
        shared = b"shared-base-layer" * 100
        self.push_image(f"{ns}/oci", "v1", layers=[shared, b"app-one" * 50])
        self.push_image(f"{ns}/oci", "v2", layers=[shared, b"app-two" * 50])
        docker = self.push_image(f"{ns}/docker", "1.0", docker=True)
        self.tag(f"{ns}/docker", "latest", docker.digest)
        self.push_index(f"{ns}/multi", "latest")
        self.push_index(f"{ns}/list", "stable", docker=True)
        self.push_image(f"{ns}/windows", "ltsc", foreign=True, docker=True)
        self.push_image(f"{ns}/untagged", None)

    def push_attestation(self, repository: str, subject: str) -> Image:
        """A BuildKit attestation manifest: a real manifest with real blobs, shaped as BuildKit's
        docs/attestations/attestation-storage.md shows it (the config lists the statement as a diff_id)."""
        predicate = "https://slsa.dev/provenance/v0.2"
        statement = json.dumps(
            {
                "_type": "https://in-toto.io/Statement/v0.1",
                "predicateType": predicate,
                "subject": [{"name": "_", "digest": {"sha256": subject.split(":", 1)[1]}}],
                "predicate": {},
            }
        ).encode()
        layer = self.push_blob(repository, statement)
        config = json.dumps(
            {
                "architecture": "unknown",
                "os": "unknown",
                "config": {},
                "rootfs": {"type": "layers", "diff_ids": [layer]},
            }
        ).encode()
        config_digest = self.push_blob(repository, config)
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config)},
            "layers": [
                {
                    "mediaType": "application/vnd.in-toto+json",
                    "digest": layer,
                    "size": len(statement),
                    "annotations": {"in-toto.io/predicate-type": predicate},
                }
            ],
        }
        body = json.dumps(manifest).encode()
        digest = self.push_manifest(repository, sha256(body), body, OCI_MANIFEST)
        return Image(repository, digest, config_digest, [layer])

    def push_referrer(
        self,
        repository: str,
        subject: str,
        artifact_type: str,
        content: bytes,
        *,
        fallback: bool = True,
        names_subject: bool = True,
    ) -> str:
        """An OCI 1.1 referrer of ``subject``: an artifact manifest naming it, pushed by digest. With
        ``fallback``, also added to the subject's fallback tag ``sha256-<hex>`` as clients keep it on a
        registry without the referrers API (tests/test_referrers.py makes them with oras instead).
        ``names_subject=False``: the manifest itself does not name it - only the fallback index does."""
        accept = f"{OCI_MANIFEST}, {OCI_INDEX}, {DOCKER_MANIFEST}, {DOCKER_LIST}"
        found = self.http.get(f"/v2/{repository}/manifests/{subject}", headers={"Accept": accept})
        assert found.status_code == 200, found.text
        layer = {"mediaType": artifact_type, "digest": self.push_blob(repository, content), "size": len(content)}
        doc: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": artifact_type,
            "config": {"mediaType": EMPTY, "digest": self.push_blob(repository, b"{}"), "size": 2},
            "layers": [layer],
        }
        if names_subject:
            doc["subject"] = {"mediaType": found.headers["content-type"], "digest": subject, "size": len(found.content)}
        body = json.dumps(doc).encode()
        digest = self.push_manifest(repository, sha256(body), body, OCI_MANIFEST)
        if fallback:
            tag = f"sha256-{subject.split(':', 1)[1]}"
            listed = self.http.get(f"/v2/{repository}/manifests/{tag}", headers={"Accept": OCI_INDEX})
            entries = listed.json()["manifests"] if listed.status_code == 200 else []
            entries.append(
                {"mediaType": OCI_MANIFEST, "digest": digest, "size": len(body), "artifactType": artifact_type}
            )
            index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}).encode()
            self.push_manifest(repository, tag, index, OCI_INDEX)
        return digest

    def push_index(
        self,
        repository: str,
        tag: str,
        *,
        platforms: tuple[str, ...] = ("linux/amd64", "linux/arm64"),
        docker: bool = False,
        attestations: bool = True,
        children: list[Image] | None = None,
        runnable: bool = False,
    ) -> Image:
        """A multi-platform index (OCI, or a Docker manifest list), children pushed by digest."""
        kids = (
            children
            if children is not None
            else [self.push_image(repository, None, docker=docker, platform=p, runnable=runnable) for p in platforms]
        )
        entries: list[dict[str, Any]] = []
        for kid, plat in zip(kids, platforms, strict=False):
            os_name, arch, *variant = plat.split("/")
            fetched = self.http.get(
                f"/v2/{repository}/manifests/{kid.digest}",
                headers={"Accept": f"{OCI_MANIFEST}, {DOCKER_MANIFEST}, {OCI_INDEX}"},
            )
            entries.append(
                {
                    "mediaType": fetched.headers["content-type"],
                    "digest": kid.digest,
                    "size": len(fetched.content),
                    "platform": {"architecture": arch, "os": os_name, **({"variant": variant[0]} if variant else {})},
                }
            )
        if attestations and not docker:
            for kid in list(kids):
                att = self.push_attestation(repository, kid.digest)
                size = len(
                    self.http.get(f"/v2/{repository}/manifests/{att.digest}", headers={"Accept": OCI_MANIFEST}).content
                )
                entries.append(
                    {
                        "mediaType": OCI_MANIFEST,
                        "digest": att.digest,
                        "size": size,
                        "platform": {"architecture": "unknown", "os": "unknown"},
                        "annotations": {
                            "vnd.docker.reference.type": "attestation-manifest",
                            "vnd.docker.reference.digest": kid.digest,
                        },
                    }
                )
                kids.append(att)
        media = DOCKER_LIST if docker else OCI_INDEX
        body = json.dumps({"schemaVersion": 2, "mediaType": media, "manifests": entries}, indent=2).encode()
        digest = self.push_manifest(repository, tag, body, media)
        return Image(repository, digest, children=kids)

    def tag(self, repository: str, tag: str, digest: str) -> None:
        response = self.http.get(
            f"/v2/{repository}/manifests/{digest}",
            headers={"Accept": f"{OCI_INDEX}, {OCI_MANIFEST}, {DOCKER_LIST}, {DOCKER_MANIFEST}"},
        )
        assert response.status_code == 200, response.text
        self.push_manifest(repository, tag, response.content, response.headers["content-type"])

    # -- breaking storage, as clean-up scripts and GC do -----------------------------------------------

    def blob_path(self, digest: str) -> Path:
        """The data file of a blob or manifest (both live under blobs/), on filesystem storage."""
        return self.v2 / _blob_data(digest)

    def blob_size(self, digest: str) -> int:
        """How many bytes of a blob (or manifest) storage holds."""
        return len(self.storage.read(_blob_data(digest)))

    def remove_revision_link(self, repository: str, digest: str) -> None:
        """A tag clean-up script or GC of "untagged" index children: data kept, link gone."""
        hexpart = digest.split(":", 1)[1]
        self.storage.remove_tree(f"repositories/{repository}/_manifests/revisions/sha256/{hexpart}")

    def evict_revisions(self) -> None:
        """Make a removed revision link show, as it does once the registry has restarted after an offline
        clean-up or GC. distribution v3 (unlike 2.8.2) looks manifest revisions up through its blob
        descriptor cache (registry/storage/registry.go, ``Manifests``): a link removed in storage while v3
        runs is still served from the cache, until the cache forgets it - a restart, for ``inmemory``."""
        if self.flavour == "3" and "cache" in self.config["storage"]:
            self.restart()

    def remove_blob_data(self, digest: str) -> None:
        """GC deleted the data it believed unreferenced; layer links survive."""
        self.storage.remove_tree(_blob_data(digest).rsplit("/", 1)[0])

    def restore_blob_data(self, digest: str, data: bytes) -> None:
        """Put back what :meth:`remove_blob_data` took (filesystem storage)."""
        path = self.v2 / _blob_data(digest)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    def truncate_blob(self, digest: str) -> None:
        self.storage.write(_blob_data(digest), b"")

    def shorten_blob(self, digest: str, by: int) -> None:
        """An interrupted copy: the first bytes are there, the last ``by`` are not."""
        data = self.storage.read(_blob_data(digest))
        self.storage.write(_blob_data(digest), data[:-by])

    def corrupt_blob(self, digest: str) -> None:
        """Bit rot: same size, other content."""
        data = bytearray(self.storage.read(_blob_data(digest)))
        data[len(data) // 2] ^= 0xFF
        self.storage.write(_blob_data(digest), bytes(data))

    def remove_layer_link(self, repository: str, digest: str) -> None:
        hexpart = digest.split(":", 1)[1]
        self.storage.remove_tree(f"repositories/{repository}/_layers/sha256/{hexpart}")

    @contextlib.contextmanager
    def unlistable_tags(self, repository: str) -> Iterator[None]:
        """While the block runs, the repository's tag directory is unreadable (a file where the
        directory was: disk trouble, a clean-up script cut off mid-way): tags/list answers 500 UNKNOWN on
        every try, so a run cannot reach the repository's tags. Filesystem storage only."""
        tags = self.v2 / "repositories" / repository / "_manifests" / "tags"
        aside = tags.with_name("tags.aside")
        tags.rename(aside)
        tags.write_text("not a directory")
        try:
            yield
        finally:
            tags.unlink()
            aside.rename(tags)

    def warm(self, repository: str, digest: str) -> None:
        """Read a blob once so its descriptor is in the registry's cache."""
        # 307 on S3: the registry looked the descriptor up (and cached it) before redirecting.
        assert self.http.head(f"/v2/{repository}/blobs/{digest}").status_code in (200, 307)


def _blob_data(digest: str) -> str:
    hexpart = digest.split(":", 1)[1]
    return f"blobs/sha256/{hexpart[:2]}/{hexpart}/data"

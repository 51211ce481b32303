"""regprobe and two real clients agree, image by image: skopeo (`copy --all`, a full pull) and crane
(`validate --remote`, which pulls, hashes and unpacks everything) fail on exactly the tags regprobe calls
broken - on 2.8.2 and v3, for every way the suite knows to break a registry's storage. A row that names a
client whose verdict is known to differ says why (docs/registries.md, "regprobe, crane and skopeo"); the
test pins that difference too, so it fails when the client changes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pytest
import yaml

from .peers import peer
from .registry import FLAVOUR_NAMES, OCI_MANIFEST, Image, Registry, free_port, tar_layer

pytestmark = [
    pytest.mark.each_registry,
    pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo not installed (make deps)"),
]

Push = Callable[[Registry, str], Image]
Fault = Callable[[Registry, str, Image], None]

#: The verdicts compared, per tag: regprobe in both blob modes, the two clients, and crane's quick mode.
CLIENTS = ("regprobe digest", "regprobe range", "crane", "skopeo", "crane --fast")

CRANE_ATTESTATIONS = (
    "crane is wrong: it counts diff_ids only for layer media types, and BuildKit's attestation config lists "
    "its in-toto blobs as diff_ids (mismatched number of diffids)"
)
FOREIGN = (
    "the clients fetch foreign layers from their urls, which answer nothing here; the registry serves all "
    "it holds, so regprobe (which judges the registry, CONTRACT) reports nothing"
)
CRANE_LOOPBACK = (
    "crane refuses foreign layer URLs on private addresses (an SSRF guard, remote/fetcher.go "
    "validateForeignURL), and a loopback URL is the only one that can serve a layer here"
)
FAST_CACHE = "crane --fast only HEADs a layer, and the descriptor cache answers HEAD for data that is gone"
FAST_SIZE = "crane --fast does not compare a layer's HEAD Content-Length with its descriptor"
FAST_CONTENT = "crane --fast reads no layer content"
RANGE_BITROT = "same size, other bytes: only reading the whole blob sees it (blob_check: digest)"


def index(reg: Registry, repo: str) -> Image:
    return reg.push_index(repo, "v1", runnable=True, attestations=False)


def attested(reg: Registry, repo: str) -> Image:
    """An index whose platforms each carry a BuildKit attestation manifest."""
    return reg.push_index(repo, "v1", runnable=True)


def docker_list(reg: Registry, repo: str) -> Image:
    return reg.push_index(repo, "v1", runnable=True, docker=True)


def windows(url_serves: bool) -> Push:
    """A Windows image: its base layer is served from its `urls` (here the same registry, under another
    repository, as mcr.microsoft.com serves the real ones), or from a URL nothing answers."""

    def push(reg: Registry, repo: str) -> Image:
        base = b"windows base layer" * 50
        url = f"http://127.0.0.1:{free_port()}/layer"
        if url_serves:
            url = f"{reg.url}/v2/{repo}-base/blobs/{reg.push_blob(f'{repo}-base', tar_layer(base)[0])}"
        return reg.push_image(repo, "v1", docker=True, runnable=True, foreign=(base, url))

    return push


def nothing(reg: Registry, repo: str, img: Image) -> None:
    pass


def first_layer(img: Image) -> str:
    return img.children[0].layers[0] if img.children else img.layers[0]


def read_then(
    fault: Callable[[Registry, str, str], None], target: Callable[[Image], str] = first_layer, kind: str = "blobs"
) -> Fault:
    """Read the object once, so the registry's descriptor cache holds it, then break it."""

    def apply(reg: Registry, repo: str, img: Image) -> None:
        digest = target(img)
        assert reg.http.head(f"/v2/{repo}/{kind}/{digest}", headers={"Accept": OCI_MANIFEST}).status_code == 200
        fault(reg, repo, digest)

    return apply


def corrupt_manifest(digest: Callable[[Image], str]) -> Fault:
    """Manifest data that is no JSON: the registry answers its GET (by digest or tag) with 500 UNKNOWN."""

    def apply(reg: Registry, repo: str, img: Image) -> None:
        path = reg.blob_path(digest(img))
        path.write_bytes(b"{not json" + path.read_bytes()[9:])

    return apply


@dataclass(frozen=True)
class Breakage:
    fault: Fault
    #: On the registry with the descriptor cache (registry:2's default config), else one without.
    cached: bool = False
    #: Made while the registry runs, after what it cached; otherwise made before it (re)starts with an
    #: empty cache, as GC and offline clean-ups are (Registry.evict_revisions).
    live: bool = False
    push: Push = index
    #: Whether tag v1 is broken (its sibling `ok` never is); per flavour where 2.8.2 and v3 differ.
    broken: bool | dict[str, bool] = True
    #: Clients whose verdict on v1 is known to be the opposite, and why.
    differs: dict[str, str] = field(default_factory=dict)
    #: The problem every regprobe finding must have, where it matters.
    problem: str | None = None


def child(i: int) -> Callable[[Image], str]:
    return lambda img: img.children[i].digest


BREAKAGES: dict[str, Breakage] = {
    "healthy": Breakage(nothing, broken=False),
    "healthy-docker-list": Breakage(nothing, push=docker_list, broken=False),
    "healthy-attestations": Breakage(nothing, push=attested, broken=False, differs={"crane": CRANE_ATTESTATIONS}),
    "foreign-layer-served": Breakage(
        nothing,
        push=windows(url_serves=True),
        broken=False,
        differs={"crane": CRANE_LOOPBACK, "crane --fast": CRANE_LOOPBACK},
    ),
    "foreign-layer-unreachable": Breakage(
        nothing,
        push=windows(url_serves=False),
        broken=False,
        differs={"crane": FOREIGN, "skopeo": FOREIGN, "crane --fast": FOREIGN},
    ),
    "index-child-revision-gone": Breakage(
        lambda reg, repo, img: reg.remove_revision_link(repo, child(1)(img)), cached=True
    ),
    # A clean-up script removes the link while the registry runs: v3 keeps serving the child from its
    # descriptor cache, and every client pulls it - not broken until the cache forgets it.
    "index-child-revision-gone-live": Breakage(
        read_then(Registry.remove_revision_link, child(1), "manifests"),
        cached=True,
        live=True,
        broken={"2": True, "3": False},
    ),
    "tag-revision-gone": Breakage(lambda reg, repo, img: reg.remove_revision_link(repo, img.digest), cached=True),
    "blob-data-gone": Breakage(lambda reg, repo, img: reg.remove_blob_data(first_layer(img))),
    "blob-data-gone-cached": Breakage(
        read_then(lambda reg, repo, digest: reg.remove_blob_data(digest)),
        cached=True,
        live=True,
        differs={"crane --fast": FAST_CACHE},
    ),
    "blob-truncated": Breakage(
        lambda reg, repo, img: reg.truncate_blob(first_layer(img)), differs={"crane --fast": FAST_SIZE}
    ),
    "blob-truncated-cached": Breakage(
        read_then(lambda reg, repo, digest: reg.truncate_blob(digest)),
        cached=True,
        live=True,
        differs={"crane --fast": FAST_CACHE},
    ),
    "blob-shortened": Breakage(
        lambda reg, repo, img: reg.shorten_blob(first_layer(img), 100), differs={"crane --fast": FAST_SIZE}
    ),
    "blob-shortened-cached": Breakage(
        read_then(lambda reg, repo, digest: reg.shorten_blob(digest, 100)),
        cached=True,
        live=True,
        differs={"crane --fast": FAST_CACHE},
    ),
    "bit-rot": Breakage(
        lambda reg, repo, img: reg.corrupt_blob(first_layer(img)),
        differs={"regprobe range": RANGE_BITROT, "crane --fast": FAST_CONTENT},
    ),
    "layer-link-gone": Breakage(lambda reg, repo, img: reg.remove_layer_link(repo, first_layer(img))),
    # Both registries keep serving a blob whose link went while they ran (the repository-scoped
    # descriptor cache): every client pulls it.
    "layer-link-gone-cached": Breakage(read_then(Registry.remove_layer_link), cached=True, live=True, broken=False),
    "config-gone": Breakage(lambda reg, repo, img: reg.remove_blob_data(img.children[0].config)),
    "attestation-layer-gone": Breakage(
        lambda reg, repo, img: reg.remove_layer_link(repo, img.children[-1].layers[0]), push=attested
    ),
    "corrupt-child-manifest": Breakage(corrupt_manifest(child(0)), problem="server_error"),
    "corrupt-index": Breakage(corrupt_manifest(lambda img: img.digest), problem="server_error"),
}

#: Rows whose expectations hold once another branch has landed (strict: they fail when it has, to be unmarked).


def rows() -> list[Any]:
    return [name for name in BREAKAGES]


@dataclass
class Outcome:
    #: client -> the tags (of v1 and ok) it calls broken
    verdicts: dict[str, set[str]] = field(default_factory=dict)
    #: "client tag" -> the end of what the client printed
    said: dict[str, str] = field(default_factory=dict)
    #: the problems of regprobe's findings (digest mode)
    problems: set[str] = field(default_factory=set)


@pytest.fixture(scope="module")
def outcomes(
    flavour: str, registry: Registry, registry_nocache: Registry, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Outcome]:
    """Every row broken in its own repository of one registry (per flavour), then judged by every client:
    one regprobe run over all of them (both blob modes side by side), crane and skopeo on each tag."""
    crane = peer("crane")
    work = tmp_path_factory.mktemp(f"agreement-{FLAVOUR_NAMES[flavour]}")
    ns = f"agree-{uuid.uuid4().hex[:8]}"
    pushed: dict[str, tuple[Registry, str, Image]] = {}
    for name, row in BREAKAGES.items():
        reg, repo = (registry if row.cached else registry_nocache), f"{ns}/{name}"
        pushed[name] = (reg, repo, row.push(reg, repo))
        reg.push_image(repo, "ok", runnable=True)
        (work / name).mkdir()  # where skopeo copies the tags to
    for live in (False, True):
        for name, row in BREAKAGES.items():
            if row.live is live:
                row.fault(*pushed[name])
        if not live:
            registry.evict_revisions()

    entries = [
        {"name": f"{mode} {label}", "url": reg.url, "blob_check": mode, "repositories": {"list": repos}}
        for mode in ("digest", "range")
        for label, reg in (("cached", registry), ("nocache", registry_nocache))
        if (repos := [repo for r, repo, _ in pushed.values() if r is reg])
    ]
    config = work / "config.yaml"
    config.write_text(yaml.safe_dump({"registries": entries}))

    def judge(argv: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(argv, capture_output=True, text=True, timeout=120)

    skopeo = ["skopeo", "copy", "--all", "--src-tls-verify=false"]
    jobs = {
        (name, client, tag): argv
        for name, (reg, repo, _) in pushed.items()
        for tag in ("v1", "ok")
        for client, argv in (
            ("crane", [crane, "validate", "--insecure", "--remote", f"{reg.host}/{repo}:{tag}"]),
            ("crane --fast", [crane, "validate", "--fast", "--insecure", "--remote", f"{reg.host}/{repo}:{tag}"]),
            ("skopeo", [*skopeo, f"docker://{reg.host}/{repo}:{tag}", f"dir:{work / name / tag}"]),
        )
    }
    # All at once: regprobe and the clients wait out the registries' 500s side by side.
    with ThreadPoolExecutor(8) as pool:
        probe = pool.submit(judge, [sys.executable, "-m", "regprobe", "run", "-c", str(config), "--format", "json"])
        answers = {key: pool.submit(judge, argv) for key, argv in jobs.items()}
    run = probe.result()
    report = json.loads(run.stdout)
    assert run.returncode in (0, 1) and all(r["complete"] for r in report["registries"]), run.stdout + run.stderr

    outcomes = {name: Outcome() for name in BREAKAGES}
    by_repo = {repo: name for name, (_, repo, _) in pushed.items()}
    for entry in report["registries"]:
        mode = entry["name"].split()[0]
        for name in by_repo.values():
            outcomes[name].verdicts.setdefault(f"regprobe {mode}", set())
        for finding in entry["findings"]:
            outcome = outcomes[by_repo[finding["repository"]]]
            outcome.verdicts[f"regprobe {mode}"].update(finding["tags"])
            if mode == "digest":
                outcome.problems.add(finding["problem"])
    for (name, client, tag), answer in answers.items():
        done = answer.result()
        outcomes[name].said[f"{client} {tag}"] = (done.stdout + done.stderr)[-600:]
        outcomes[name].verdicts.setdefault(client, set()).update({tag} if done.returncode else set())
    return outcomes


@pytest.mark.parametrize("name", rows())
def test_regprobe_crane_and_skopeo_agree_per_tag(name: str, flavour: str, outcomes: dict[str, Outcome]) -> None:
    row, outcome = BREAKAGES[name], outcomes[name]
    broken = row.broken if isinstance(row.broken, bool) else row.broken[flavour]
    expected = {"v1"} if broken else set()

    want = {client: expected ^ {"v1"} if client in row.differs else expected for client in CLIENTS}
    assert outcome.verdicts == want, outcome.said
    if row.problem:
        assert outcome.problems == {row.problem}

"""scripts/install-peers.sh: builds each pinned peer once, rebuilds one built from another version, and
without Go either says what will be skipped (make test) or fails (CI). A stand-in `go` answers
`go version -m` from a table and records `go install`: what is tested is the script's decisions."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).parent.parent / "scripts" / "install-peers.sh"
PINNED = {
    "registry": (
        "github.com/distribution/distribution/v3/cmd/registry",
        "github.com/distribution/distribution/v3",
        "v3.1.2",
    ),
    "crane": ("github.com/google/go-containerregistry/cmd/crane", "github.com/google/go-containerregistry", "v0.22.1"),
    "oras": ("oras.land/oras/cmd/oras", "oras.land/oras", "v1.3.6"),
    "helm": ("helm.sh/helm/v3/cmd/helm", "helm.sh/helm/v3", "v3.21.4"),
    "kubeconform": ("github.com/yannh/kubeconform/cmd/kubeconform", "github.com/yannh/kubeconform", "v0.8.0"),
    # A module whose path ends in its major version: the binary is named after the element before it.
    "kustomize": ("sigs.k8s.io/kustomize/kustomize/v5", "sigs.k8s.io/kustomize/kustomize/v5", "v5.8.1"),
    "cosign": ("github.com/sigstore/cosign/v2/cmd/cosign", "github.com/sigstore/cosign/v2", "v2.6.5"),
}
#: Downloaded into the module cache, not built.
MODULES = ["github.com/prometheus-operator/prometheus-operator@v0.85.0"]


def fake_go(tmp: Path) -> Path:
    """`go version -m BIN` prints BIN's build info (kept beside it as BIN.buildinfo); `go install P@V`
    records the call and writes a binary built from P@V into $GOBIN."""
    go = tmp / "go"
    go.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = version ]; then cat "$3.buildinfo" 2>/dev/null || exit 1; exit 0; fi\n'
        f'if [ "$1" = mod ]; then echo "$3" >> {tmp / "downloads"}; exit 0; fi\n'
        f'echo "$GOBIN $2" >> {tmp / "installs"}\n'
        'pkg="${2%@*}"; ver="${2#*@}"; name="${pkg##*/}"\n'
        'case "$name" in v[0-9]*) name="${pkg%/*}"; name="${name##*/}";; esac\n'
        'touch "$GOBIN/$name"; chmod +x "$GOBIN/$name"\n'
        'mod="$pkg"; case "$pkg" in */cmd/*) mod="${pkg%/cmd/*}";; esac\n'
        'printf "%s: go1.26\\n\\tpath\\t%s\\n\\tmod\\t%s\\t%s\\th1:x=\\n" "$GOBIN/$name" "$pkg" "$mod" "$ver"'
        ' > "$GOBIN/$name.buildinfo"\n'
    )
    go.chmod(0o755)
    return go


def built(peers: Path, name: str, version: str) -> None:
    package, module, _ = PINNED[name]
    (peers / name).write_text("")
    (peers / name).chmod(0o755)
    (peers / f"{name}.buildinfo").write_text(
        f"{peers / name}: go1.26\n\tpath\t{package}\n\tmod\t{module}\t{version}\th1:x=\n"
    )


def install(tmp: Path, peers: Path, go: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "REGPROBE_PEERS": str(peers), "GO": str(go)}
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=60)


def installs(tmp: Path) -> list[str]:
    log = tmp / "installs"
    return log.read_text().splitlines() if log.exists() else []


def test_each_peer_is_built_once_at_its_pinned_version(tmp_path: Path) -> None:
    peers, go = tmp_path / "peers", fake_go(tmp_path)

    first = install(tmp_path, peers, go)
    assert first.returncode == 0, first.stderr
    assert installs(tmp_path) == [f"{peers} {package}@{version}" for package, _, version in PINNED.values()]

    assert (peers / "kustomize").exists() and not (peers / "v5").exists()
    assert (tmp_path / "downloads").read_text().splitlines() == MODULES

    again = install(tmp_path, peers, go)
    assert (again.returncode, again.stdout) == (0, "")
    assert len(installs(tmp_path)) == len(PINNED)  # nothing rebuilt


def test_a_peer_built_from_another_version_is_rebuilt(tmp_path: Path) -> None:
    peers, go = tmp_path / "peers", fake_go(tmp_path)
    peers.mkdir()
    for name, (_, _, version) in PINNED.items():
        built(peers, name, "v0.21.0" if name == "crane" else version)
    (peers / "oras.buildinfo").unlink()  # a binary without build info (not from go install)

    run = install(tmp_path, peers, go)

    assert run.returncode == 0, run.stderr
    assert installs(tmp_path) == [
        f"{peers} github.com/google/go-containerregistry/cmd/crane@v0.22.1",
        f"{peers} oras.land/oras/cmd/oras@v1.3.6",
    ]


def test_without_go_make_test_is_told_what_is_skipped_and_ci_fails(tmp_path: Path) -> None:
    peers, missing = tmp_path / "peers", tmp_path / "no-go"

    optional = install(tmp_path, peers, missing, "--optional")
    required = install(tmp_path, peers, missing)

    assert optional.returncode == 0
    assert optional.stdout.startswith(
        "install-peers: no go command: distribution v3, crane, oras, helm, kubeconform, kustomize and cosign"
    )
    assert "the tests that need them are skipped" in optional.stdout
    assert required.returncode == 1 and "install Go" in required.stderr
    assert not peers.exists()

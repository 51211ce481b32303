#!/usr/bin/env bash
# The real peers the tests compare regprobe with, built from their Go modules at pinned versions into
# one directory ($REGPROBE_PEERS, default ~/go/bin; tests/peers.py reads the same variable):
#   registry     distribution v3, the registry new deployments run (registry:3)
#   crane        go-containerregistry's client: `crane validate --remote` is the check SREs script
#   oras         pushes OCI artifacts and referrers
#   cosign       signs images as OCI 1.1 referrers, and verifies them (local key, no transparency log)
#   helm         renders and lints deploy/helm/regprobe
#   kubeconform  validates the rendered objects
#   kustomize    builds deploy/k8s and its overlays, which the chart's renders are compared with
# and downloads the Prometheus Operator's module, whose CRDs deploy/helm/schemas are made from
# (scripts/gen-kubeconform-schemas.py; tests/test_helm.py checks the committed ones against them).
# A peer already built from its pinned module version (`go version -m` reads the version the binary was
# built from) is left alone, so a re-run costs a second. `--optional`: without go, say what the tests
# will skip and succeed (`make test` on a machine without Go); CI calls it without, so no go fails.
set -euo pipefail

peers=(
  github.com/distribution/distribution/v3/cmd/registry@v3.1.2
  github.com/google/go-containerregistry/cmd/crane@v0.22.1
  oras.land/oras/cmd/oras@v1.3.6
  helm.sh/helm/v3/cmd/helm@v3.21.4
  github.com/yannh/kubeconform/cmd/kubeconform@v0.8.0
  sigs.k8s.io/kustomize/kustomize/v5@v5.8.1
  github.com/sigstore/cosign/v2/cmd/cosign@v2.6.5
)
# Source only, into the module cache (no binary).
modules=(
  github.com/prometheus-operator/prometheus-operator@v0.85.0
)

dir="${REGPROBE_PEERS:-$HOME/go/bin}"
# $GO, else go on PATH, else where the official tarball puts it.
go="${GO:-$(command -v go || echo /usr/local/go/bin/go)}"
if [ ! -x "$go" ]; then
  if [ "${1:-}" = "--optional" ]; then
    echo "install-peers: no go command: distribution v3, crane, oras, helm, kubeconform, kustomize and cosign are not built;" \
      "the tests that need them are skipped (install Go to run them)"
    exit 0
  fi
  echo "install-peers: no go command; install Go (https://go.dev/dl/) to build the pinned peers" >&2
  exit 1
fi

# "PACKAGE@VERSION" the binary at $1 was built from, from its embedded build info; empty if none.
built_from() {
  "$go" version -m "$1" 2>/dev/null | awk '$1 == "path" { p = $2 } $1 == "mod" && !m { m = $3 } END { if (p && m) print p "@" m }'
}

mkdir -p "$dir"
for spec in "${peers[@]}"; do
  package="${spec%@*}"
  name="${package##*/}"
  # A trailing /vN is the module's major version; go install names the binary after the element before.
  if [[ "$name" =~ ^v[0-9]+$ ]]; then
    name="${package%/*}"
    name="${name##*/}"
  fi
  if [ "$(built_from "$dir/$name")" = "$spec" ]; then
    continue
  fi
  echo "install-peers: go install $spec"
  GOBIN="$dir" "$go" install "$spec"
  if [ "$(built_from "$dir/$name")" != "$spec" ]; then
    echo "install-peers: $dir/$name is not $spec after go install" >&2
    exit 1
  fi
done
for spec in "${modules[@]}"; do
  "$go" mod download "$spec"
done

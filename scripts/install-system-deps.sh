#!/usr/bin/env bash
# Debian packages the tests and the demo run for real: distribution's registry, skopeo as a reference
# client, Prometheus (+ promtool), the pushgateway and Alertmanager, wrk for benchmarks (with taskset,
# util-linux, to pin registry and client to a core each; curl and jq for bench/loops/skopeo.sh, the
# skopeo user's script the side-by-side benchmark runs), and Chromium (headless) to look at
# `regprobe serve`'s status page.
set -euo pipefail
packages=(openssl docker-registry skopeo prometheus prometheus-pushgateway prometheus-alertmanager wrk util-linux curl jq chromium)
binaries=(openssl docker-registry skopeo prometheus promtool prometheus-pushgateway prometheus-alertmanager wrk taskset curl jq chromium)
missing=0
for b in "${binaries[@]}"; do command -v "$b" >/dev/null 2>&1 || missing=1; done
if [ "$missing" = 0 ] && [ "${1:-}" != "--force" ]; then
  exit 0
fi
sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
# The Debian packages start their daemons; tests start their own on free loopback ports.
for svc in docker-registry prometheus prometheus-pushgateway prometheus-alertmanager; do
  $sudo systemctl stop "$svc" >/dev/null 2>&1 || true
done

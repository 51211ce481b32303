#!/usr/bin/env bash
# What an SRE scripts with crane instead of regprobe: every repository of the catalog, every tag, and
# `crane validate --fast --remote` on each - the manifest (and every child of an index) fetched and
# checked against its digest, each config fetched and checked, each layer asked for with a HEAD.
#
#   bench/loops/crane.sh REGISTRY          e.g. 127.0.0.1:5000 (plain HTTP: crane's --insecure)
#
# One line per broken tag ("BROKEN repo:tag"), then "N tags, M broken"; exit 1 if any is broken, 2 if
# the registry could not be listed. JOBS=16 validates 16 tags at a time (xargs -P); default one by one.
# CRANE names the binary (default: crane on PATH).
set -euo pipefail
registry=$1
crane=${CRANE:-crane}
jobs=${JOBS:-1}
refs=$(mktemp)
results=$(mktemp)
trap 'rm -f "$refs" "$results"' EXIT

repos=$("$crane" catalog --insecure "$registry") || exit 2
for repo in $repos; do
  tags=$("$crane" ls --insecure "$registry/$repo") || exit 2
  for tag in $tags; do
    echo "$registry/$repo:$tag"
  done
done > "$refs"

export crane
xargs -P "$jobs" -I{} sh -c '
  if "$crane" validate --insecure --fast --remote "$1" >/dev/null 2>&1; then echo "ok $1"; else echo "BROKEN $1"; fi
' _ {} < "$refs" > "$results"

grep '^BROKEN ' "$results" | sed "s|^BROKEN $registry/|BROKEN |" || true
total=$(wc -l < "$results")
broken=$(grep -c '^BROKEN ' "$results" || true)
echo "$total tags, $broken broken"
[ "$broken" -eq 0 ] || exit 1

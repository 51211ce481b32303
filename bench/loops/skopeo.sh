#!/usr/bin/env bash
# What an SRE scripts with skopeo instead of regprobe. skopeo has no "validate": the way to know a tag
# can be pulled is to pull it, so each tag is copied, every platform (--all), to a scratch directory -
# skopeo fetches each manifest, config and layer and checks every digest - and the copy is thrown away.
# (`skopeo inspect --raw` alone reads only the top manifest: a deleted layer would pass.) skopeo
# cannot list a registry's repositories: the catalog comes from the Registry API with curl and jq,
# following its Link header from page to page, the tags from `skopeo list-tags`.
#
#   bench/loops/skopeo.sh REGISTRY         e.g. 127.0.0.1:5000 (plain HTTP)
#
# One line per broken tag ("BROKEN repo:tag"), then "N tags, M broken"; exit 1 if any is broken, 2 if
# the registry could not be listed. JOBS=16 copies 16 tags at a time (xargs -P); default one by one.
set -euo pipefail
registry=$1
jobs=${JOBS:-1}
base="http://$registry"
refs=$(mktemp)
results=$(mktemp)
headers=$(mktemp)
trap 'rm -f "$refs" "$results" "$headers"' EXIT

url="$base/v2/_catalog?n=1000"
repos=()
while [ -n "$url" ]; do
  page=$(curl -fsS -D "$headers" "$url") || exit 2
  mapfile -t -O "${#repos[@]}" repos < <(jq -r '.repositories[]' <<<"$page")
  next=$(tr -d '\r' < "$headers" | sed -n -E 's/^[Ll]ink: *<([^>]*)>.*/\1/p')
  url=${next:+$base$next}
done
for repo in "${repos[@]}"; do
  tags=$(skopeo list-tags --tls-verify=false "docker://$registry/$repo" | jq -r '.Tags[]') || exit 2
  for tag in $tags; do
    echo "$registry/$repo:$tag"
  done
done > "$refs"

xargs -P "$jobs" -I{} sh -c '
  scratch=$(mktemp -d)
  if skopeo copy --quiet --all --src-tls-verify=false "docker://$1" "dir:$scratch/image" >/dev/null 2>&1
  then echo "ok $1"; else echo "BROKEN $1"; fi
  rm -rf "$scratch"
' _ {} < "$refs" > "$results"

grep '^BROKEN ' "$results" | sed "s|^BROKEN $registry/|BROKEN |" || true
total=$(wc -l < "$results")
broken=$(grep -c '^BROKEN ' "$results" || true)
echo "$total tags, $broken broken"
[ "$broken" -eq 0 ] || exit 1

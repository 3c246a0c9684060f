#!/usr/bin/env bash
# Builds the kstatus checker (main.go over sigs.k8s.io/cli-utils) into a cache outside the
# checkout, keyed by a hash of its sources, and never rebuilds one that is already there.
# Prints the binary's path on stdout.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
key=$(cat "$here/go.mod" "$here/go.sum" "$here/main.go" | sha256sum | cut -c1-16)
cache=${XDG_CACHE_HOME:-$HOME/.cache}/kubetune/kstatus/$key
if [ ! -x "$cache/kstatus" ]; then
  mkdir -p "$cache"
  start=$SECONDS
  echo "kstatus: building (first time only; cached in $cache)" >&2
  # A private temporary name: two builds started at once must not move each other's output.
  tmp="$cache/kstatus.tmp.$$"
  (cd "$here" && CGO_ENABLED=0 GOFLAGS="${GOFLAGS:-} -trimpath -mod=mod" \
    go build -ldflags "-s -w" -o "$tmp" .)
  mv -f "$tmp" "$cache/kstatus"
  echo "kstatus: built in $((SECONDS - start)) s" >&2
fi
echo "$cache/kstatus"

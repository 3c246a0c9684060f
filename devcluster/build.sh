#!/usr/bin/env bash
# Builds devcluster's binaries (kube multi-call, etcd, helm; for real nodes kubelet, containerd,
# ctr, containerd-shim-runc-v2, pause and a device plugin; the addons Kueue and JobSet, with their
# install manifests) from Go modules into a cache outside the checkout,
# keyed by version, and never rebuilds one that is already there. Real nodes also need Debian's
# runc (and images need mmdebstrap and podman): installed with apt-get when missing and root.
# Prints the cache directory on stdout.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
kube_version=v1.37.2
etcd_version=v3.7.0
helm_version=v4.3.1
containerd_version=v2.4.2
kueue_version=v0.17.0
jobset_version=v0.11.0
cache=${KUBETUNE_DEVCLUSTER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubetune/devcluster/$kube_version}
bin=$cache/bin
mkdir -p "$bin"
export GOFLAGS="${GOFLAGS:-} -trimpath -mod=mod"
export CGO_ENABLED=0

build() {  # name, module dir, package, ldflags[, version stamp, build tags, overlay function]
  local name=$1 dir=$2 pkg=$3 ldflags=$4 stamp=${5:-} tags=${6:-} overlay=${7:-}
  if [ -x "$bin/$name" ] && [ "$stamp" = "$(cat "$bin/$name.version" 2>/dev/null || true)" ]; then
    return
  fi
  local start=$SECONDS
  echo "devcluster: building $name (first time only; cached in $bin)" >&2
  # A private temporary name: two builds started at once must not move each other's output.
  local tmp="$bin/$name.tmp.$$" flags=()
  if [ -n "$overlay" ]; then
    mkdir -p "$tmp.overlay"
    "$overlay" "$tmp.overlay"
    flags=(-overlay "$tmp.overlay/overlay.json")
  fi
  (cd "$here/go/$dir" && go build "${flags[@]}" -tags "$tags" -ldflags "-s -w $ldflags" -o "$tmp" "$pkg")
  rm -rf "$tmp.overlay"
  mv -f "$tmp" "$bin/$name"
  if [ -n "$stamp" ]; then echo "$stamp" > "$bin/$name.version"; fi
  echo "devcluster: built $name in $((SECONDS - start)) s" >&2
}

minor=${kube_version#v1.}; minor=${minor%%.*}
build kube kube . "-X k8s.io/component-base/version.gitVersion=$kube_version \
  -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor \
  -X k8s.io/component-base/version.gitTreeState=clean \
  -X k8s.io/client-go/pkg/version.gitVersion=$kube_version \
  -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$minor"
build etcd etcd go.etcd.io/etcd/server/v3 ""
build helm helm helm.sh/helm/v4/cmd/helm "-X helm.sh/helm/v4/internal/version.version=$helm_version"

# Real nodes: the kubelet from the same module (same replaces) as the control plane; containerd
# v2 from its own module; pause, the sandbox's process, a few lines of our own.
build kubelet kube k8s.io/kubernetes/cmd/kubelet "-X k8s.io/component-base/version.gitVersion=$kube_version \
  -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor \
  -X k8s.io/component-base/version.gitTreeState=clean"
containerd_ldflags="-X github.com/containerd/containerd/v2/version.Version=$containerd_version"
containerd_tags="no_btrfs no_devmapper no_zfs"
for name in containerd ctr containerd-shim-runc-v2; do
  build "$name" containerd "github.com/containerd/containerd/v2/cmd/$name" "$containerd_ldflags" \
    "$containerd_version" "$containerd_tags"
done
build pause pause . "" "pause-1"
build deviceplugin kube ./deviceplugin "" "deviceplugin-1"

# Addons (ClusterConfig.addons, addons.py): Kueue's and JobSet's managers from their modules, and
# each project's own install manifests (kustomize's config/default, rendered by our kubectl).
module_dir() {  # module dir, module path: where the Go module cache holds its source
  (cd "$here/go/$1" && go mod download "$2" && go list -m -f '{{.Dir}}' "$2")
}
# Without its own certificate management Kueue reads its metrics certificate from a fixed
# /etc/kueue/metrics/certs. So that devcluster writes nothing outside its state folder, cmd/kueue is
# built as the package ./manager of our module, which exists only in an overlay (Go refuses to
# overlay files in its module cache): upstream's main.go with that one line changed, and a
# --metrics-cert-dir flag (same default).
kueue_overlay() {  # folder to write the overlay into
  local upstream line
  upstream=$(module_dir kueue sigs.k8s.io/kueue)/cmd/kueue/main.go
  line='metricsCertPath := "/etc/kueue/metrics/certs"'
  if ! grep -qF "$line" "$upstream"; then
    echo "devcluster: $upstream no longer reads: $line; update kueue_overlay in $0" >&2
    return 1
  fi
  sed "s|$line|metricsCertPath := *metricsCertDir|" "$upstream" > "$1/main.go"
  cat > "$1/metrics_cert_dir.go" <<'GO'
package main

import "flag"

var metricsCertDir = flag.String("metrics-cert-dir", "/etc/kueue/metrics/certs",
	"The folder with the metrics server's tls.crt and tls.key when internalCertManagement is off.")
GO
  local pkg="$here/go/kueue/manager"
  printf '{"Replace": {"%s": "%s", "%s": "%s"}}\n' "$pkg/main.go" "$1/main.go" \
    "$pkg/metrics_cert_dir.go" "$1/metrics_cert_dir.go" > "$1/overlay.json"
}
build kueue kueue ./manager \
  "-X sigs.k8s.io/kueue/pkg/version.GitVersion=$kueue_version" "$kueue_version-1" "" kueue_overlay
build jobset jobset sigs.k8s.io/jobset \
  "-X sigs.k8s.io/jobset/pkg/version.GitVersion=$jobset_version" "$jobset_version"
manifests() {  # name (module dir), module path, version
  local out="$cache/manifests/$1-$3.yaml"
  if [ -s "$out" ]; then return; fi
  mkdir -p "$cache/manifests"
  "$bin/kube" kubectl kustomize "$(module_dir "$1" "$2")/config/default" > "$out.tmp.$$"
  mv -f "$out.tmp.$$" "$out"
}
manifests kueue sigs.k8s.io/kueue "$kueue_version"
manifests jobset sigs.k8s.io/jobset "$jobset_version"
missing=()
for tool in runc mmdebstrap podman; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "devcluster: installing ${missing[*]} from Debian (first time only)" >&2
  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
      --no-install-recommends "${missing[@]}" uidmap fuse-overlayfs; } >&2
fi

for component in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
  ln -sf kube "$bin/$component"
done
echo "$cache"

#!/usr/bin/env bash
# Builds devcluster's binaries (kube multi-call, etcd, helm; for real nodes kubelet, containerd,
# ctr, containerd-shim-runc-v2, pause and a device plugin) from Go modules into a cache outside the checkout,
# keyed by version, and never rebuilds one that is already there. Real nodes also need Debian's
# runc (and images need mmdebstrap and podman): installed with apt-get when missing and root.
# Prints the cache directory on stdout.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
kube_version=v1.37.2
etcd_version=v3.7.0
helm_version=v4.3.1
containerd_version=v2.4.2
cache=${KUBETUNE_DEVCLUSTER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubetune/devcluster/$kube_version}
bin=$cache/bin
mkdir -p "$bin"
export GOFLAGS="${GOFLAGS:-} -trimpath -mod=mod"
export CGO_ENABLED=0

build() {  # name, module dir, package, ldflags[, version stamp, build tags]
  local name=$1 dir=$2 pkg=$3 ldflags=$4 stamp=${5:-} tags=${6:-}
  if [ -x "$bin/$name" ] && [ "$stamp" = "$(cat "$bin/$name.version" 2>/dev/null || true)" ]; then
    return
  fi
  local start=$SECONDS
  echo "devcluster: building $name (first time only; cached in $bin)" >&2
  # A private temporary name: two builds started at once must not move each other's output.
  local tmp="$bin/$name.tmp.$$"
  (cd "$here/go/$dir" && go build -tags "$tags" -ldflags "-s -w $ldflags" -o "$tmp" "$pkg")
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

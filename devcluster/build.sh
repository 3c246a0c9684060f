#!/usr/bin/env bash
# Builds devcluster's binaries (kube multi-call, etcd, helm) from Go modules into a cache
# outside the checkout, keyed by version, and never rebuilds one that is already there.
# Prints the cache directory on stdout.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
kube_version=v1.37.2
etcd_version=v3.7.0
helm_version=v4.3.1
cache=${KUBETUNE_DEVCLUSTER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubetune/devcluster/$kube_version}
bin=$cache/bin
mkdir -p "$bin"
export GOFLAGS="${GOFLAGS:-} -trimpath -mod=mod"
export CGO_ENABLED=0

build() {  # name, module dir, package, ldflags
  local name=$1 dir=$2 pkg=$3 ldflags=$4
  if [ -x "$bin/$name" ]; then return; fi
  local start=$SECONDS
  echo "devcluster: building $name (first time only; cached in $bin)" >&2
  # A private temporary name: two builds started at once must not move each other's output.
  local tmp="$bin/$name.tmp.$$"
  (cd "$here/go/$dir" && go build -ldflags "-s -w $ldflags" -o "$tmp" "$pkg")
  mv -f "$tmp" "$bin/$name"
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

for component in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
  ln -sf kube "$bin/$component"
done
echo "$cache"

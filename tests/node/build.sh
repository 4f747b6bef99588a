#!/usr/bin/env bash
# Build the node multi-call binary (kubelet, kube-scheduler) into the user cache (tests/gobuild.sh)
# and print its path. Rebuilds only when its Go sources, the release (tests/controlplane/VERSION) or
# this script change: the binary's name carries their hash.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../gobuild.sh
source "$here/../gobuild.sh"
version="$(cat "$here/../controlplane/VERSION")"
digest="$(cat "$here/go.mod" "$here/go.sum" "$here/main.go" "$here/../controlplane/VERSION" "$here/build.sh" | sha256sum | cut -c1-16)"

build() {
  local minor pkg ldflags
  minor="$(echo "$version" | cut -d. -f2)"
  pkg=k8s.io/component-base/version
  ldflags="-s -w -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  ldflags="$ldflags -X k8s.io/client-go/pkg/version.gitVersion=$version"
  ldflags="$ldflags -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$minor"
  echo "building kubelet and kube-scheduler $version (first build takes several minutes)..." >&2
  (cd "$here" && CGO_ENABLED=0 nice -n 10 go build -trimpath -ldflags "$ldflags" -o "$1" .)
}

go_cached node "$digest" build

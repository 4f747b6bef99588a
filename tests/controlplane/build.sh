#!/usr/bin/env bash
# Build the control-plane multi-call binary into the user cache (tests/gobuild.sh) and print its path.
# Rebuilds only when the Go sources change: the binary's name carries a hash of them.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../gobuild.sh
source "$here/../gobuild.sh"
version="$(cat "$here/VERSION")"
digest="$(cat "$here/go.mod" "$here/go.sum" "$here/main.go" "$here/VERSION" | sha256sum | cut -c1-16)"

build() {
  local minor pkg ldflags
  minor="$(echo "$version" | cut -d. -f2)"
  pkg=k8s.io/component-base/version
  ldflags="-s -w -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  ldflags="$ldflags -X k8s.io/client-go/pkg/version.gitVersion=$version"
  ldflags="$ldflags -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$minor"
  echo "building control plane $version (first build takes several minutes)..." >&2
  (cd "$here" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$1" .)
}

go_cached controlplane "$digest" build

#!/usr/bin/env bash
# Build the `helm` binary the chart tests use, from the helm.sh/helm/v3 Go module pinned in go.mod,
# into the user cache (tests/gobuild.sh). Prints the binary's path.
# Rebuilds only when go.mod, go.sum or this script change: the binary's name carries their hash.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../gobuild.sh
source "$here/../gobuild.sh"
digest="$(cat "$here/go.mod" "$here/go.sum" "$here/build.sh" | sha256sum | cut -c1-16)"

build() {
  local version k8s_minor ldflags pkg
  version="$(awk '$1 == "helm.sh/helm/v3" { print $2 }' "$here/go.mod")"
  # helm's own Makefile stamps the Kubernetes version of its client libraries: `helm template` and
  # `helm lint` report it as .Capabilities.KubeVersion.
  k8s_minor="$(awk '$1 == "k8s.io/client-go" { split($2, v, "."); print v[2] }' "$here/go.mod")"
  ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$version"
  for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
    ldflags="$ldflags -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$k8s_minor"
  done
  echo "building helm $version (first build takes a few minutes)..." >&2
  (cd "$here" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$1" helm.sh/helm/v3/cmd/helm)
}

go_cached helm "$digest" build

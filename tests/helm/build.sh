#!/usr/bin/env bash
# Build the `helm` binary the chart tests use, from the helm.sh/helm/v3 Go module pinned in go.mod,
# into the user cache (outside the repo; never committed). Prints the binary's path.
# Rebuilds only when go.mod, go.sum or this script change: the binary's name carries their hash.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out_dir="${JITACCESS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/jitaccess}/helm"
digest="$(cat "$here/go.mod" "$here/go.sum" "$here/build.sh" | sha256sum | cut -c1-16)"
binary="$out_dir/helm-$digest"
if [[ -x "$binary" ]]; then
  echo "$binary"
  exit 0
fi
mkdir -p "$out_dir"
# One build at a time: concurrent test runs on a fresh machine wait for the first one
# instead of compiling the same binary side by side (and racing on its temporary file).
exec 9>"$out_dir/.build.lock"
flock 9
if [[ -x "$binary" ]]; then
  echo "$binary"
  exit 0
fi
version="$(awk '$1 == "helm.sh/helm/v3" { print $2 }' "$here/go.mod")"
# helm's own Makefile stamps the Kubernetes version of its client libraries: `helm template` and
# `helm lint` report it as .Capabilities.KubeVersion.
k8s_minor="$(awk '$1 == "k8s.io/client-go" { split($2, v, "."); print v[2] }' "$here/go.mod")"
ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$version"
for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
  ldflags="$ldflags -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$k8s_minor"
done
echo "building helm $version (first build takes a few minutes)..." >&2
(cd "$here" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$binary.tmp" helm.sh/helm/v3/cmd/helm)
mv "$binary.tmp" "$binary"
find "$out_dir" -maxdepth 1 -name 'helm-*' ! -name "helm-$digest" -delete
echo "$binary"

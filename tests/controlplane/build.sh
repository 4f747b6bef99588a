#!/usr/bin/env bash
# Build the control-plane multi-call binary into .cache/controlplane/ (git-ignored).
# Rebuilds only when the Go sources change: the binary's name carries a hash of them.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out_dir="${JITACCESS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/jitaccess}/controlplane"
version="$(cat "$here/VERSION")"
digest="$(cat "$here/go.mod" "$here/go.sum" "$here/main.go" "$here/VERSION" | sha256sum | cut -c1-16)"
binary="$out_dir/controlplane-$digest"
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
minor="$(echo "$version" | cut -d. -f2)"
pkg=k8s.io/component-base/version
ldflags="-s -w -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
ldflags="$ldflags -X k8s.io/client-go/pkg/version.gitVersion=$version"
ldflags="$ldflags -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$minor"
echo "building control plane $version (first build takes several minutes)..." >&2
(cd "$here" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$binary.tmp" .)
mv "$binary.tmp" "$binary"
find "$out_dir" -maxdepth 1 -name 'controlplane-*' ! -name "controlplane-$digest" -delete
echo "$binary"

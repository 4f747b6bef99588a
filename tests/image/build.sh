#!/usr/bin/env bash
# Build the operator image from the repository's Dockerfile with podman, on a base made here from
# Debian packages (no container registry needed), and print its name (localhost/jitaccess:TAG).
#
# The base is `mmdebstrap` of the Debian release and mirror apt already uses, with python3 and venv,
# imported into podman; the Dockerfile gets it as its PYTHON_IMAGE build argument (its default, a
# public python:*-slim image, is what real users build on). Both are tagged by a hash of what goes
# into them, so a second run returns at once and a rebuild happens only when the sources change.
# Needs root (podman and mmdebstrap as root; tests/node/packages.sh installs them).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
bash "$repo/tests/node/packages.sh"

# The host's limits: podman's default ulimits exceed what an unprivileged-resource container may set
# here (setrlimit RLIMIT_NOFILE: Operation not permitted), so pass the hard limits this shell has.
limit() { local value="$1"; [[ "$value" == unlimited ]] && echo -1 || echo "$value"; }
nofile="$(limit "$(ulimit -Hn)")"
# A process limit above pid_max means nothing, and runc is refused one above what podman itself has.
nproc="$(limit "$(ulimit -Hu)")"
pid_max="$(cat /proc/sys/kernel/pid_max)"
if [[ "$nproc" == -1 ]] || ((nproc > pid_max)); then nproc="$pid_max"; fi
# runc, not podman's default crun: crun refuses hosts with cgroup v1 in hybrid mode.
podman=(podman --runtime runc)

# --- The base: Debian's python3 on the release and mirror of this machine's apt sources.
base_packages="python3,python3-venv,python-is-python3,ca-certificates"
suite="$(. /etc/os-release && echo "$VERSION_CODENAME")"
mirror="$(grep -rhoE '^(URIs:|deb)[[:space:]]+(\[[^]]*\][[:space:]]+)?https?://[^[:space:]]*/debian/?([[:space:]]|$)' \
  /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null | grep -oE 'https?://[^[:space:]]*' | head -1 || true)"
if [[ -z "$suite" || -z "$mirror" ]]; then
  echo "no Debian release or mirror found in /etc/os-release and /etc/apt/sources.list*" >&2
  exit 1
fi
base_recipe="mmdebstrap --variant=minbase --include=$base_packages $suite $mirror"
base="localhost/jitaccess-base:$(echo "$base_recipe" | sha256sum | cut -c1-16)"
if ! podman image exists "$base"; then
  echo "making the image base $base with mmdebstrap ($suite from $mirror, a few minutes)..." >&2
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  nice -n 10 mmdebstrap --quiet --variant=minbase --include="$base_packages" "$suite" "$tmp/base.tar" "$mirror" >&2
  podman import --quiet "$tmp/base.tar" "$base" >/dev/null
  podman images --format '{{.Repository}}:{{.Tag}}' localhost/jitaccess-base | grep -vx "$base" | xargs -r podman rmi >/dev/null 2>&1 || true
  rm -rf "$tmp"
  trap - EXIT
fi

# --- The image: the Dockerfile on that base, tagged by a hash of its build context and base.
context_hash="$(cd "$repo" && find Dockerfile .dockerignore pyproject.toml LICENSE requirements-image.txt operator \
  -type f ! -name '*.pyc' ! -path '*/__pycache__/*' -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)"
image="localhost/jitaccess:$(echo "$context_hash $base" | sha256sum | cut -c1-16)"
if ! podman image exists "$image"; then
  echo "building $image on $base (a few minutes)..." >&2
  # The host's CA bundle: pip inside the build then trusts what the host trusts (a proxy's CA too).
  nice -n 10 "${podman[@]}" build --quiet --network host \
    --ulimit "nofile=$nofile:$nofile" --ulimit "nproc=$nproc:$nproc" \
    -v /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro \
    --build-arg "PYTHON_IMAGE=$base" -t "$image" "$repo" >&2
  # Older builds (and what the node tier derived from them) are not kept, as tests/gobuild.sh does.
  podman images --format '{{.Repository}}:{{.Tag}}' localhost/jitaccess | grep -v "^$image" | xargs -r podman rmi -f >/dev/null || true
  podman image prune -f >/dev/null
fi
echo "$image"

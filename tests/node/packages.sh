#!/usr/bin/env bash
# Install the Debian packages the node tier needs (container runtime, image tools, CNI plugins, DNS)
# with apt. Idempotent: when every package is installed it returns at once, without apt-get update.
# Needs root. Prints nothing on success but apt's own output.
set -euo pipefail
packages=(
  podman              # builds the image (podman build) and exports it for containerd
  runc                # podman's and containerd's runtime (crun refuses cgroup v1 hybrid hosts)
  containerd          # the kubelet's container runtime (CRI)
  mmdebstrap          # the image's base, from the Debian mirror apt already uses
  containernetworking-plugins  # bridge, host-local, loopback, portmap for the Pods' network
  catatonit           # a static init, the Pods' pause (sandbox) image
  dnsmasq-base        # answers the Pods' DNS on the bridge
  iptables            # routes Service IPs to their endpoints (there is no kube-proxy)
  iproute2            # the bridge and its address
)
missing=()
for package in "${packages[@]}"; do
  status="$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)"
  [[ "$status" == "install ok installed" ]] || missing+=("$package")
done
((${#missing[@]} == 0)) && exit 0
if ((EUID != 0)); then
  echo "node packages missing (${missing[*]}) and not root: run as root or install them with apt" >&2
  exit 1
fi
echo "installing ${missing[*]}..." >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2

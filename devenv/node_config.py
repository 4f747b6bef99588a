"""The configuration files of the node's containerd, CNI network and kubelet (`devenv.node`).

Every path they name is under the node's work dir, so nothing of the host's own containerd or
kubelet (if any) is read or written. What is set and why:

* containerd: the CRI plugin with runc (crun refuses cgroup v1 hybrid hosts), a local pause image
  (no registry is reachable), ``restrict_oom_score_adj`` (without CAP_SYS_RESOURCE runc cannot
  lower a score: "can't get final child's PID from pipe"), network namespaces under its state dir.
* CNI: the node's bridge (`devenv.node_network`), host-local addresses, no masquerade (Pods only
  talk to this host).
* kubelet: cgroupfs under a cgroup root of its own, cgroup v1 and swap allowed, the bridge as DNS,
  its API on the bridge address with client certificates of the control plane's CA (the API
  server's ``kubectl logs``), logs and volumes in the work dir.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Final

from devenv.node_network import BRIDGE, GATEWAY, POD_SUBNET

PAUSE_IMAGE: Final = "localhost/jitaccess-pause:catatonit"
CGROUP_ROOT: Final = "/jitaccess-node"
CNI_NETWORK: Final = "jitaccess"


def containerd_config(workdir: Path, socket: Path, cni_dir: Path) -> str:
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    return f"""\
version = 2
root = "{workdir / "root"}"
state = "{workdir / "state"}"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp"]

[grpc]
  address = "{socket}"

[plugins."io.containerd.internal.v1.opt"]
  path = "{workdir / "opt"}"

[{cri}]
  sandbox_image = "{PAUSE_IMAGE}"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  disable_apparmor = true
  [{cri}.containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [{cri}.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [{cri}.containerd.runtimes.runc.options]
        BinaryName = "runc"
        SystemdCgroup = false
  [{cri}.cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{cni_dir}"
"""


def cni_config(ipam_dir: Path) -> str:
    return json.dumps(
        {
            "cniVersion": "1.0.0",
            "name": CNI_NETWORK,
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": BRIDGE,
                    "isGateway": True,
                    "ipMasq": False,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "dataDir": str(ipam_dir),
                        "ranges": [[{"subnet": str(POD_SUBNET), "gateway": GATEWAY}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                    },
                },
            ],
        },
        indent=2,
    )


def kubelet_config(*, port: int, ca_file: Path, socket: Path, resolv_conf: Path, pod_logs: Path) -> str:
    return json.dumps(
        {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "address": GATEWAY,
            "port": port,
            "readOnlyPort": 0,
            "healthzPort": 0,
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": False},
                "x509": {"clientCAFile": str(ca_file)},
            },
            "authorization": {"mode": "AlwaysAllow"},
            "cgroupDriver": "cgroupfs",
            "cgroupRoot": CGROUP_ROOT,
            "failCgroupV1": False,
            "failSwapOn": False,
            "clusterDNS": [GATEWAY],
            "clusterDomain": "cluster.local",
            "resolvConf": str(resolv_conf),
            "containerRuntimeEndpoint": f"unix://{socket}",
            "podLogsDir": str(pod_logs),
            "serializeImagePulls": False,
            # The images are imported, never pulled: collecting them would lose them.
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            # A busy test machine must not see its operator Pods evicted.
            "evictionHard": {"memory.available": "1Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
            "nodeStatusUpdateFrequency": "5s",
            "syncFrequency": "10s",
        },
        indent=2,
    )

"""Write go.mod for the control-plane binary from the published k8s.io/kubernetes go.mod.

k8s.io/kubernetes points its staging modules at ./staging paths, which do not exist
for a module consumer, so each one is pinned to its published v0.<minor>.<patch> tag.
The list comes from the real go.mod of the release, never typed by hand.

Usage: python gen_gomod.py 1.35.4   (then: go mod tidy)
"""

import json
import re
import subprocess
import sys
from pathlib import Path


def main(version: str) -> None:
    info = json.loads(subprocess.check_output(["go", "mod", "download", "-json", f"k8s.io/kubernetes@v{version}"]))
    upstream = Path(info["GoMod"]).read_text()
    staging = sorted(set(re.findall(r"^\s*(k8s\.io/[\w.-]+) => \./staging/", upstream, re.M)))
    etcd = re.search(r"go\.etcd\.io/etcd/server/v3 (v[\w.-]+)", upstream)
    if not staging or etcd is None:
        sys.exit("unexpected k8s.io/kubernetes go.mod layout")
    _major, minor, patch = version.split(".")
    pinned = f"v0.{minor}.{patch}"
    lines = [
        "module jitaccess.dev/controlplane",
        "",
        "go 1.25.0",
        "",
        "require (",
        f"\tk8s.io/kubernetes v{version}",
        f"\tgo.etcd.io/etcd/server/v3 {etcd.group(1)}",
        ")",
        "",
        "replace (",
        *[f"\t{name} => {name} {pinned}" for name in staging],
        ")",
        "",
    ]
    Path(__file__).with_name("go.mod").write_text("\n".join(lines))
    Path(__file__).with_name("VERSION").write_text(f"v{version}\n")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "1.35.4")

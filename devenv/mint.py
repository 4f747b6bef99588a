"""``python -m devenv.mint NAME [--group GROUP ...]``: a kubeconfig for any user of the local control plane.

The test users are fixed when the API server starts (its token file); a person trying an attack
often needs someone new. This mints a client certificate for the name and groups from the control
plane's own CA (`devenv.controlplane.mint_kubeconfig`) and prints the kubeconfig's path. The
control plane is the one `make dev` runs: its ``env.sh`` sets ``JITACCESS_DEV_CONTROLPLANE``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Final

from devenv.controlplane import mint_kubeconfig

CONTROLPLANE_ENV: Final = "JITACCESS_DEV_CONTROLPLANE"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m devenv.mint", description=__doc__.split("\n\n")[0])
    parser.add_argument("name", help="the user name, e.g. dave@example.com")
    parser.add_argument("--group", "-g", action="append", default=[], help="a group of the user (repeatable)")
    parser.add_argument(
        "--control-plane",
        type=Path,
        default=os.environ.get(CONTROLPLANE_ENV),
        help=f"the control plane's directory (default: ${CONTROLPLANE_ENV}, set by make dev's env.sh)",
    )
    args = parser.parse_args(argv)
    if args.control_plane is None:
        parser.error("no control plane: source the env.sh that make dev printed, or pass --control-plane")
    print(mint_kubeconfig(Path(args.control_plane), args.name, args.group))


if __name__ == "__main__":
    main()

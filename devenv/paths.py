"""Where the repository's files are, for the development environment and the tests built on it.

`devenv` is a top-level package at the repository root (it is never installed), so the root is
the directory that holds it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

REPO: Final = Path(__file__).resolve().parent.parent
EXAMPLES: Final = REPO / "examples"
CRDS: Final = REPO / "crds"
SEED_FILE: Final = EXAMPLES / "identitycenter" / "seed.yaml"
CONTROLPLANE_BUILD: Final = REPO / "tests" / "controlplane" / "build.sh"

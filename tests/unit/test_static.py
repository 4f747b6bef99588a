"""Static checks that keep the design honest: the layering contract and the linter."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _tool(name: str) -> str:
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: `pip install -e .[dev]`")
    return found


def test_layers_import_only_downward() -> None:
    """api and domain stay pure; handlers -> adapters -> domain -> api (import-linter)."""
    result = subprocess.run([_tool("lint-imports")], cwd=REPO, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]


def test_ruff_is_clean() -> None:
    result = subprocess.run(
        [_tool("ruff"), "check", "operator", "devenv", "tests", "bench"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:]

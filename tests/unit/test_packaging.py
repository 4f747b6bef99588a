"""The wheel (and so the image, which installs it) carries the operator and the CLI, nothing else.

The development environment (`devenv/`), the tests and the benchmarks live outside the package and
must stay out of it; moto, a development dependency, must never be imported by shipped code.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator

import pytest

from devenv.paths import REPO

SHIPPED = ("jitaccess/", "jitaccess-")  # the package, and its .dist-info


def _imported_roots(source: str) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[zipfile.ZipFile]:
    """The wheel built offline, with the venv's own setuptools, from a copy of what the Dockerfile copies."""
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "operator", source / "operator", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    out = tmp_path_factory.mktemp("wheel")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-q",
            "-w",
            str(out),
            ".",
        ],
        cwd=source,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    (built,) = out.glob("jitaccess-*.whl")
    with zipfile.ZipFile(built) as archive:
        yield archive


def test_the_wheel_holds_only_the_jitaccess_package(wheel: zipfile.ZipFile) -> None:
    names = wheel.namelist()
    assert [n for n in names if not n.startswith(SHIPPED)] == []
    assert [n for n in names if "devenv" in n or n.startswith(("tests/", "bench/"))] == []
    assert "jitaccess/__main__.py" in names, "the operator"
    assert "jitaccess/cli/main.py" in names, "the kubectl plugin"


def test_no_shipped_module_imports_development_code(wheel: zipfile.ZipFile) -> None:
    modules = [n for n in wheel.namelist() if n.endswith(".py")]
    assert len(modules) > 20
    for name in modules:
        roots = _imported_roots(wheel.read(name).decode())
        assert not roots & {"devenv", "moto", "tests", "bench", "trustme"}, f"{name} imports {roots}"


def test_the_wheel_declares_its_license_and_carries_its_text(wheel: zipfile.ZipFile) -> None:
    (metadata,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
    headers = wheel.read(metadata).decode().split("\n\n", 1)[0].splitlines()
    assert "License-Expression: Apache-2.0" in headers
    assert "License-File: LICENSE" in headers
    (text,) = [n for n in wheel.namelist() if n.endswith(".dist-info/licenses/LICENSE")]
    assert wheel.read(text) == (REPO / "LICENSE").read_bytes()

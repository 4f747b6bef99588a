"""The Dockerfile builds from files that exist, runs as non-root, and starts what the chart runs.

No container engine runs here, so the image is checked by reading the Dockerfile: its stages, its
user, every COPY source (present in the repository and not dropped by .dockerignore), and its
ENTRYPOINT and CMD against the chart's rendered container.
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import PurePosixPath
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.helm.chart import REPO, Helm, documents, find, helm_binary

DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
REQUIREMENTS = REPO / "requirements-image.txt"


@dataclass
class Stage:
    base: str
    name: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for word, args in self.instructions if word == keyword]


def parse(text: str) -> list[Stage]:
    """Instructions per stage, with continuation lines joined and comments dropped."""
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1].rstrip() + " "
            continue
        logical.append(pending + line)
        pending = ""
    stages: list[Stage] = []
    for line in logical:
        word, _, args = line.partition(" ")
        word = word.upper()
        if word == "FROM":
            parts = args.split()
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else str(len(stages))
            stages.append(Stage(parts[0], name))
        elif stages:
            stages[-1].instructions.append((word, args.strip()))
    return stages


def copy_sources(args: str) -> tuple[dict[str, str], list[str]]:
    """The --flags and the source paths of a COPY (the last word is the destination)."""
    words = json.loads(args) if args.startswith("[") else shlex.split(args)
    flags = dict(w[2:].split("=", 1) for w in words if w.startswith("--"))
    paths = [w for w in words if not w.startswith("--")]
    return flags, paths[:-1]


def ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path, or one of its parent folders, decides."""
    parts = PurePosixPath(path).parts
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        cleaned = pattern.lstrip("!").strip("/")
        if any(fnmatch(candidate, cleaned) for candidate in candidates):
            excluded = not negated
    return excluded


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse(DOCKERFILE.read_text())


@pytest.fixture(scope="module")
def operator_container() -> dict[str, Any]:
    deployment = find(documents(Helm(helm_binary()).template()), "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return dict(container)


@pytest.fixture(scope="module")
def ignore_patterns() -> list[str]:
    lines = DOCKERIGNORE.read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def test_multi_stage(stages: list[Stage]) -> None:
    assert len(stages) >= 2
    final = stages[-1]
    earlier = {stage.name for stage in stages[:-1]}
    copied_from = {copy_sources(args)[0].get("from") for args in final.all("COPY")}
    assert copied_from & earlier, "the runtime stage takes nothing from the build stage"
    # Nothing is compiled or downloaded in the runtime stage: only users are created there.
    assert not [run for run in final.all("RUN") if "pip" in run]


def test_python_matches_the_project(stages: list[Stage]) -> None:
    default = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", DOCKERFILE.read_text(), re.M)
    assert default is not None
    assert default.group(1).startswith("python:3.11-")
    assert all(stage.base == "${PYTHON_IMAGE}" for stage in stages)


def test_runs_as_the_charts_non_root_user(stages: list[Stage], operator_container: dict[str, Any]) -> None:
    users = stages[-1].all("USER")
    assert users, "the runtime stage sets no USER"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) != 0, "a numeric non-root USER lets runAsNonRoot verify it"
    assert gid.isdigit() and int(gid) != 0
    deployment = find(documents(Helm(helm_binary()).template()), "Deployment")
    assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == int(uid)


def test_entrypoint_is_the_charts_command(stages: list[Stage], operator_container: dict[str, Any]) -> None:
    (entrypoint,) = stages[-1].all("ENTRYPOINT")
    (cmd,) = stages[-1].all("CMD")
    assert json.loads(entrypoint) == operator_container["command"] == ["python", "-m", "jitaccess"]
    assert json.loads(cmd) == operator_container["args"]


def test_exposes_the_charts_ports(stages: list[Stage], operator_container: dict[str, Any]) -> None:
    exposed = {int(port) for args in stages[-1].all("EXPOSE") for port in args.split()}
    assert {port["containerPort"] for port in operator_container["ports"]} == exposed


def test_every_copy_source_exists_and_is_sent(stages: list[Stage], ignore_patterns: list[str]) -> None:
    sources = [src for stage in stages for args in stage.all("COPY") for src in _local_sources(args)]
    assert sources, "no COPY from the build context"
    for source in sources:
        path = REPO / source
        assert path.exists(), f"COPY {source}: not in the repository"
        files = [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else [path]
        sent = [f for f in files if not ignored(str(f.relative_to(REPO)), ignore_patterns)]
        assert sent, f"COPY {source}: .dockerignore leaves nothing of it in the build context"


def test_package_sources_reach_the_image(ignore_patterns: list[str]) -> None:
    for needed in ("pyproject.toml", "requirements-image.txt", "operator/jitaccess/__main__.py"):
        assert (REPO / needed).exists()
        assert not ignored(needed, ignore_patterns), f".dockerignore drops {needed}"
    for dropped in ("devenv/dev.py", "tests/support/harness.py", ".git/HEAD", "charts/jitaccess/Chart.yaml"):
        assert ignored(dropped, ignore_patterns), f"{dropped} need not be in the build context"


def test_image_dependencies_are_pinned_within_the_projects_ranges() -> None:
    lines = [line.strip() for line in REQUIREMENTS.read_text().splitlines()]
    pins = [line for line in lines if line and not line.startswith("#")]
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+==[A-Za-z0-9.+!-]+", pin) for pin in pins), "only name==version lines"
    pinned = {canonicalize_name(name): version for name, version in (pin.split("==") for pin in pins)}
    assert len(pinned) == len(pins), "a package is pinned twice"
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    for dependency in map(Requirement, project):
        name = canonicalize_name(dependency.name)
        assert name in pinned, f"{dependency.name} is a dependency of the project but not pinned for the image"
        assert dependency.specifier.contains(pinned[name]), f"{dependency.name}=={pinned[name]} is not {dependency}"


def _local_sources(args: str) -> list[str]:
    flags, sources = copy_sources(args)
    return [] if "from" in flags else [s.rstrip("/") or "." for s in sources]


@pytest.mark.parametrize(
    ("path", "patterns", "expected"),
    [
        ("a/b.py", ["*", "!a/"], False),
        ("c.txt", ["*", "!a/"], True),
        ("a/__pycache__/x.pyc", ["*", "!a/", "a/**/__pycache__"], False),
        ("a/x/__pycache__", ["*", "!a/", "a/*/__pycache__"], True),
    ],
)
def test_ignore_rule(path: str, patterns: list[str], expected: bool) -> None:
    assert ignored(path, patterns) is expected


def test_parse_joins_continuations() -> None:
    (stage,) = parse("FROM x AS b\n# note\nRUN a \\\n    && b\nUSER 1:1\n")
    assert stage.name == "b"
    assert stage.all("RUN") == ["a && b"]
    assert stage.all("USER") == ["1:1"]

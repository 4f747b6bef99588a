"""The chart under test and the `helm` binary that checks it.

`helm` is built from the helm.sh/helm/v3 Go module pinned in tests/helm/go.mod by
tests/helm/build.sh, into the user cache, like the control plane (docs/development.md); the script is
cached by a hash of its inputs, so finding the binary costs milliseconds once it is built (the first
build takes a few minutes). ``$JITACCESS_HELM_BIN`` names a helm binary to use instead.

`Helm` uses a helm home (config, cache, data) of its own, in that cache, so nothing a developer
configured for their own helm (repositories, plugins, registry logins) leaks into the tests.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from devenv.processes import built_binary

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "jitaccess"
BUILD_SCRIPT = Path(__file__).with_name("build.sh")
BINARY_ENV = "JITACCESS_HELM_BIN"


def helm_binary() -> Path:
    """``$JITACCESS_HELM_BIN``, else the binary build.sh prints (building it when needed)."""
    return built_binary(BINARY_ENV, BUILD_SCRIPT, RuntimeError)


def _cache() -> Path:
    """Where build.sh puts helm: ${JITACCESS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/jitaccess}/helm."""
    root = os.environ.get("JITACCESS_CACHE") or str(
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "jitaccess"
    )
    return Path(root) / "helm"


class Helm:
    """`helm` with a private home; `kubeconfig` for the commands that talk to a cluster."""

    def __init__(self, binary: Path, home: Path | None = None, kubeconfig: Path | None = None) -> None:
        self.binary = binary
        self.home = home or _cache() / "home"
        self.kubeconfig = kubeconfig

    def for_cluster(self, kubeconfig: Path) -> Helm:
        return Helm(self.binary, self.home, kubeconfig)

    def _env(self) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if not key.startswith("HELM_")}
        env.pop("KUBECONFIG", None)
        for kind in ("CACHE", "CONFIG", "DATA"):
            env[f"HELM_{kind}_HOME"] = str(self.home / kind.lower())
        if self.kubeconfig is not None:
            env["KUBECONFIG"] = str(self.kubeconfig)
        env["NO_PROXY"] = ",".join(filter(None, ["127.0.0.1,localhost", env.get("NO_PROXY", "")]))
        return env

    def run(self, *args: str, check: bool = True, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(self.binary), *args], capture_output=True, text=True, env=self._env(), timeout=timeout, check=False
        )
        if check and result.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
        return result

    def template(
        self,
        release: str = "jitaccess",
        namespace: str = "jitaccess-system",
        *,
        chart: Path = CHART,
        values: Iterable[Path] = (),
        set_values: Mapping[str, str] | None = None,
        include_crds: bool = False,
    ) -> str:
        args = ["template", release, str(chart), "--namespace", namespace, *value_args(values, set_values)]
        if include_crds:
            args.append("--include-crds")
        return self.run(*args).stdout


def value_args(values: Iterable[Path] = (), set_values: Mapping[str, str] | None = None) -> list[str]:
    args: list[str] = []
    for path in values:
        args += ["--values", str(path)]
    for key, value in (set_values or {}).items():
        args += ["--set", f"{key}={value}"]
    return args


def documents(manifest: str) -> list[dict[str, Any]]:
    """The objects of a multi-document YAML stream, empty documents dropped."""
    return [doc for doc in yaml.safe_load_all(manifest) if doc]


def find(objects: Iterable[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    """The one object of `kind` (and `name`); fails listing what there is."""
    matches = [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    if len(matches) != 1:
        present = sorted(f"{o['kind']}/{o['metadata']['name']}" for o in objects)
        raise AssertionError(f"expected one {kind} {name or ''}, found {len(matches)} among {present}")
    return matches[0]

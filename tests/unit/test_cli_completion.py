"""Shell completion: the `__complete` protocol, and the bash and zsh scripts run in those shells."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from jitaccess.api import names
from jitaccess.cli import completion

SCRIPT = Path(sys.executable).parent / "kubectl-jit"


def complete(*words: str) -> tuple[list[str], str]:
    out = io.StringIO()
    assert completion.complete(list(words), out) == 0
    *lines, directive = out.getvalue().splitlines()
    return [line.split("\t")[0] for line in lines], directive


def test_commands_flags_and_fixed_values() -> None:
    assert complete("")[0] == [
        "request",
        "approve",
        "deny",
        "revoke",
        "done",
        "extend",
        "withdraw",
        "list",
        "status",
        "who-has",
        "permissions",
        "audit",
        "review",
        "break-glass",
        "rbac",
        "completion",
    ]
    assert complete("rbac", "")[0] == ["slack"]
    assert complete("d") == (["deny", "done"], ":4")
    assert "--no-wait" in complete("request", "--")[0] and "--reason" in complete("request", "--")[0]
    assert complete("request", "--for", "") == (["15m", "30m", "1h", "2h", "4h"], ":4")
    assert complete("list", "-o", "j") == (["json"], ":4")
    assert complete("list", "--output=y") == (["--output=yaml"], ":4")
    assert complete("completion", "") == (["bash", "zsh"], ":4")
    assert complete("audit", "--since", "") == (["12h", "1d", "7d", "30d", "90d"], ":4")
    assert complete("audit", "-o", "") == (["table", "json", "csv"], ":4")
    assert complete("review", "e", "--days", "") == (["7", "30", "90"], ":4")
    assert complete("request", "--kubeconfig", "") == ([], ":0"), "files for --kubeconfig"
    assert complete("status", "one", "") == ([], ":4"), "one name only"
    assert complete("revoke", "--u") == (["--uid"], ":4")
    assert complete("revoke", "--uid", "") == ([], ":4"), "a uid is the message's, never guessed"


def test_the_kubectl_complete_entry_point(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from jitaccess.cli import main

    monkeypatch.setattr(sys, "argv", ["kubectl_complete-jit", "who"])
    assert main.complete() == 0
    assert capsys.readouterr().out.splitlines() == [
        "who-has\twho holds an entitlement (or any, without one) now, until when, why, approved by whom",
        ":4",
    ]


def test_names_come_from_the_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    def request(name: str, ready: str) -> dict[str, Any]:
        return {
            "metadata": {"name": name},
            "spec": {"entitlement": "e", "requester": "a"},
            "status": {"conditions": [{"type": "Ready", "status": "False", "reason": ready}]},
        }

    def glass(name: str, *conditions: str) -> dict[str, Any]:
        made = request(name, "Granted")
        made["spec"]["breakGlass"] = True
        made["status"]["conditions"] += [{"type": c, "status": "True"} for c in conditions]
        return made

    items = {
        names.REQUESTS: [
            request("r-pending", "Pending"),
            request("r-done", "Expired"),
            request("r-later", "Scheduled"),
            glass("r-glass", "Approved"),
            glass("r-glass-reviewed", "Approved", "Reviewed"),
        ],
        names.ENTITLEMENTS: [{"metadata": {"name": "prod-eng-payments"}, "spec": {"owner": "payments"}}],
        names.GRANTS: [{"metadata": {"name": "g-live"}, "spec": {"user": "a", "groupName": "g"}, "status": {}}],
        names.TEAMS: [{"metadata": {"name": "payments"}}],
        names.EXTENSIONS: [
            {**request("x-waits", "Pending"), "spec": {"grant": "g-live", "duration": "30m", "requester": "a"}},
            {**request("x-done", "Extended"), "spec": {"grant": "g-live", "duration": "30m", "requester": "a"}},
        ],
    }
    seen: list[dict[str, str]] = []

    def fake_items(plural: str, cluster: dict[str, str]) -> list[dict[str, Any]]:
        seen.append(cluster)
        return items[plural]

    monkeypatch.setattr(completion, "_items", fake_items)
    assert complete("approve", "")[0] == ["r-pending", "extension/x-waits"]
    assert complete("extend", "")[0] == ["g-live"]
    assert complete("withdraw", "")[0] == ["r-pending"]
    assert complete("status", "r-")[0] == ["r-done", "r-glass", "r-glass-reviewed", "r-later", "r-pending"]
    assert complete("--context", "ctx", "request", "--kubeconfig", "/k", "prod")[0] == ["prod-eng-payments"]
    assert seen[-1] == {"context": "ctx", "kubeconfig": "/k"}
    assert complete("revoke", "")[0] == ["g-live", "r-later"], "a Scheduled request is revoked before it starts"
    assert complete("revoke", "--uid", "u-1", "")[0] == ["g-live", "r-later"], "the uid is no GRANT"
    assert complete("list", "--team", "")[0] == ["payments"]
    assert complete("review", "")[0] == ["prod-eng-payments", "request/r-glass"], "an entitlement, or one to review"
    assert complete("audit", "--entitlement", "p")[0] == ["prod-eng-payments"]


def test_errors_mean_no_candidates(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(plural: str, cluster: dict[str, str]) -> list[dict[str, Any]]:
        raise RuntimeError("cluster down")

    monkeypatch.setattr(completion, "_items", broken)
    assert complete("approve", "") == ([], ":4")


def test_bash_script_completes_through_the_executable() -> None:
    script = completion.script("bash")
    line = f'COMP_WORDS=({SCRIPT} list --o); COMP_CWORD=2; _kubectl_jit; printf "%s\\n" "${{COMPREPLY[@]}}"'
    done = subprocess.run(["bash", "-c", f"{script}\n{line}"], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["--output"]
    line = f'COMP_WORDS=({SCRIPT} d); COMP_CWORD=1; _kubectl_jit; printf "%s\\n" "${{COMPREPLY[@]}}"'
    done = subprocess.run(["bash", "-c", f"{script}\n{line}"], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["deny", "done"]


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed")
def test_zsh_script_completes_through_the_executable(tmp_path: Path) -> None:
    driver = tmp_path / "driver.zsh"
    driver.write_text(
        "autoload -U compinit && compinit -u -d "
        + str(tmp_path / "zcompdump")
        + "\n"
        + completion.script("zsh")
        + "[[ $_comps[kubectl-jit] == _kubectl_jit ]] || { print 'not registered'; exit 1 }\n"
        + "_describe() { print -l -- ${(P)${@[-1]}} }\n"
        + f"words=({SCRIPT} list --output ''); CURRENT=4; _kubectl_jit\n"
    )
    done = subprocess.run(
        ["zsh", "-f", str(driver)],
        capture_output=True,
        text=True,
        check=False,
        env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["table", "json", "yaml"]

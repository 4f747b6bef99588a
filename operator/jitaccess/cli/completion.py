"""Shell completion: the bash and zsh scripts, and the `__complete` protocol behind them.

`kubectl-jit __complete WORD... CURRENT` prints one candidate per line (`value<TAB>description`)
and a last line `:<directive>`, the protocol of Cobra, which kubectl (1.26+) also speaks to a
plugin's `kubectl_complete-jit` executable. So one implementation serves `kubectl-jit <TAB>`
(through the scripts here) and `kubectl jit <TAB>` (through that executable).

Commands, flags and fixed values come from the argument parser; names of objects (pending
requests and extensions for `approve`, active grants for `revoke` and `extend`, entitlements, teams) from the cluster, with
a short timeout and silence on any error: completion must never print an error into a prompt.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, TextIO

from jitaccess.api import names, wire
from jitaccess.cli.parser import COMMAND_HELP, build_parser
from jitaccess.cli.text import printable

if TYPE_CHECKING:
    from jitaccess.cli.kube import KubeApi

# Cobra's ShellCompDirective bits.
DEFAULT = 0
NO_FILE = 4

_FIXED_VALUES = {
    "--for": ["15m", "30m", "1h", "2h", "4h"],
    "--timeout": ["30s", "1m", "5m", "15m", "1h"],
    "--since": ["12h", "1d", "7d", "30d", "90d"],
    "--days": ["7", "30", "90"],
}
_FILE_FLAGS = {"--kubeconfig"}
_CLUSTER_FLAGS = {"--kubeconfig": "kubeconfig", "--context": "context", "--as": "impersonate"}

BASH = r"""# bash completion for kubectl-jit. Load it with:  source <(kubectl-jit completion bash)
# (for `kubectl jit <TAB>` see `kubectl-jit completion --help`)
_kubectl_jit() {
    local cur="${COMP_WORDS[COMP_CWORD]}" out directive line
    local -a candidates=()
    out=$("${COMP_WORDS[0]}" __complete "${COMP_WORDS[@]:1:COMP_CWORD}" 2>/dev/null) || return 0
    directive="${out##*:}"
    out="${out%:*}"
    while IFS= read -r line; do
        [[ -n "$line" ]] && candidates+=("${line%%$'\t'*}")
    done <<< "$out"
    local IFS=$'\n'
    COMPREPLY=($(compgen -W "${candidates[*]}" -- "$cur"))
    if (( ${#COMPREPLY[@]} == 0 && (directive & 4) == 0 )); then
        compopt -o default 2>/dev/null
    fi
    return 0
}
complete -F _kubectl_jit kubectl-jit
"""

ZSH = r"""#compdef kubectl-jit
# zsh completion for kubectl-jit. Load it (after compinit) with:  source <(kubectl-jit completion zsh)
# (for `kubectl jit <TAB>` see `kubectl-jit completion --help`)
_kubectl_jit() {
    local out directive line name desc
    local -a lines candidates
    out=$("${words[1]}" __complete "${(@)words[2,CURRENT]}" 2>/dev/null) || return 1
    lines=("${(@f)out}")
    directive="${lines[-1]#:}"
    for line in "${(@)lines[1,-2]}"; do
        [[ -z "$line" ]] && continue
        name="${line%%$'\t'*}"
        desc=""
        [[ "$line" == *$'\t'* ]] && desc="${line#*$'\t'}"
        candidates+=("${name//:/\\:}${desc:+:$desc}")
    done
    if (( ${#candidates} )); then
        _describe -t values 'kubectl-jit' candidates
    elif (( (directive & 4) == 0 )); then
        _files
    fi
}
compdef _kubectl_jit kubectl-jit
"""


def script(shell: str) -> str:
    return BASH if shell == "bash" else ZSH


class _Command:
    """What completion needs to know of one (sub)parser: its flags and which take a value."""

    def __init__(self, parser: argparse.ArgumentParser) -> None:
        self.flags: dict[str, tuple[str, bool, list[str]]] = {}
        for action in parser._actions:
            takes_value = action.nargs != 0
            choices = [str(c) for c in action.choices] if isinstance(action.choices, Iterable) else []
            for option in action.option_strings:
                self.flags[option] = (action.help if isinstance(action.help, str) else "", takes_value, choices)


def _commands() -> tuple[_Command, dict[str, tuple[str, _Command]]]:
    parser = build_parser()
    subs: dict[str, tuple[str, _Command]] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                subs[name] = (COMMAND_HELP.get(name, ""), _Command(sub))
    return _Command(parser), subs


def complete(words: list[str], out: TextIO) -> int:
    """Answer one completion question; always exit 0 (errors mean: no candidates)."""
    try:
        candidates, directive = _candidates(words or [""])
    except Exception:
        candidates, directive = [], NO_FILE
    for value, description in candidates:
        # One candidate a line, tab-separated: a newline or tab from the server would break that.
        out.write(f"{printable(value)}\t{printable(description)}\n" if description else f"{printable(value)}\n")
    out.write(f":{directive}\n")
    return 0


def _candidates(words: list[str]) -> tuple[list[tuple[str, str]], int]:
    current, before = words[-1], words[:-1]
    root, subs = _commands()
    command: str | None = None
    positionals: list[str] = []
    cluster: dict[str, str] = {}
    expecting: str | None = None
    for word in before:
        if expecting is not None:
            if expecting in _CLUSTER_FLAGS:
                cluster[_CLUSTER_FLAGS[expecting]] = word
            expecting = None
            continue
        if word.startswith("-"):
            flag, has_value, value = word.partition("=")
            spec = (subs[command][1] if command else root).flags.get(flag) or root.flags.get(flag)
            if has_value and flag in _CLUSTER_FLAGS:
                cluster[_CLUSTER_FLAGS[flag]] = value
            elif spec is not None and spec[1] and not has_value:
                expecting = flag
            continue
        if command is None and word in subs:
            command = word
        else:
            positionals.append(word)
    scope = subs[command][1] if command else root
    if expecting is not None:
        return _flag_values(expecting, current, scope, cluster, prefix="")
    if current.startswith("-") and "=" in current:
        flag, _, partial = current.partition("=")
        return _flag_values(flag, partial, scope, cluster, prefix=f"{flag}=")
    if current.startswith("-"):
        flags = {**root.flags, **scope.flags}
        return [(f, flags[f][0]) for f in sorted(flags) if f.startswith(current)], NO_FILE
    if command is None:
        return [(name, help_) for name, (help_, _) in subs.items() if name.startswith(current)], NO_FILE
    if positionals:
        return [], NO_FILE
    return _positional(command, current, cluster), NO_FILE


def _flag_values(
    flag: str, current: str, scope: _Command, cluster: dict[str, str], *, prefix: str
) -> tuple[list[tuple[str, str]], int]:
    if flag in _FILE_FLAGS:
        return [], DEFAULT
    spec = scope.flags.get(flag)
    values: list[tuple[str, str]] = []
    if spec is not None and spec[2]:
        values = [(v, "") for v in spec[2]]
    elif flag in _FIXED_VALUES:
        values = [(v, "") for v in _FIXED_VALUES[flag]]
    elif flag == "--context":
        from jitaccess.cli.kube import context_names

        values = [(name, "") for name in context_names(cluster.get("kubeconfig"))]
    elif flag == "--team":
        values = [(name, "team") for name in _names(names.TEAMS, cluster)]
    elif flag == "--entitlement":
        values = _entitlements(cluster)
    return [(prefix + v, d) for v, d in values if v.startswith(current)], NO_FILE


def _positional(command: str, current: str, cluster: dict[str, str]) -> list[tuple[str, str]]:
    if command == "completion":
        values = [("bash", ""), ("zsh", "")]
    elif command == "rbac":
        values = [("slack", "whom the Slack endpoint may act as")]
    elif command == "permissions":
        values = [(name, "team") for name in _names(names.CATALOGS, cluster)]
    elif command in ("request", "who-has", "break-glass"):
        values = _entitlements(cluster)
    elif command == "review":
        # An Entitlement's access review, or a break-glass request's review by the owner team (a
        # bare name never records a review: `breakglass.review_target`).
        values = _entitlements(cluster) + _unreviewed(cluster)
    elif command in ("approve", "deny", "status", "withdraw"):
        values = _requests(cluster, pending_only=command != "status")
        if command in ("approve", "deny"):
            # By kind: a bare name is a request's (`decisions.decision_target`).
            values += _waiting_extensions(cluster)
    elif command == "revoke":
        # A live grant, or a request approved for a later start (revoked before it starts).
        values = _grants(cluster) + _requests(cluster, scheduled_only=True)
    elif command == "extend":
        values = _grants(cluster)
    else:
        values = []
    return [(v, d) for v, d in values if v.startswith(current)]


def _api(cluster: dict[str, str]) -> KubeApi:
    from jitaccess.cli.kube import KubeApi, load_credentials

    creds = load_credentials(cluster.get("kubeconfig"), cluster.get("context"), cluster.get("impersonate"))
    return KubeApi(creds, timeout=5.0)


def _items(plural: str, cluster: dict[str, str]) -> list[dict[str, Any]]:
    from jitaccess.cli import objects as o

    return o.list_all(_api(cluster), plural)[0]


def _names(plural: str, cluster: dict[str, str]) -> list[str]:

    return sorted(wire.name_of(item) for item in _items(plural, cluster))


def _entitlements(cluster: dict[str, str]) -> list[tuple[str, str]]:

    return sorted(
        (wire.name_of(e), f"team {wire.spec(e).get('owner', '?')}")
        for e in _items(names.ENTITLEMENTS, cluster)
        # A deleted one waits for its grants to end: nothing new can be asked of it.
        if not wire.deleting(e)
    )


def _requests(
    cluster: dict[str, str], *, pending_only: bool = False, scheduled_only: bool = False
) -> list[tuple[str, str]]:
    from jitaccess.cli import objects as o

    requests = [
        r
        for r in _items(names.REQUESTS, cluster)
        if (not pending_only or o.awaiting_decision(r))
        and (not scheduled_only or wire.ready_reason(r) == names.SCHEDULED)
    ]
    return sorted(
        (wire.name_of(r), f"{o.requester(r)} {wire.spec(r).get('entitlement', '')} {wire.ready_reason(r) or 'New'}")
        for r in requests
    )


def _unreviewed(cluster: dict[str, str]) -> list[tuple[str, str]]:
    from jitaccess.cli import objects as o

    return sorted(
        (
            f"request/{wire.name_of(r)}",
            f"{o.requester(r)} {wire.spec(r).get('entitlement', '')} break-glass, not reviewed",
        )
        for r in _items(names.REQUESTS, cluster)
        if wire.spec(r).get("breakGlass") is True
        and wire.is_true(r, names.APPROVED)
        and not wire.is_true(r, names.REVIEWED)
    )


def _waiting_extensions(cluster: dict[str, str]) -> list[tuple[str, str]]:
    waiting = [x for x in _items(names.EXTENSIONS, cluster) if wire.ready_reason(x) == names.PENDING]
    return sorted(
        (f"extension/{wire.name_of(x)}", f"{wire.spec(x).get('requester')} +{wire.spec(x).get('duration')}")
        for x in waiting
    )


def _grants(cluster: dict[str, str]) -> list[tuple[str, str]]:

    grants = [g for g in _items(names.GRANTS, cluster) if wire.ready_reason(g) not in names.GRANT_FINISHED]
    return sorted((wire.name_of(g), f"{wire.spec(g).get('user')} {wire.spec(g).get('groupName')}") for g in grants)

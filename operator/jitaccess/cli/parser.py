"""The command line of `kubectl jit`: the argument parser, its help texts and the command names.

Both `main` (to run a command) and `completion` (to complete one) read the parser built here, so
neither imports the other. The exit codes printed under every --help come from `errors`, their
one definition.
"""

from __future__ import annotations

import argparse
from datetime import timedelta

from jitaccess import __version__
from jitaccess.cli.errors import EXIT_CODES_HELP

PROG = "kubectl jit"
DESCRIPTION = "Just-in-time production access: request it, approve it, end it, see who has it."
COMMAND_HELP = {
    "request": "request an entitlement (your team's, when none is named) and wait until access is active",
    "approve": "approve a pending request (approvers of the owner team)",
    "deny": "deny a pending request, saying why",
    "revoke": "end a grant early (its grantee, or an approver of the owner team)",
    "done": "end all of your own active grants",
    "list": "list access requests",
    "status": "show a request and its grant: state, conditions, who approved, expiry",
    "who-has": "who holds an entitlement now, until when, why, approved by whom",
    "completion": "print a shell completion script (bash or zsh)",
}
COMPLETION_EPILOG = """\
load it:
  bash:  source <(kubectl-jit completion bash)      (e.g. in ~/.bashrc)
  zsh:   source <(kubectl-jit completion zsh)       (after compinit, e.g. in ~/.zshrc)

That completes `kubectl-jit ...`. For `kubectl jit <TAB>`, kubectl (1.26 or newer) asks an
executable named kubectl_complete-jit on PATH; create it once:
  printf '#!/bin/sh\\nexec kubectl-jit __complete "$@"\\n' > ~/.local/bin/kubectl_complete-jit
  chmod +x ~/.local/bin/kubectl_complete-jit
"""


def _duration(text: str) -> timedelta:
    from jitaccess.domain.durations import parse_duration
    from jitaccess.errors import InvalidInput

    try:
        return parse_duration(text, "the duration")
    except InvalidInput as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _cluster_flags() -> argparse.ArgumentParser:
    # SUPPRESS defaults let the flags go before or after the command without one erasing the other.
    flags = argparse.ArgumentParser(add_help=False)
    group = flags.add_argument_group("kubectl flags")
    group.add_argument(
        "--kubeconfig",
        metavar="PATH",
        default=argparse.SUPPRESS,
        help="kubeconfig file (default: $KUBECONFIG, else ~/.kube/config)",
    )
    group.add_argument(
        "--context",
        metavar="NAME",
        default=argparse.SUPPRESS,
        help="kubeconfig context to use (default: its current-context)",
    )
    group.add_argument(
        "--as",
        dest="impersonate",
        metavar="USER",
        default=argparse.SUPPRESS,
        help="act as this user (impersonation; needs the impersonate permission)",
    )
    group.add_argument(
        "--as-group",
        dest="impersonate_groups",
        metavar="GROUP",
        action="append",
        default=argparse.SUPPRESS,
        help="act as a member of this group (repeatable; needs --as)",
    )
    return flags


def build_parser() -> argparse.ArgumentParser:
    cluster = _cluster_flags()
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=DESCRIPTION,
        epilog=EXIT_CODES_HELP,
        formatter_class=formatter,
        parents=[cluster],
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"kubectl-jit {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, description: str = "", epilog: str = EXIT_CODES_HELP) -> argparse.ArgumentParser:
        return commands.add_parser(
            name,
            help=COMMAND_HELP[name],
            description=description or COMMAND_HELP[name].capitalize() + ".",
            epilog=epilog,
            formatter_class=formatter,
            parents=[cluster],
            allow_abbrev=False,
        )

    request = command(
        "request",
        "Request an entitlement and wait until access is active.\n\n"
        "With no ENTITLEMENT, proposes your team's (on a terminal). Asks for the duration and the\n"
        "reason when they are not given and a terminal is attached; without one, --reason is required.\n"
        "A server-side dry run first: a refusal is printed and nothing is created.",
    )
    request.add_argument("entitlement", nargs="?", metavar="ENTITLEMENT", help="the Entitlement to request")
    request.add_argument(
        "--for",
        dest="duration",
        metavar="DURATION",
        help="how long, e.g. 30m, 1h, 1h30m (default: the entitlement's defaultDuration)",
    )
    request.add_argument("--reason", metavar="TEXT", help="why you need access (often: a ticket id first)")
    request.add_argument(
        "--wait",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="wait until access is active, also through a human approval (default); with "
        "--no-wait, return once the operator has routed the request (exit 3 if it needs "
        "an approval)",
    )
    request.add_argument(
        "--timeout",
        type=_duration,
        metavar="DURATION",
        help="stop waiting after this long, with exit code 3 (default: 15m; 30s with --no-wait)",
    )

    approve = command("approve")
    approve.add_argument("name", metavar="NAME", help="the AccessRequest")
    approve.add_argument("--reason", metavar="TEXT", help="why (recorded with the decision)")

    deny = command("deny")
    deny.add_argument("name", metavar="NAME", help="the AccessRequest")
    deny.add_argument("--reason", metavar="TEXT", required=True, help="why (the requester reads it)")

    for name, what in (("revoke", "the AccessGrant (same name as its request)"), ("done", "")):
        parser_ = command(name)
        if what:
            parser_.add_argument("name", metavar="GRANT", help=what)
            parser_.add_argument("--reason", metavar="TEXT", help="why (recorded on the grant)")
        parser_.add_argument(
            "--wait",
            action=argparse.BooleanOptionalAction,
            default=True,
            help="wait until the operator has ended the access (default)",
        )
        parser_.add_argument(
            "--timeout",
            type=_duration,
            metavar="DURATION",
            help="stop waiting after this long, with exit code 3 (default: 30s)",
        )

    listing = command("list", "List access requests, oldest first.")
    listing.add_argument("--pending", action="store_true", help="only requests waiting for a decision")
    listing.add_argument("--mine", action="store_true", help="only the requests you made")
    listing.add_argument("--team", metavar="TEAM", help="only requests for entitlements that TEAM owns")
    _output(listing)

    status = command("status")
    status.add_argument("name", metavar="NAME", help="the AccessRequest (or AccessGrant)")
    _output(status)

    who_has = command("who-has")
    who_has.add_argument("entitlement", metavar="ENTITLEMENT", help="the Entitlement")
    _output(who_has)

    completion = command("completion", epilog=COMPLETION_EPILOG)
    completion.add_argument("shell", choices=("bash", "zsh"), help="the shell")
    return parser


def _output(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-o", "--output", choices=("table", "json", "yaml"), default="table", help="output format (default: table)"
    )

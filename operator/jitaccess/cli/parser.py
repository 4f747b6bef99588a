"""The command line of `kubectl jit`: the argument parser, its help texts and the command names.

Both `main` (to run a command) and `completion` (to complete one) read the parser built here, so
neither imports the other. The exit codes printed under every --help come from `errors`, their
one definition.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from jitaccess import __version__
from jitaccess.cli.errors import DOUBTFUL, EXIT_CODES_HELP

PROG = "kubectl jit"
ARCHIVE_ENV = "JITACCESS_AUDIT_ARCHIVE"
_UID_HELP = (
    "decide only if NAME is still this object (its metadata.uid, as the Slack message gives it): a request "
    "withdrawn and created again under the same name is another object"
)
DESCRIPTION = "Just-in-time production access: request it, approve it, end it, see who has it."
COMMAND_HELP = {
    "request": "request an entitlement (your team's, when none is named) and wait until access is active",
    "approve": "approve a pending request or extension (approvers of the owner team)",
    "deny": "deny a pending request or extension, saying why",
    "revoke": "end a grant early (its grantee, or an approver of the owner team); --all: everything, in an incident",
    "extend": "ask for more time on one of your active grants, and wait until its new end is set",
    "done": "end all of your own active grants",
    "withdraw": "withdraw your own pending or Scheduled request (it is deleted; nothing is granted of it)",
    "list": "list access requests",
    "status": "show a request and its grant: state, conditions, who approved, expiry",
    "who-has": "who holds an entitlement (or any, without one) now, until when, why, approved by whom",
    "permissions": "what a team's roles may do in AWS (baseline, and what production adds) and their state",
    "audit": "the audit trail: who requested, decided, was granted and ended what, and when",
    "review": "review an entitlement: who used it and how often, who never did, reasons without a ticket; "
    "or review a break-glass request (approvers of the owner team)",
    "break-glass": "approve your own request in an emergency, where the entitlement allows it (reviewed afterwards)",
    "rbac": "print RBAC for the platform team: `slack`, whom the Slack endpoint may act as (the approvers)",
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


#: The flags that take a duration. argparse reads a value that begins with '-' (`--for -5m`) as
#: another option and says only "expected one argument": `attach_negative_durations` hands it to
#: the flag, whose check then says what a duration is.
DURATION_FLAGS = frozenset({"--for", "--by", "--timeout"})
_NEGATIVE = re.compile(r"^-[0-9]")


def attach_negative_durations(argv: Sequence[str]) -> list[str]:
    """`argv` with each duration flag followed by a negative value written as one `--for=-5m`."""
    joined: list[str] = []
    i = 0
    while i < len(argv):
        if argv[i] in DURATION_FLAGS and i + 1 < len(argv) and _NEGATIVE.match(argv[i + 1]):
            joined.append(f"{argv[i]}={argv[i + 1]}")
            i += 2
        else:
            joined.append(argv[i])
            i += 1
    return joined


def _duration(text: str) -> timedelta:
    from jitaccess.domain.durations import parse_duration
    from jitaccess.errors import InvalidInput

    if text.strip().startswith("-"):
        raise argparse.ArgumentTypeError(
            f"the duration {text.strip()!r} is negative: durations are positive, such as 30m, 1h or 1h30m"
        )
    try:
        return parse_duration(text, "the duration")
    except InvalidInput as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _duration_text(text: str) -> str:
    """A duration the server is to read (`spec.duration`), checked here first: as written."""
    _duration(text)
    return text


_SINCE_PART = re.compile(r"([0-9]+)([dhm])")
_SINCE_WHOLE = re.compile(r"^([0-9]+[dhm])+$")
_SINCE_UNITS = {"d": 86400, "h": 3600, "m": 60}
# RFC 3339 with its zone required: a time without one would silently mean the caller's local time.
_RFC3339 = re.compile(
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})$"
)
#: A point in time as `--since` and `--until` take it: how long ago (a timedelta), or a time with a zone.
Moment = timedelta | datetime


def since(text: str) -> timedelta:
    """A look-back window such as `30d`, `12h` or `1d12h` (days, hours, minutes), at most ten years."""
    from jitaccess.domain.durations import LONGEST

    cleaned = text.strip()
    if not _SINCE_WHOLE.match(cleaned):
        raise argparse.ArgumentTypeError(
            f"{cleaned!r} is not a window: use whole numbers with units d, h, m (30d, 12h)"
        )
    seconds = sum(int(n) * _SINCE_UNITS[unit] for n, unit in _SINCE_PART.findall(cleaned))
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"{cleaned!r} is zero: the window must be positive")
    if seconds > LONGEST.total_seconds():
        # As for durations: past what a date can hold once taken from now (an OverflowError, which
        # argparse does not catch), and far past any record jitaccess keeps.
        raise argparse.ArgumentTypeError(
            f"{cleaned!r} is longer than {LONGEST.days}d (ten years), the longest look-back jitaccess takes"
        )
    return timedelta(seconds=seconds)


def moment(text: str) -> Moment:
    """`--since`/`--until`: how long ago (`7d`, `12h`, `1d12h`: that long before now), or an absolute
    RFC 3339 time with its zone (`2026-11-01T00:00:00Z`, `2026-11-01T02:00:00+02:00`). argparse
    names the flag in front of the error."""
    cleaned = text.strip()
    if _SINCE_WHOLE.match(cleaned):
        return since(cleaned)
    if _RFC3339.match(cleaned):
        try:
            return datetime.fromisoformat(cleaned.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError as exc:  # the right shape, but no such day or hour (2026-02-30, 25:00)
            raise argparse.ArgumentTypeError(f"{cleaned!r} is not a valid time ({exc})") from exc
    raise argparse.ArgumentTypeError(
        f"{cleaned!r} is neither how long ago (whole numbers with units d, h, m: 7d, 12h) nor an RFC 3339 "
        "time with its zone (2026-11-01T00:00:00Z, 2026-11-01T02:00:00+02:00)"
    )


def _named(what: str, without: str) -> Callable[[str], str]:
    """A filter's value, `what` (a team, an entitlement): never empty. Code that reads an empty value
    as a name not given would widen the filter to `without` (`revoke --all --team ""` ended every
    team's grants), so an empty value is refused. argparse names the flag in front of the error."""

    def named(text: str) -> str:
        if not text.strip():
            raise argparse.ArgumentTypeError(f"is empty: give {what}, or leave it out ({without})")
        return text

    return named


def _days(text: str) -> int:
    from jitaccess.domain.durations import LONGEST

    if not text.isdigit() or int(text) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of days (a whole number, 1 or more)")
    if int(text) > LONGEST.days:
        raise argparse.ArgumentTypeError(
            f"{text!r} is more than {LONGEST.days} days (ten years), the longest window jitaccess takes"
        )
    return int(text)


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
    request.add_argument(
        "entitlement",
        nargs="?",
        type=_named("an Entitlement", "then: your team's is proposed"),
        metavar="ENTITLEMENT",
        help="the Entitlement to request",
    )
    request.add_argument(
        "--for",
        dest="duration",
        type=_duration_text,
        metavar="DURATION",
        help="how long, e.g. 30m, 1h, 1h30m (default: the entitlement's defaultDuration)",
    )
    request.add_argument("--reason", metavar="TEXT", help="why you need access (often: a ticket id first)")
    request.add_argument(
        "--start",
        metavar="TIME",
        help="begin access at this time, not as soon as approved: RFC 3339 (2026-12-01T06:00:00Z) or from now "
        "(+30m); approval may come before, and the duration counts from the start",
    )
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
    approve.add_argument(
        "name",
        metavar="NAME",
        help="the AccessRequest (NAME, or `request/NAME`), or AccessExtension (`extension/NAME`, or its NAME with --uid)",
    )
    approve.add_argument("--reason", metavar="TEXT", help="why (recorded with the decision)")
    _uid(approve, _UID_HELP)

    deny = command("deny")
    deny.add_argument(
        "name",
        metavar="NAME",
        help="the AccessRequest (NAME, or `request/NAME`), or AccessExtension (`extension/NAME`, or its NAME with --uid)",
    )
    deny.add_argument("--reason", metavar="TEXT", required=True, help="why (the requester reads it)")
    _uid(deny, _UID_HELP)

    revoke_description = (
        "End a grant early (its grantee, an approver of the owner team, or an incident responder); named\n"
        "before its grant exists, a request approved for a later start (Scheduled) is revoked: it never starts,\n"
        "and one approved a moment ago has its grant waited for (the operator is making it) and revoked.\n\n"
        "With --all instead of GRANT (an incident): revoke every Active grant, deny every pending request\n"
        "and extension, and revoke every request approved for a later start (Scheduled), in every team\n"
        "or only in --team / --entitlement; --grants-only leaves requests and extensions alone. Your own\n"
        "pending and Scheduled requests and pending extensions are withdrawn. --reason is required and recorded on\n"
        "each. A request approved whose grant is not made yet has its grant waited for and revoked; one still\n"
        "without a grant at --timeout (or with --no-wait) is named as not ended, with the command that ends it.\n"
        "What you may not end is refused by the cluster, named on stderr; either makes the exit code\n"
        "1: incident responders (JITACCESS_RESPONDER_GROUPS, the chart's incidentResponders.groups) may\n"
        "end everyone's, others only their own grants and their teams' (as approvers)."
    )
    done_description = (
        "End all of your own grants that are active or still being provisioned.\n\n"
        "A grant already revoked (by an approver, say) is not marked again but waited for with the others;\n"
        "one the cluster refuses to revoke is named on stderr, the others are still ended, and the exit\n"
        "code is 1."
    )
    for name, what in (
        (
            "revoke",
            "the AccessGrant (same name as its request), or an AccessRequest approved for a later start "
            "(Scheduled) or a moment ago (its grant being made)",
        ),
        ("done", ""),
    ):
        parser_ = command(name, revoke_description if what else done_description)
        if what:
            parser_.add_argument("name", metavar="GRANT", nargs="?", help=what)
            parser_.add_argument(
                "--reason",
                metavar="TEXT",
                help="why (recorded on the grant or request; required with --all and of responders)",
            )
            _uid(
                parser_,
                'revoke only if GRANT is still this object (its metadata.uid, as the "access is active" message '
                "gives it): a grant ended, deleted and granted again under the same name is another object; "
                "a request's uid revokes the grant made for that request (or it, Scheduled)",
            )
            parser_.add_argument(
                "--all",
                dest="all_",
                action="store_true",
                help="every Active grant, pending and Scheduled request, pending extension (in scope) instead of one GRANT",
            )
            parser_.add_argument(
                "--entitlement",
                type=_named("an Entitlement", "then: every entitlement's"),
                metavar="NAME",
                help="with --all: only this entitlement's",
            )
            parser_.add_argument(
                "--team",
                type=_named("a team", "then: every team's"),
                metavar="TEAM",
                help="with --all: only entitlements that TEAM owns",
            )
            parser_.add_argument(
                "--grants-only",
                action="store_true",
                help="with --all: revoke grants, leave requests and extensions as they are",
            )
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
            help="stop waiting after this long, with exit code 3 (default: 30s)"
            + (
                "; as long again, first, for the grant of a request approved a moment ago to be made (then exit code 1)"
                if what
                else ""
            ),
        )

    extend = command(
        "extend",
        "Ask for more time on one of your Active grants, and wait until its new end is set.\n\n"
        "It follows the entitlement's approval rule: your own team's role is extended at once, another\n"
        "team's waits for its approvers (`kubectl jit approve NAME`). The whole grant stays within the\n"
        "entitlement's maxDuration, and a grant is extended at most its maxExtensions times.\n"
        "A server-side dry run first: a refusal is printed and nothing is created.",
    )
    extend.add_argument("name", metavar="GRANT", help="the AccessGrant (same name as its request)")
    extend.add_argument(
        "--by", required=True, type=_duration_text, metavar="DURATION", help="how much longer, e.g. 30m, 1h"
    )
    extend.add_argument("--reason", required=True, metavar="TEXT", help="why more time is needed")
    extend.add_argument(
        "--wait",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="wait until the new end is set, also through a human approval (default); with --no-wait, "
        "return once the operator has routed it (exit 3 if it needs an approval)",
    )
    extend.add_argument(
        "--timeout",
        type=_duration,
        metavar="DURATION",
        help="stop waiting after this long, with exit code 3 (default: 15m; 30s with --no-wait)",
    )

    withdraw = command(
        "withdraw",
        "Withdraw your own pending request: it is deleted, and nothing is granted of it.\n\n"
        "While nobody has approved or denied it, or, approved for a later start (Scheduled), until it\n"
        "starts. A request that was denied, or whose access has begun, stays as the record (end access\n"
        "with `kubectl jit done` or `kubectl jit revoke`).",
    )
    withdraw.add_argument("name", metavar="NAME", help="the AccessRequest")

    listing = command("list", "List access requests, oldest first.")
    listing.add_argument("--pending", action="store_true", help="only requests waiting for a decision")
    listing.add_argument("--mine", action="store_true", help="only the requests you made")
    listing.add_argument(
        "--team",
        type=_named("a team", "then: every team's"),
        metavar="TEAM",
        help="only requests for entitlements that TEAM owns",
    )
    _output(listing)

    status = command("status")
    status.add_argument(
        "name",
        metavar="NAME",
        nargs="?",
        help="the AccessRequest (or AccessGrant); `kubectl jit list --mine` lists yours",
    )
    _output(status)

    who_has = command("who-has")
    who_has.add_argument(
        "entitlement",
        metavar="ENTITLEMENT",
        nargs="?",
        type=_named("an Entitlement", "then: every entitlement"),
        help="the Entitlement (without one: every entitlement)",
    )
    _output(who_has)

    permissions = command(
        "permissions",
        "What a team's roles may do in AWS, from its PermissionCatalog: baseline and production side by\n"
        "side (production is baseline plus what it adds), then each permission set in Identity Center,\n"
        "its state in each account and the last provisioning result. With no TEAM, your own team(s).\n"
        "A team changes its roles by pull request to its catalog (GitOps); docs/api.md lists the IAM\n"
        "actions behind each line.",
    )
    permissions.add_argument(
        "team",
        nargs="?",
        type=_named("a team", "then: your own teams"),
        metavar="TEAM",
        help="the team (its TeamOwnership's name)",
    )
    _output(permissions)

    audit = command(
        "audit",
        "The audit trail: one record per decision (requested, approved, denied, granted, extended,\n"
        "revoked, expired, ...), oldest first, in the audit record schema (docs/audit.md).\n\n"
        "Records come from the S3 archive when one is configured (--archive, or the environment\n"
        f"variable {ARCHIVE_ENV}), else from the objects still in the cluster (finished requests\n"
        "are retired after a while, so the cluster holds only the recent past). A line on stderr,\n"
        "and the `source` field of -o json, say which. The archive is read with your own AWS\n"
        "credentials, as the AWS CLI finds them (AWS_PROFILE, AWS_REGION, AWS_ENDPOINT_URL_S3, ...).\n\n"
        "With --access: who had access in the window, one row per grant that overlaps it (however long\n"
        "before it began), e.g. --access --since 2026-11-01T00:00:00Z --until 2026-11-08T00:00:00Z.\n\n"
        "With --verify: whether the archive is as the operator wrote it, e.g. --verify --since 90d.",
    )
    audit.add_argument(
        "--since",
        type=moment,
        default=timedelta(days=30),
        metavar="WHEN",
        help="where the window starts: how long ago (12h, 7d) or an RFC 3339 time with its zone "
        "(2026-11-01T00:00:00Z) (default: 30d)",
    )
    audit.add_argument(
        "--until",
        type=moment,
        metavar="WHEN",
        help="where the window ends, read as --since is (7d: 7 days ago; 2026-11-08T00:00:00+01:00); "
        "not before --since (default: now)",
    )
    audit.add_argument(
        "--access",
        action="store_true",
        help="list access periods instead of records: one row per grant that overlaps the window "
        "(start, end or still active, how it ended, extensions, approvers, reason), and members the "
        "drift scan removed",
    )
    audit.add_argument(
        "--lookback",
        type=since,
        metavar="WINDOW",
        help="with --access and an archive: how far before the window to read, for grants that began "
        "before it (default: 30d)",
    )
    audit.add_argument(
        "--verify",
        action="store_true",
        help="with an archive: check it instead of listing records: every batch of the window's days is as the "
        "operator wrote it (its digest), none is missing, replaced or slipped in (each names the one before it); "
        f"exit {DOUBTFUL} when one is not",
    )
    audit.add_argument(
        "--public-key",
        metavar="FILE",
        action="append",
        help="with --verify: every batch must also carry a signature this key's holder made (the public half of "
        "the operator's KMS signing key: aws kms get-public-key --key-id KEY --output text --query PublicKey); "
        "again for each key of a window across a key rotation",
    )
    audit.add_argument(
        "--entitlement",
        type=_named("an Entitlement", "then: every entitlement's"),
        metavar="ENTITLEMENT",
        help="only records (or periods) of this Entitlement",
    )
    audit.add_argument(
        "--user",
        type=_named("a user", "then: everyone's"),
        metavar="USER",
        help="only records about or by USER, or with --access the periods of USER's access (a username, "
        "its part before @, or an Identity Store UserId); a renamed user's under every name they had",
    )
    _archive(audit)
    audit.add_argument(
        "-o", "--output", choices=("table", "json", "csv"), default="table", help="output format (default: table)"
    )

    review = command(
        "review",
        "Review an entitlement for its owners: who used it in the last days and how often, who is\n"
        "eligible but never used it (a candidate for removal), grants whose reason cites no ticket,\n"
        "and break-glass grants not yet reviewed. Eligibility lives in Identity Center, which only\n"
        "the operator reads: the plugin shows eligible users when the Entitlement's status lists\n"
        "them, and says so when it does not.",
    )
    review.add_argument(
        "entitlement",
        metavar="NAME",
        help="an Entitlement (NAME or `entitlement/NAME`: its access review), or a break-glass AccessRequest "
        "(`request/NAME`, or its NAME with --uid: records your review of it)",
    )
    _uid(
        review,
        "a break-glass AccessRequest only: review it only if NAME is still this object (its metadata.uid, as "
        "its ReviewOverdue Event gives it): a request deleted and created again under the same name is another",
    )
    review.add_argument("--days", type=_days, default=30, metavar="N", help="the window, in days (default: 30)")
    _archive(review)
    review.add_argument(
        "-o", "--output", choices=("table", "json"), default="table", help="output format (default: table)"
    )

    glass = command(
        "break-glass",
        "Approve your own request in an emergency, where the entitlement's spec.breakGlass allows it:\n"
        "only its groups, with a reason of at least its minReasonLength, for at most its maxDuration, a\n"
        "few times a day. Access is active at once; the security channel is told, and an approver of the\n"
        "owner team reviews it afterwards (`kubectl jit review request/NAME`).",
    )
    glass.add_argument("entitlement", metavar="ENTITLEMENT", help="the Entitlement")
    glass.add_argument("--reason", metavar="TEXT", required=True, help="what is broken and why it cannot wait")
    glass.add_argument(
        "--for", dest="duration", type=_duration_text, metavar="DURATION", help="how long (default: the cap)"
    )
    glass.add_argument(
        "--wait", action=argparse.BooleanOptionalAction, default=True, help="wait until access is active (default)"
    )

    rbac = command(
        "rbac",
        "Print RBAC that follows the TeamOwnerships, for the platform team to apply.\n\n"
        "slack: the ClusterRole of the identity that applies Slack decisions as the clicking user:\n"
        "impersonate exactly the approvers and backup approvers of every TeamOwnership, nothing else.\n"
        "From the cluster's TeamOwnerships, or from files (-f, repeatable; - is stdin). Apply it with\n"
        "`kubectl jit rbac slack | kubectl apply -f -`; with the chart, `-o values` prints slack.approvers.",
    )
    rbac.add_argument("what", choices=("slack",), help="which RBAC: slack")
    rbac.add_argument(
        "-f",
        "--filename",
        dest="files",
        action="append",
        default=[],
        metavar="FILE",
        help="read TeamOwnerships from this YAML file instead of the cluster (repeatable; - is stdin)",
    )
    rbac.add_argument(
        "--name",
        default="jitaccess-slack-impersonator",
        metavar="NAME",
        help="the ClusterRole's name (default: the chart's for a release named jitaccess)",
    )
    rbac.add_argument(
        "-o",
        "--output",
        choices=("yaml", "values"),
        default="yaml",
        help="yaml: the ClusterRole (default); values: the chart's slack.approvers",
    )

    completion = command("completion", epilog=COMPLETION_EPILOG)
    completion.add_argument("shell", choices=("bash", "zsh"), help="the shell")
    return parser


def _archive(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--archive",
        metavar="s3://BUCKET/PREFIX",
        help=f"read the audit archive there (default: ${ARCHIVE_ENV}; when neither is set, or with "
        "--archive '', the cluster)",
    )


def _uid(parser: argparse.ArgumentParser, help: str) -> None:
    """`--uid UID`: act only on the object of this metadata.uid (a name may be taken again)."""
    parser.add_argument(
        "--uid", type=_named("the object's metadata.uid", "then: not checked"), metavar="UID", help=help
    )


def _output(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-o", "--output", choices=("table", "json", "yaml"), default="table", help="output format (default: table)"
    )

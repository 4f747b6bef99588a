"""`kubectl jit`: just-in-time production access from the command line.

Installed as the executable `kubectl-jit`, which kubectl finds on PATH, so both `kubectl jit ...`
and `kubectl-jit ...` work. Commands:

    request [ENTITLEMENT] [--for 1h] [--reason TEXT] [--wait/--no-wait] [--timeout 15m]
    approve NAME [--reason TEXT]       deny NAME --reason TEXT
    revoke GRANT [--uid UID] [--reason TEXT]
    done
    extend GRANT --by 30m --reason TEXT [--wait/--no-wait] [--timeout 15m]
    withdraw NAME
    list [--pending] [--mine] [--team TEAM] [-o table|json|yaml]
    status NAME                        who-has [ENTITLEMENT]
    permissions [TEAM] [-o table|json|yaml]
    audit [--since 30d|T] [--until 7d|T] [--access] [--entitlement E] [--user U] [--archive s3://B/P]
          [--verify [--public-key FILE]] [-o table|json|csv]
    review ENTITLEMENT [--days 30] [--archive s3://B/P] [-o table|json]
    review BREAK-GLASS-REQUEST [--uid UID]
    break-glass ENTITLEMENT --reason TEXT [--for 1h] [--wait/--no-wait]
    rbac slack [-f FILE]... [--name NAME] [-o yaml|values]
    completion bash|zsh

kubectl's flags work as in kubectl: --kubeconfig, --context, --as, --as-group (impersonation).
Flags go after `jit` (kubectl hands everything after the plugin name to the plugin). The parser
and its help texts are in `parser`; the exit codes, for scripts, in `errors` (`EXIT_CODES`, printed
under every --help).

Errors are one line on stderr that says what to do. Results go to stdout, prompts and hints to
stderr. Start-up time matters (the goal is production access in under a second), so this module
imports only the parser at the top; each command imports what it needs, and nothing here imports
kopf, boto3, pydantic or the `kubernetes` package on the request path.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TextIO

from jitaccess.cli.errors import INTERRUPTED, OK, PENDING, USAGE, CliError, UsageError
from jitaccess.cli.parser import attach_negative_durations, build_parser

if TYPE_CHECKING:
    from jitaccess.cli.session import Session

# --- dispatch ----------------------------------------------------------------------------------


def _request(session: Session, args: argparse.Namespace) -> int:
    from jitaccess.cli import request

    options = request.RequestOptions(
        args.entitlement, args.duration, args.reason, args.wait, args.timeout, start=args.start
    )
    return request.run(session, options)


def _approve(session: Session, args: argparse.Namespace) -> int:
    from jitaccess.cli import decisions

    return decisions.decide(session, args.name, approve=True, reason=args.reason, uid=args.uid)


def _deny(session: Session, args: argparse.Namespace) -> int:
    from jitaccess.cli import decisions

    return decisions.decide(session, args.name, approve=False, reason=args.reason, uid=args.uid)


def _revoke(session: Session, args: argparse.Namespace) -> int:
    from jitaccess.cli import decisions

    given = {"--entitlement": args.entitlement, "--team": args.team, "--grants-only": args.grants_only}
    scoped = [flag for flag, value in given.items() if value]
    if args.all_:
        if args.name:
            raise UsageError(f"give either GRANT or --all, not both (GRANT {args.name})")
        if args.uid:
            raise UsageError("--uid pins one GRANT: it does not go with --all, which ends everything in scope")
        if not (args.reason or "").strip():
            raise UsageError('--all needs --reason "..." (it is recorded on every grant and request it ends)')
        scope = decisions.Scope(entitlement=args.entitlement, team=args.team, grants_only=args.grants_only)
        return decisions.revoke_all(session, scope, reason=args.reason, wait=args.wait, timeout=args.timeout)
    if not args.name:
        raise UsageError("name the GRANT to revoke (`kubectl get accessgrants`), or give --all")
    if scoped:
        raise UsageError(f"{', '.join(scoped)} go only with --all")
    return decisions.revoke(session, args.name, reason=args.reason, wait=args.wait, timeout=args.timeout, uid=args.uid)


def _done(session: Session, args: argparse.Namespace) -> int:
    from jitaccess.cli import decisions

    return decisions.done(session, wait=args.wait, timeout=args.timeout)


def _extend(session: Session, args: argparse.Namespace) -> int:
    from jitaccess.cli import extend

    return extend.run(session, args.name, by=args.by, reason=args.reason, wait=args.wait, timeout=args.timeout)


def _withdraw(session: Session, args: argparse.Namespace) -> int:
    from jitaccess.cli import decisions

    return decisions.withdraw(session, args.name)


def _list(session: Session, args: argparse.Namespace) -> int:
    from jitaccess.cli import views

    return views.list_requests(session, pending=args.pending, mine=args.mine, team=args.team, output=args.output)


def _status(session: Session, args: argparse.Namespace) -> int:
    from jitaccess.cli import views

    if args.name is None:
        raise UsageError("name the request: `kubectl jit status NAME`; `kubectl jit list --mine` lists yours")
    return views.status(session, args.name, output=args.output)


def _who_has(session: Session, args: argparse.Namespace) -> int:
    from jitaccess.cli import views

    return views.who_has(session, args.entitlement, output=args.output)


def _permissions(session: Session, args: argparse.Namespace) -> int:
    from jitaccess.cli import permissions

    return permissions.show(session, args.team, output=args.output)


def _audit(session: Session, args: argparse.Namespace) -> int:
    from jitaccess.cli import reports
    from jitaccess.cli.history import archive_location

    archive = archive_location(args.archive, os.environ)
    options = reports.AuditOptions(
        args.since,
        args.entitlement,
        args.user,
        archive,
        args.output,
        args.until,
        args.access,
        args.lookback,
        args.verify,
        None if args.public_key is None else tuple(args.public_key),
    )
    return reports.audit(session, options)


def _review(session: Session, args: argparse.Namespace) -> int:
    from jitaccess.cli import breakglass, reports
    from jitaccess.cli.history import archive_location

    if args.uid:
        name = args.entitlement.rpartition("/")[2]
        return breakglass.review_meant(session, name, args.uid)
    name, glass = breakglass.review_target(session, args.entitlement)
    if glass is not None:
        return breakglass.review(session, glass)
    archive = archive_location(args.archive, os.environ)
    return reports.review(session, name, days=args.days, archive=archive, output=args.output)


def _break_glass(session: Session, args: argparse.Namespace) -> int:
    from jitaccess.cli import breakglass

    return breakglass.run(session, args.entitlement, args.duration, args.reason, wait=args.wait)


def _rbac(session: Session, args: argparse.Namespace) -> int:
    from jitaccess.cli import rbac

    return rbac.slack(session, args.files, args.name, args.output)


def _completion(session: Session, args: argparse.Namespace) -> int:
    from jitaccess.cli import completion

    session.out.write(completion.script(args.shell))
    return OK


COMMANDS: dict[str, Callable[[Session, argparse.Namespace], int]] = {
    "request": _request,
    "approve": _approve,
    "deny": _deny,
    "revoke": _revoke,
    "done": _done,
    "extend": _extend,
    "withdraw": _withdraw,
    "list": _list,
    "status": _status,
    "who-has": _who_has,
    "permissions": _permissions,
    "audit": _audit,
    "review": _review,
    "break-glass": _break_glass,
    "rbac": _rbac,
    "completion": _completion,
}


def report(error: CliError, stderr: TextIO) -> None:
    # Pending and interrupted are states, not errors: no "error:" in front of them.
    from jitaccess.cli.text import printable

    prefix = "" if error.code in (PENDING, INTERRUPTED) else "error: "
    # The message often quotes the API server (a refusal, a condition): escape what it may carry.
    stderr.write(f"{prefix}{printable(error.message, lines=True)}\n")


def run(argv: Sequence[str], stdin: TextIO, stdout: TextIO, stderr: TextIO) -> int:
    from jitaccess.cli.kube import ApiError
    from jitaccess.cli.session import ClusterFlags, Session

    if argv[:1] == ["__complete"]:
        from jitaccess.cli import completion

        return completion.complete(list(argv[1:]), stdout)
    if not argv:
        # A first try: the commands, rather than argparse's "the following arguments are required".
        build_parser().print_help(stderr)
        return USAGE
    args = build_parser().parse_args(attach_negative_durations(argv))
    flags = ClusterFlags(
        kubeconfig=getattr(args, "kubeconfig", None),
        context=getattr(args, "context", None),
        impersonate=getattr(args, "impersonate", None),
        impersonate_groups=list(getattr(args, "impersonate_groups", None) or []),
    )
    session = Session(flags, stdin, stdout, stderr)
    try:
        return COMMANDS[args.command](session, args)
    except CliError as exc:
        report(exc, stderr)
        return exc.code
    except ApiError as exc:
        # A call that no wrapper put in the user's words (`objects.refusal`; each should be): still
        # one line and its exit code, never a traceback.
        from jitaccess.cli import objects

        error = objects.refusal(exc, f"kubectl jit {args.command}")
        report(error, stderr)
        return error.code
    except KeyboardInterrupt:
        stderr.write("\ninterrupted\n")
        return INTERRUPTED
    finally:
        session.close()


def main(argv: Sequence[str] | None = None) -> int:
    try:
        code = run(sys.argv[1:] if argv is None else argv, sys.stdin, sys.stdout, sys.stderr)
        sys.stdout.flush()
    except BrokenPipeError:
        # `kubectl jit list | head`: the reader left. Point stdout at /dev/null so that the
        # interpreter's own flush at exit does not complain again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        code = 0
    return code


def complete() -> int:
    """Entry point of a `kubectl_complete-jit` executable: kubectl (1.26+) runs it to complete `kubectl jit`."""
    return main(["__complete", *sys.argv[1:]])


if __name__ == "__main__":
    sys.exit(main())

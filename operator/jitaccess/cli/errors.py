"""Exit codes of `kubectl jit` and the errors that carry them.

`EXIT_CODES` is the one table of exit codes: every error class takes its code from the constants
below, and `kubectl jit --help` (every command's --help) prints the table as `EXIT_CODES_HELP`.

    CliError          one clear line for stderr, and the exit code scripts rely on
    ├── Refused       REFUSED
    ├── UsageError    USAGE
    ├── StillPending  PENDING
    ├── NotFound      NOT_FOUND
    ├── Unreachable   UNREACHABLE
    │   └── Disconnected  (a connection refused, reset or cut mid-answer: the same call may work again)
    ├── Doubtful      DOUBTFUL (raised after the report is printed: `audit`, `review`)
    └── Interrupted   INTERRUPTED

Every message says what happened and what to do next.
"""

from __future__ import annotations

OK = 0
REFUSED = 1
USAGE = 2
PENDING = 3
NOT_FOUND = 4
UNREACHABLE = 5
DOUBTFUL = 6
INTERRUPTED = 130

EXIT_CODES: dict[int, str] = {
    OK: "done: access obtained, decision recorded, listing printed",
    REFUSED: "refused or failed: not allowed, not eligible, denied, timed out, double decision",
    USAGE: "usage or bad input (also: something missing and no terminal to ask on)",
    PENDING: "still pending when the wait ended (--timeout, or --no-wait on a request that needs approval)",
    NOT_FOUND: "not found: no such request, grant, entitlement or team (or audit archive bucket)",
    UNREACHABLE: "cannot reach the cluster (or the audit archive): kubeconfig, network, credentials, or jitaccess not installed; "
    "a wait (--wait) lost on the way watches again until its --timeout first, and what it waited for stays",
    DOUBTFUL: "report printed, but the audit archive has conflicting records (one id, two contents) or unreadable objects: see the warnings",
    INTERRUPTED: "interrupted (Ctrl-C); a request already created stays: see `kubectl jit status NAME`",
}

EXIT_CODES_HELP = "exit codes:\n" + "".join(f"{code:>5}  {meaning}\n" for code, meaning in EXIT_CODES.items())


class CliError(Exception):
    """An outcome the user must read; `code` is the process exit code."""

    code = REFUSED

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Refused(CliError):
    code = REFUSED


class UsageError(CliError):
    code = USAGE


class StillPending(CliError):
    code = PENDING


class NotFound(CliError):
    code = NOT_FOUND


class Unreachable(CliError):
    code = UNREACHABLE


class Disconnected(Unreachable):
    """The connection to the API server failed or dropped (refused, reset, cut mid-answer, timed
    out): unlike a certificate or credentials refused, the same call may work a moment later (an
    API server restarting, a network blip), so a command waiting for something tries again."""


class Doubtful(CliError):
    """The report is out, but the archive it read is in doubt: a script must not take it as complete."""

    code = DOUBTFUL


class Interrupted(CliError):
    code = INTERRUPTED

"""Exit codes of `kubectl jit` and the errors that carry them.

    CliError                  one clear line for stderr, and the exit code scripts rely on
    ├── Refused          (1)  the cluster, the operator or a rule said no; or the request failed
    ├── UsageError       (2)  bad flags or input, or something missing with no terminal to ask on
    ├── StillPending     (3)  still waiting for a decision (or the operator) when the wait ended
    ├── NotFound         (4)  the request, grant, entitlement or team named does not exist
    ├── Unreachable      (5)  no usable kubeconfig, the API server does not answer or rejects
    │                         the credentials, or jitaccess is not installed there
    └── Interrupted    (130)  Ctrl-C; what was already created stays

Every message says what happened and what to do next.
"""

from __future__ import annotations

OK = 0
REFUSED = 1
USAGE = 2
PENDING = 3
NOT_FOUND = 4
UNREACHABLE = 5
INTERRUPTED = 130

EXIT_CODES_HELP = """\
exit codes:
    0  done: access obtained, decision recorded, listing printed
    1  refused or failed: not allowed, not eligible, denied, timed out, double decision
    2  usage or bad input (also: something missing and no terminal to ask on)
    3  still pending when the wait ended (--timeout, or --no-wait on a request that needs approval)
    4  not found: no such request, grant, entitlement or team
    5  cannot reach the cluster: kubeconfig, network, credentials, or jitaccess not installed
  130  interrupted (Ctrl-C); a request already created stays: see `kubectl jit status NAME`
"""


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


class Interrupted(CliError):
    code = INTERRUPTED

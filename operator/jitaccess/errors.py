"""The exceptions of jitaccess, one tree for the whole package.

    JitAccessError
    ├── ForeignUser               a Slack user of another workspace: no identity here (never retried)
    ├── InvalidInput              bad user input: names the field and the fix (never retried)
    └── IdentityCenterError       a call to AWS IAM Identity Center failed
        ├── RetryLater            throttled, 5xx, timeout, connection: worth another try later
        │   ├── NotLeading        this replica no longer holds the leader Lease: another one acts
        │   └── AddInFlight       an end refused for now: an earlier leader's add may still land (`delay`)
        ├── NotFound              the user, group or membership does not exist
        └── PermanentFailure      access denied, validation: retrying will not help
            └── OtherStore        an end refused: the access is in another identity store than the operator's

Handlers translate these: `InvalidInput` and `NotFound` into a `Ready=False` condition with the
message, `RetryLater` into kopf's `TemporaryError` (retried with backoff), `PermanentFailure` into
a `Failed` condition.
"""

from __future__ import annotations


class JitAccessError(Exception):
    """Base of every error jitaccess raises on purpose."""


class InvalidInput(JitAccessError):
    """User input that cannot be honoured; `field` is where it is, the message says what to do."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field} {problem}")
        self.field = field
        self.problem = problem


class IdentityCenterError(JitAccessError):
    """A call to Identity Center failed; `code` is the AWS error code when there is one."""

    def __init__(self, message: str, *, operation: str = "", code: str = "") -> None:
        super().__init__(message)
        self.operation = operation
        self.code = code


class RetryLater(IdentityCenterError):
    """A transient failure: throttling, a server error, a timeout or a broken connection."""


class NotLeading(RetryLater):
    """A write refused because this replica is not (or no longer) the leader (`handlers.leadership`)."""


class AddInFlight(RetryLater):
    """An end of a grant refused for now: an add that a controller before this one may have sent
    for it can still land (attack 129, `handlers.grants`). The caller tries it again in `delay`
    seconds, once that add has landed or can no longer land; nothing waits meanwhile."""

    def __init__(self, message: str, *, delay: float) -> None:
        super().__init__(message, operation="CreateGroupMembership")
        self.delay = delay


class NotFound(IdentityCenterError):
    """The user, group or membership named does not exist in the identity store."""


class PermanentFailure(IdentityCenterError):
    """A failure that another try will not fix (access denied, a malformed request)."""


class ForeignUser(JitAccessError):
    """A Slack user of another workspace or organization (a Slack Connect channel shares the
    approvers' messages with people of other companies, whose profile emails that company sets)."""


class OtherStore(PermanentFailure):
    """A grant's end refused: its access was given in another identity store than the one the
    operator points at now (`config.identityStoreId` changed while it ran). Removing it from this
    store would find nothing and record it ended while the member stays in the other store; the
    message names both stores and how to end it. Retried as a refusal is (`handlers.removals`):
    it ends once the operator points at that store again."""

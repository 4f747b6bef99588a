"""Removals that do not happen: an expiry (`expiry`) or a revocation (`grants`) whose membership
Identity Center does not remove, because it does not answer (`RetryLater`) or refuses
(`PermanentFailure`: AccessDenied after an edit of the operator's IAM policy, say), or that the
operator refuses itself: the access is in another identity store than the one it points at now
(`OtherStore`, attack 150), where it would find nothing and take the access for gone.

Either way the grant stays Active and the removal is tried again until it succeeds: a refusal is
no reason to stop trying, since it ends once somebody fixes the policy, and nothing else would
remove the access. Said once a minute per grant (a WARNING within `OVERDUE_GRACE` of the grant's
end, then an ERROR, as an access outliving its grant), and once overdue by one `ExpiryOverdue`
Warning Event on the grant, naming the AWS error and, for a refusal, the IAM action to check (once
per grant and term of leadership: `Overdue`). The gauge `jitaccess_grant_overdue_seconds` shows it
too.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from jitaccess.adapters.kube import INVALID_RETRY_SECONDS, Refused
from jitaccess.api import names
from jitaccess.domain.expiry import OVERDUE_GRACE
from jitaccess.errors import IdentityCenterError, OtherStore, PermanentFailure
from jitaccess.handlers.common import ts
from jitaccess.handlers.recording import record
from jitaccess.logs import OncePer

log = logging.getLogger(__name__)
#: A removal Identity Center does not answer is tried again this often (seconds)...
RETRY_SECONDS = 1.0
#: ... and one it refuses: the refusal ends only when somebody changes the IAM policy.
REFUSED_RETRY_SECONDS = 5.0
#: sso-admin operations (account assignments, `adapters.ssoadmin`): IAM's `sso:` actions; every
#: other operation is the Identity Store's (`identitystore:`).
_SSO_ADMIN = ("AccountAssignment", "PermissionSet", "ListInstances")


class Overdue:
    """The grants whose overdue removal an Event has reported, so that each gets one, not one per
    retry. Only grants still Active are kept (`active`): as many as there are at most."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._names: set[str] = set()

    def first(self, name: str, active: Callable[[str], bool]) -> bool:
        """Whether grant `name` is reported for the first time (it is remembered from now on)."""
        with self._lock:
            if name in self._names:
                return False
            self._names = {n for n in self._names if active(n)}
            self._names.add(name)
            return True

    def forget(self, name: str) -> None:
        with self._lock:
            self._names.discard(name)


LOG_EVERY_SECONDS = 60
#: When a line about a grant was last said: a grant retried every second through an outage of an
#: hour is said once a minute, not 3,600 times (the gauge and the Event say it continuously).
LOGGED = OncePer(LOG_EVERY_SECONDS)
#: Revocations' Events: once per grant in this process (an expiry's are per term of leadership).
REVOCATIONS = Overdue()
#: Revocations whose end the API server refused to store (`not_written`): one Event per grant here too.
REFUSED_ENDS = Overdue()


def retry_seconds(exc: IdentityCenterError) -> float:
    return REFUSED_RETRY_SECONDS if isinstance(exc, PermanentFailure) else RETRY_SECONDS


def iam_action(operation: str) -> str | None:
    """The IAM action that allows the Identity Center `operation`; None for what is no API call (the
    wait for an account assignment's request status)."""
    if not operation[:1].isupper():
        return None
    service = "sso" if any(part in operation for part in _SSO_ADMIN) else "identitystore"
    return f"{service}:{operation}"


def why(exc: IdentityCenterError) -> str:
    """What stops the removal, for a log line and the Event. A grant whose access is in another
    identity store than the operator's (`OtherStore`) says so itself: no IAM action is missing."""
    if isinstance(exc, OtherStore):
        return f"refused: {exc}"
    if isinstance(exc, PermanentFailure):
        action = iam_action(exc.operation) or "the Identity Center calls it makes"
        return (
            f"Identity Center refuses it ({exc}): check that the operator's IAM role allows {action} "
            "for this group and user (docs/aws-iam.md)"
        )
    return f"Identity Center not answering ({exc})"


def not_removed(
    obj: Mapping[str, Any],
    due: dt.datetime,
    exc: IdentityCenterError,
    now: dt.datetime,
    *,
    doing: str,
    reported: Overdue | None,
    active: Callable[[str], bool],
) -> None:
    """The membership of grant `obj`, to end at `due` (its expiration, or when it was asked to end
    early), could not be removed: logged once a minute, and once overdue one Warning Event."""
    name = obj["metadata"]["name"]
    late, again = now - due, retry_seconds(exc)
    if late <= OVERDUE_GRACE:
        if LOGGED.due(f"{name}/late"):
            log.warning("%s %s: %s; retrying every %gs", doing, name, why(exc), again)
        return
    if LOGGED.due(f"{name}/overdue"):
        log.error(
            "%s %s: %s; the membership outlives the grant by %ds, retrying every %gs (said again every %ds while it lasts)",
            doing,
            name,
            why(exc),
            late.total_seconds(),
            again,
            LOG_EVERY_SECONDS,
        )
    if reported is None or not reported.first(name, active):
        return
    ended = "expired" if doing == "expiring" else "asked to end"
    message = (
        f"{ended} at {ts(due)}, but its membership is not removed yet: {why(exc)}; "
        f"the operator keeps trying, every {again:g} s"
    )
    record(obj, names.EXPIRY_OVERDUE, message, warning=True)


def not_written(
    obj: Mapping[str, Any], exc: Refused, *, doing: str, reported: Overdue, tracked: Callable[[str], object]
) -> None:
    """The membership of grant `obj` is removed, but the API server refuses to store its end as
    invalid (an admission policy, a schema bound: no retry changes that, somebody must): logged at
    ERROR once a minute, one `WriteRefused` Warning Event per grant, tried again every minute.
    `tracked`: a grant's expiration as the operator follows it (`rt.expirations.key_of`), None once
    it is not Active any more."""
    name = obj["metadata"]["name"]
    if LOGGED.due(f"{name}/refused"):
        log.error(
            "%s %s: its membership is removed, but %s; the grant shows Active until that is fixed, "
            "retrying every %gs (said again every %ds while it lasts)",
            doing,
            name,
            exc,
            INVALID_RETRY_SECONDS,
            LOG_EVERY_SECONDS,
        )
    if not reported.first(name, lambda n: tracked(n) is not None):
        return
    message = (
        f"its membership is removed, but {exc}: the grant shows Active until the object or the policy is fixed; "
        f"the operator tries again every {INVALID_RETRY_SECONDS:g} s"
    )
    record(obj, names.WRITE_REFUSED, message, warning=True)

"""The life of an AccessGrant: activation window, expiry, and who else still holds the membership.

Identity Center has one membership per (user, group), while several grants may overlap for the
same pair: the membership is reference-counted, and goes only when the last grant holding it ends.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from jitaccess.api import names, wire
from jitaccess.api.models import AccessGrant, AccessGrantStatus
from jitaccess.domain import conditions as cond
from jitaccess.domain.durations import parse_duration


@dataclass(frozen=True)
class Window:
    activation_time: datetime
    expiration_time: datetime


def activation_window(grant: AccessGrant, now: datetime, ends_by: datetime | None = None) -> Window:
    """A grant runs for its duration from the moment its membership is in place; the grant of a
    request with a start no later than the end of the window it was approved for (`ends_by`,
    `requests.approved_window`): begun late, it ends when that window ends all the same."""
    end = now + parse_duration(grant.spec.duration, "spec.duration")
    return Window(now, end if ends_by is None else min(end, ends_by))


def state(grant: AccessGrant) -> str:
    return cond.ready_reason(grant.status.conditions) or names.PROVISIONING


def is_finished(grant: AccessGrant) -> bool:
    return state(grant) in names.GRANT_FINISHED


def is_active(grant: AccessGrant) -> bool:
    return state(grant) == names.ACTIVE


def seconds_left(grant: AccessGrant, now: datetime) -> float:
    """Time until expiry from the persisted `status.expirationTime`; <= 0 means overdue."""
    expiration = grant.status.expiration_time
    if expiration is None:
        return 0.0
    return (expiration - now).total_seconds()


def membership_key(user_id: str, group_name: str) -> tuple[str, str]:
    """The key of the reference count and of its lock: one Identity Center membership per user and group.

    The user is its Identity Store UserId, never its user name: names that differ only in case may
    be two people, and a deleted user's name may pass to someone new.
    """
    return (user_id, group_name)


#: How long the UserId that admission stamped on a request (asked afresh as the request was
#: created) stands in for asking again before access is given: the few seconds an eligibility
#: answer is reused for. An auto-approved grant follows its request well within it; an approval
#: that took a person, or a scheduled start, asks again.
STAMP_STANDS_FOR = timedelta(seconds=5)


def stamp_is_fresh(admitted: datetime | None, at: datetime) -> bool:
    """Whether a request admitted at `admitted` (its creationTimestamp: whole seconds, rounded
    down, so the age is if anything overstated) was admitted recently enough at `at` that its
    stamped UserId is as good as a fresh answer."""
    return admitted is not None and timedelta(0) <= at - admitted <= STAMP_STANDS_FOR


def grantee_id(spec_user_id: str | None, status_user_id: str | None, user: str) -> str:
    """Whose membership a grant holds: the UserId recorded on it (`spec.userId`, from the request's
    admission stamp; else `status.userId`, once active). A grant from before grants recorded it, not
    yet active, is known only by name, under a key no UserId can take."""
    return spec_user_id or status_user_id or f"name:{user}"


def other_holders(holders: Iterable[str], ending: str, already_ended: Iterable[str]) -> set[str]:
    """Grants still holding the membership once `ending` ends.

    `holders` comes from an index that lags behind the operator's own writes, so grants this
    process has just ended (`already_ended`) are taken out by hand.
    """
    return set(holders) - {ending} - set(already_ended)


def ended_at(status: AccessGrantStatus) -> datetime | None:
    """When a finished grant ended (revoked, expired, or failed); None while it is not finished."""
    ready = cond.find(status.conditions, names.READY)
    if ready is None or ready.reason not in names.GRANT_FINISHED:
        return None
    return status.revocation_time or status.expiration_time or ready.last_transition_time


def other_store(grant: AccessGrant, configured: str) -> str | None:
    """The identity store a grant's access was given in (`status.identityStoreId`) when it is not
    `configured`, the one the operator points at now; None when it is that one, or when the grant
    records none: written before grants recorded it, or not Active yet (nothing recorded is
    given yet), it is taken as in the configured store."""
    recorded = grant.status.identity_store_id
    return recorded if recorded and recorded != configured else None


def other_store_problem(grant: AccessGrant, recorded: str, configured: str) -> str:
    """Why the end of `grant`, whose access is in identity store `recorded`, is refused while the
    operator points at `configured`, and the two ways to end it: the operator pointed back at that
    store, or the access removed there by hand (the AWS CLI command, with the grant's own ids)."""
    spec, status = grant.spec, grant.status
    user = status.user_id or spec.user_id or "<UserId>"
    if spec.account_assignment is not None:
        accounts = " ".join(a.account for a in status.account_assignments or []) or "<account>"
        by_hand = (
            f"for each account of {accounts}: aws sso-admin delete-account-assignment --instance-arn "
            f"<the Identity Center instance of {recorded}> --permission-set-arn "
            f"{status.permission_set_arn or '<permissionSetArn>'} --principal-type USER --principal-id {user} "
            "--target-type AWS_ACCOUNT --target-id <account>"
        )
    elif status.membership_id:
        by_hand = (
            f"aws identitystore delete-group-membership --identity-store-id {recorded} "
            f"--membership-id {status.membership_id}"
        )
    else:
        by_hand = (
            f"aws identitystore delete-group-membership --identity-store-id {recorded} --membership-id "
            f"$(aws identitystore get-group-membership-id --identity-store-id {recorded} --group-id "
            f"{status.group_id or '<GroupId>'} --member-id UserId={user} --query MembershipId --output text)"
        )
    return (
        f"the operator now points at identity store {configured}; this access of {spec.user} is in {recorded}: "
        f"it is not removed from {configured} (where nothing is), nor recorded as ended. Set config.identityStoreId "
        f"(and config.region) back to {recorded} until every grant given there has ended, or remove it by hand: "
        f"{by_hand} (docs/upgrading.md#changing-the-identity-store-or-region)"
    )


@dataclass(frozen=True)
class TakeBack:
    """What failing a grant that never became Active took back of what its attempts may have added
    (`status.takeBack`), and what is known of those attempts."""

    time: datetime  # when it was done: nothing an attempt added is held after it
    removed: list[str]  # the group, or the accounts of the permission set; empty: nothing was there
    since: datetime | None  # the earliest the user may have held it: the first attempt known, else the creation
    attempted: datetime | None  # when this controller first asked Identity Center to add it, if it did
    maybe_attempted: bool  # whether any attempt (this controller's, a previous one's) may have asked


def failure_message(why: str, user: str, back: TakeBack | None) -> str:
    """The message of a grant's `Failed`: `why`, then what the user may have held. When the
    take-back removed something, an attempt's add landed (its answer lost, or the grant failed
    after it): the user may have held access from `since` until the take-back, the upper bound an
    auditor needs. When it found nothing, an add known to have been asked for is said so, with no
    period; "nobody was given access" only when no attempt can have asked for anything."""
    if back is None:
        return why  # no take-back ran: the grant was gone or had ended, and this message is not written
    at = _stamp(back.time)
    if back.removed:
        since = f"from {_stamp(back.since)} " if back.since is not None else ""
        return (
            f"{why}; {user} may have held access {since}until the take-back at {at}, which removed "
            f"{', '.join(back.removed)} (an attempt's add landed though the grant never became Active: its answer "
            "may have been lost)"
        )
    if back.attempted is not None:
        return (
            f"{why}; an add was attempted at {_stamp(back.attempted)} and the take-back at {at} found nothing "
            "left to remove"
        )
    if back.maybe_attempted:
        return f"{why}; the take-back at {at} found nothing to remove"
    return f"{why}; nobody was given access"


_stamp = wire.rfc3339

"""An AccessRequest's `Ready` follows its grant's: what it should say, given the grant.

The grant's handler writes the grant's status and then its request's. An operator that dies in
between leaves the request behind (still `Pending` while its grant is `Active`, or `Granted` after
the grant ended), and nothing would write it again: a finished grant has no handler left to run,
and the request's own handler is done once `status.grant` is set. Both the handler's write and the
repair after a restart take what the request should say from here, so they always agree.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from jitaccess.api import names, wire
from jitaccess.api.models import AccessGrant
from jitaccess.domain import conditions as cond


@dataclass(frozen=True)
class RequestReady:
    """The request's `Ready` condition (and expiration time) that its grant's state calls for."""

    reason: str
    ready: bool
    message: str
    expiration_time: datetime | None = None


def request_reason_for(grant_reason: str | None) -> str | None:
    """The request's `Ready` reason for a grant whose `Ready` reason is this; None while the grant
    is being provisioned (the request stays `Pending`)."""
    if grant_reason == names.ACTIVE:
        return names.GRANTED
    if grant_reason in names.GRANT_FINISHED:
        return grant_reason
    return None


def out_of_line(request_reason: str | None, grant_reason: str | None) -> bool:
    """Whether a request whose `Ready` reason is `request_reason` lags behind its grant's state."""
    wanted = request_reason_for(grant_reason)
    return wanted is not None and request_reason != wanted


def request_ready(grant: AccessGrant) -> RequestReady | None:
    """What the request of `grant` should say now; None while the grant is being provisioned."""
    ready = cond.find(grant.status.conditions, names.READY)
    reason = request_reason_for(ready.reason if ready is not None else None)
    if ready is None or reason is None:
        return None
    status = grant.status
    if reason == names.GRANTED:
        until = f" until {_stamp(status.expiration_time)}" if status.expiration_time else ""
        return RequestReady(reason, True, f"access active{until}", status.expiration_time)
    if reason == names.EXPIRED:
        return RequestReady(
            reason, False, f"access expired at {_stamp(status.expiration_time or ready.last_transition_time)}"
        )
    if reason == names.REVOKED:
        return RequestReady(reason, False, "access revoked" + (f" by {status.revoked_by}" if status.revoked_by else ""))
    return RequestReady(reason, False, ready.message)


def belongs_to(grant: AccessGrant, request_uid: str) -> bool:
    """Whether `grant` was created for the request with this uid (not for an earlier request of the
    same name); a grant without the label is taken at its word (`spec.request`)."""
    label = grant.metadata.labels.get(names.LABEL_REQUEST)
    return not label or not request_uid or label == request_uid


_stamp = wire.rfc3339


class Laggards:
    """Which requests lag behind their grants, from what the watches last showed of each.

    Fed with every event of both kinds (the listing at start-up included), it keeps each approved
    request's `Ready` reason and its grant's, and since when a request has disagreed with its grant.
    A disagreement is normal for a moment (the grant is written first, then the request), so a
    request is `due` for repair only once it has lasted `grace` seconds. A request and a grant that
    have both finished alike are forgotten: nothing about them changes any more. Not thread-safe:
    kopf calls its event handlers and timers from one event loop.
    """

    def __init__(self) -> None:
        # By request name: (grant name, the request uid the grant was made for, grant's reason, entitlement).
        self._grants: dict[str, tuple[str, str, str | None, str]] = {}
        # By request name: (uid, reason) of approved requests (only those have grants).
        self._requests: dict[str, tuple[str, str | None]] = {}
        # By request name: (entitlement, grant name, since when it lags).
        self._behind: dict[str, tuple[str, str, float]] = {}

    def see_grant(
        self, name: str, request: str, request_uid: str, reason: str | None, entitlement: str, now: float
    ) -> None:
        self._grants[request] = (name, request_uid, reason, entitlement)
        self._check(request, now)

    def forget_grant(self, request: str, now: float) -> None:
        self._grants.pop(request, None)
        self._check(request, now)

    def see_request(self, name: str, uid: str, reason: str | None, approved: bool, now: float) -> None:
        if approved:
            self._requests[name] = (uid, reason)
        else:
            self._requests.pop(name, None)
        self._check(name, now)

    def forget_request(self, name: str, now: float) -> None:
        self._requests.pop(name, None)
        self._check(name, now)

    def _check(self, request: str, now: float) -> None:
        grant, seen = self._grants.get(request), self._requests.get(request)
        if grant is None or seen is None:
            self._behind.pop(request, None)
            return
        grant_name, made_for, grant_reason, entitlement = grant
        uid, reason = seen
        if made_for and uid and made_for != uid:
            self._behind.pop(request, None)  # the grant of an earlier request of the same name
        elif out_of_line(reason, grant_reason):
            self._behind.setdefault(request, (entitlement, grant_name, now))
        else:
            self._behind.pop(request, None)
            if reason == grant_reason and reason in names.GRANT_FINISHED:
                del self._grants[request], self._requests[request]

    def due(self, entitlements: Callable[[str], bool], now: float, grace: float) -> list[tuple[str, str]]:
        """(request, grant) of the requests of the entitlements chosen that have lagged for `grace`
        seconds; each is given another `grace` before it is due again (a repair that found nothing
        to do waits for the watch to show what it found)."""
        found = [
            (request, grant, entitlement)
            for request, (entitlement, grant, since) in self._behind.items()
            if now - since >= grace and entitlements(entitlement)
        ]
        for request, grant, entitlement in found:
            self._behind[request] = (entitlement, grant, now)
        return [(request, grant) for request, grant, _ in found]

"""AWS IAM Identity Center (the `identitystore` API): names to ids, and group memberships.

Every write is an "ensure": AWS has no idempotency tokens and a timed-out write may still have
been applied, so a duplicate add (`ConflictException`) and a delete of a membership that is gone
(`ResourceNotFoundException` about a membership, its group or its user) both count as done; a
conflict AWS says will pass (a concurrent modification, an account assignment not yet propagated)
is retried. A `ResourceNotFoundException` about the store itself (its id, its KMS key) is a
refusal, never "gone". Errors are classified by AWS error code (and what it says was not found),
never by HTTP status, into the `jitaccess.errors` tree. Client-side token buckets keep the operator
under the identity store's quota, which AWS counts per API (20 requests/s each by default): one
bucket per operation, so that the lookups a grant needs do not eat the quota of its write.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, NoRegionError, ReadTimeoutError

from jitaccess import metrics
from jitaccess.domain import groupids
from jitaccess.domain.eligibility import User
from jitaccess.errors import IdentityCenterError, NotFound, NotLeading, PermanentFailure, RetryLater

log = logging.getLogger(__name__)
T = TypeVar("T")

_RETRY_CODES = frozenset(
    {
        "ThrottlingException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "Throttling",
        "InternalServerException",
        "InternalFailure",
        "ServiceUnavailableException",
        "ServiceUnavailable",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)
#: The sso-admin calls whose `ConflictException` passes (`_passing_conflict`).
_PASSING_CONFLICTS = frozenset({"CreateAccountAssignment", "DeleteAccountAssignment"})
_THROTTLE_CODES = frozenset({"ThrottlingException", "TooManyRequestsException", "RequestLimitExceeded", "Throttling"})
#: The calls that change who is in a group: the ones a replica that is not the leader must not make.
_WRITES = frozenset({"CreateGroupMembership", "DeleteGroupMembership"})
#: The SDK client's timeouts (`IdentityCenter.connect`): one attempt of a call is answered, or
#: given up by this process, within their sum.
CONNECT_TIMEOUT_SECONDS, READ_TIMEOUT_SECONDS = 5.0, 10.0
#: The longest one attempt of a call may take: a write a leader sent just before it stopped acting
#: (its retries go out only while it leads, `pace_retries`) may land until this long after.
LONGEST_CALL_SECONDS = CONNECT_TIMEOUT_SECONDS + READ_TIMEOUT_SECONDS
# Throttled writes are what the throttling alert watches: their series start at 0 (jitaccess.metrics).
for _operation in _WRITES:
    metrics.IDENTITY_CENTER_CALLS.labels(_operation, "throttled")


class RateLimiter:
    """A thread-safe token bucket: `acquire()` blocks until a call may go out."""

    def __init__(self, rate: float, burst: float | None = None, clock: Callable[[], float] = time.monotonic):
        self.rate = rate
        self.capacity = burst if burst is not None else max(1.0, rate)
        self._tokens = self.capacity
        self._clock = clock
        self._stamp = clock()
        self._lock = threading.Lock()

    def ready(self) -> bool:
        """Whether a call could go out now, without waiting for a token (none is taken)."""
        if self.rate <= 0:
            return True
        with self._lock:
            return self._tokens + (self._clock() - self._stamp) * self.rate >= 1

    def take(self, *, peek: bool = False) -> float:
        """Take a token if there is one (0.0); else take none and say how long until there is one.
        `peek`: the same answer, and nothing taken either way."""
        if self.rate <= 0:
            return 0.0
        with self._lock:
            now = self._clock()
            self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            if self._tokens >= 1:
                self._tokens -= 0 if peek else 1
                return 0.0
            return (1 - self._tokens) / self.rate

    def acquire(self) -> None:
        while (wait := self.take()) > 0:
            time.sleep(wait)


def pace_retries(
    client: Any,
    limiter: Callable[[str], RateLimiter],
    writes: frozenset[str] = frozenset(),
    may_write: Callable[[], bool] = lambda: True,
) -> None:
    """Make the SDK's own retries of a call wait for a token of its API, as its first attempt did,
    and go out, for a write (`writes`), only while `may_write()` still says this replica leads.

    botocore retries a throttled or failed call by itself (`standard` mode). Unpaced, those
    attempts go out beside the paced ones, over the quota: at the quota's edge one throttled call
    begets others, until a caller gives up (seen with eight threads against a 20/s quota). A retry
    of a write can go out seconds after the first attempt (a 10 s read timeout, then a token): by
    then the lease may have passed to another replica, which must be the only one to change
    memberships.
    """

    def paced(request: Any, operation_name: str, **_: Any) -> None:
        if ((getattr(request, "context", None) or {}).get("retries") or {}).get("attempt", 1) > 1:
            limiter(operation_name).acquire()
            refuse_unless_leading(operation_name, writes, may_write)

    client.meta.events.register("request-created", paced)


def refuse_unless_leading(operation: str, writes: frozenset[str], may_write: Callable[[], bool]) -> None:
    """`NotLeading` for a write (`writes`) when this replica may not change anything now."""
    if operation in writes and not may_write():
        raise NotLeading(f"{operation} refused: this replica is not the leader", operation=operation)


class CallQueue:
    """At most `limit` Identity Center calls in flight; the callers beyond wait their turn (FIFO).

    Back-pressure for bursts: the threads that would call Identity Center (handlers, webhooks) wait
    here instead of piling up sockets and retries at AWS, and how many wait is a metric
    (`jitaccess_identitycenter_queued`). The rate limiters decide when a call may go out; this
    bounds how many go at once.
    """

    def __init__(self, limit: int) -> None:
        self.limit = max(1, limit)
        self._slots = threading.Semaphore(self.limit)
        self._lock = threading.Lock()
        self.queued = 0

    def __enter__(self) -> None:
        if self._slots.acquire(blocking=False):
            return
        with self._lock:
            self.queued += 1
            metrics.IDENTITY_CENTER_QUEUED.set(self.queued)
        try:
            self._slots.acquire()
        finally:
            with self._lock:
                self.queued -= 1
                metrics.IDENTITY_CENTER_QUEUED.set(self.queued)

    def __exit__(self, *_: object) -> None:
        self._slots.release()


def classify(exc: Exception, operation: str) -> IdentityCenterError:
    """Map a botocore failure onto the jitaccess error tree, by error code."""
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        message = exc.response.get("Error", {}).get("Message", "") or str(exc)
        if code == "ResourceNotFoundException":
            missing = _not_the_object(exc.response)
            if missing is None:
                return NotFound(message, operation=operation, code=code)
            # Not the user, group or membership asked about: read as "gone", a removal would be
            # taken for done while the member stays. It stays until somebody fixes it: a refusal,
            # which removals retry (`handlers.removals`) and adds fail on.
            return PermanentFailure(f"{operation}: {code}: {message} ({missing})", operation=operation, code=code)
        if code in _RETRY_CODES or (code == "ConflictException" and _passing_conflict(exc.response, operation)):
            return RetryLater(f"{operation}: {code}: {message}", operation=operation, code=code)
        return PermanentFailure(f"{operation}: {code}: {message}", operation=operation, code=code)
    if isinstance(exc, ConnectionError | ReadTimeoutError | BotoCoreError):
        return RetryLater(f"{operation}: {exc}", operation=operation, code=type(exc).__name__)
    raise exc


#: identitystore's `ResourceNotFoundException` says what was not found (`ResourceType`); only these
#: are a user, group or membership that does not exist (none said: the one asked about).
_OBJECT_TYPES = frozenset({"", "USER", "GROUP", "GROUP_MEMBERSHIP"})


def _not_the_object(response: Mapping[str, Any]) -> str | None:
    """What a `ResourceNotFoundException` says is missing when it is not the user, group or
    membership the call names; None when it is that (or does not say otherwise).

    identitystore names the kind in `ResourceType`: `USER`, `GROUP`, `GROUP_MEMBERSHIP`, and
    `IDENTITY_STORE` (a wrong store id) or `RESOURCE_POLICY`, which are no object of a call. When the
    Identity Center instance's customer managed KMS key cannot be found it sends `Reason`
    (`KMS_KEY_NOT_FOUND`; sso-admin's: `KMS_NotFoundException`): nothing in the store can be read or
    changed then, whatever the call names.
    """
    reason = str(response.get("Reason") or "")
    kind = str(response.get("ResourceType") or "")
    if reason.startswith("KMS_"):
        return (
            f"{reason}: the Identity Center instance's customer managed KMS key is not found; "
            "no user, group or membership is missing"
        )
    if kind not in _OBJECT_TYPES:
        return (
            f"{kind} not found: no user, group or membership is missing; "
            "check JITACCESS_IDENTITY_STORE_ID and the identity store"
        )
    return None


def _passing_conflict(response: Mapping[str, Any], operation: str) -> bool:
    """Whether a `ConflictException` is one AWS says to retry, rather than a state that stays.

    identitystore says which in `Reason`: `CONCURRENT_MODIFICATION` (another write to the same
    object, seen on `DeleteGroupMembership`) passes; `UNIQUENESS_CONSTRAINT_VIOLATION` (a
    duplicate membership, a taken user name) stays. sso-admin sends no reason: its conflicts on
    account assignments are a previous write not yet propagated, and "a retry (with appropriate
    backoff logic) is the recommended response"; its other ones (a permission set's name taken,
    a policy attached already) stay.
    """
    return response.get("Reason") == "CONCURRENT_MODIFICATION" or operation in _PASSING_CONFLICTS


class IdentityCenter:
    """Identity Store operations the operator needs, on one identity store."""

    def __init__(self, client: Any, identity_store_id: str, rate_limit: float = 20.0, max_in_flight: int = 16) -> None:
        self._client = client
        # Builds another client of the same store with another `Config` (`quick`); None when the
        # client was given, not connected.
        self._make_client: Callable[[Config], Any] | None = None
        self.identity_store_id = identity_store_id
        self.rate_limit = rate_limit
        self.queue = CallQueue(max_in_flight)
        self._limiters: dict[str, RateLimiter] = {}
        self._limiters_guard = threading.Lock()
        # Whether this replica may change memberships now: only the leader may, and a leader cut
        # off from the API server stops at its renew deadline, before another one takes over.
        self.may_write: Callable[[], bool] = lambda: True

    @classmethod
    def connect(
        cls,
        identity_store_id: str | None,
        *,
        region: str | None = None,
        endpoint_url: str | None = None,
        rate_limit: float = 20.0,
        max_attempts: int = 3,
    ) -> IdentityCenter:
        """Build the boto3 client; find the identity store with sso-admin when no id is given.

        SDK retries stay short (`standard`, few attempts): long waits belong to kopf's own retry,
        which backs off per object instead of blocking a worker thread.
        """
        config = Config(
            retries={"mode": "standard", "total_max_attempts": max_attempts},
            connect_timeout=CONNECT_TIMEOUT_SECONDS,
            read_timeout=READ_TIMEOUT_SECONDS,
            max_pool_connections=50,
        )
        session = boto3.session.Session(region_name=region)
        try:
            client = session.client("identitystore", endpoint_url=endpoint_url, config=config)
        except NoRegionError:
            # botocore's own words name neither setting: say which one to set.
            raise PermanentFailure(
                "no AWS region: set JITACCESS_REGION (the chart's config.region) to the Identity Center "
                "instance's region, or AWS_REGION",
                operation="connect",
            ) from None
        if not identity_store_id:
            sso = session.client("sso-admin", endpoint_url=endpoint_url, config=config)
            instances = sso.list_instances().get("Instances", [])
            if len(instances) != 1:
                raise PermanentFailure(
                    f"found {len(instances)} Identity Center instances: set JITACCESS_IDENTITY_STORE_ID",
                    operation="ListInstances",
                )
            identity_store_id = instances[0]["IdentityStoreId"]
        adapter = cls(client, identity_store_id, rate_limit)
        pace_retries(client, adapter._limiter, _WRITES, lambda: adapter.may_write())
        adapter._make_client = lambda other: session.client("identitystore", endpoint_url=endpoint_url, config=other)
        return adapter

    def quick(self, *, read_timeout: float = 5.0, connect_timeout: float = 3.0) -> IdentityCenter:
        """The same store, quota and call queue, through a client that tries once and waits at most
        `connect_timeout` + `read_timeout`: for the admission webhooks. The API server gives a webhook
        `webhooks.TIMEOUT_SECONDS`; with the SDK's three attempts of up to 10 s each, a slow Identity
        Center outlasted it, and the user read "the webhook did not answer, is the operator running?"
        after the full wait instead of the webhook's own "Identity Center did not answer".
        Itself when it was not connected (a test's client)."""
        if self._make_client is None:
            return self
        config = Config(
            retries={"mode": "standard", "total_max_attempts": 1},
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            max_pool_connections=50,
        )
        sibling = type(self)(self._make_client(config), self.identity_store_id, self.rate_limit)
        # One quota and one queue for both: they are the account's and the replica's.
        sibling._limiters, sibling._limiters_guard, sibling.queue = self._limiters, self._limiters_guard, self.queue
        sibling.may_write = lambda: self.may_write()
        pace_retries(sibling._client, sibling._limiter, _WRITES, lambda: sibling.may_write())
        return sibling

    def _limiter(self, operation: str) -> RateLimiter:
        with self._limiters_guard:
            limiter = self._limiters.get(operation)
            if limiter is None:
                limiter = self._limiters[operation] = RateLimiter(self.rate_limit)
            return limiter

    def _call(self, operation: str, fn: Callable[..., T], **kwargs: Any) -> T:
        refuse_unless_leading(operation, _WRITES, self.may_write)
        # The token first, then a slot: a thread waiting out one API's quota must not hold a slot
        # another API's call could use (a revocation queued behind a burst of grants' lookups).
        self._limiter(operation).acquire()
        with self.queue:
            # Asked again as the call goes out: the waits above can outlast the lease.
            refuse_unless_leading(operation, _WRITES, self.may_write)
            try:
                result = fn(IdentityStoreId=self.identity_store_id, **kwargs)
            except Exception as exc:
                error = classify(exc, operation)
                outcome = "throttled" if error.code in _THROTTLE_CODES else type(error).__name__
                metrics.IDENTITY_CENTER_CALLS.labels(operation, outcome).inc()
                raise error from exc
        metrics.IDENTITY_CENTER_CALLS.labels(operation, "ok").inc()
        return result

    # --- names to ids -------------------------------------------------------------------------

    def resolve_user(self, user_name: str) -> str:
        """The UserId of the user whose UserName is `user_name`; `NotFound` when there is none."""
        response = self._call(
            "GetUserId",
            self._client.get_user_id,
            AlternateIdentifier={"UniqueAttribute": {"AttributePath": "userName", "AttributeValue": user_name}},
        )
        return str(response["UserId"])

    def resolve_group(self, name_or_id: str) -> str:
        """The GroupId of a group given by DisplayName, or the id itself when it is one."""
        try:
            response = self._call(
                "GetGroupId",
                self._client.get_group_id,
                AlternateIdentifier={"UniqueAttribute": {"AttributePath": "displayName", "AttributeValue": name_or_id}},
            )
            return str(response["GroupId"])
        except NotFound:
            if not groupids.looks_like_group_id(name_or_id):
                raise
        self._call("DescribeGroup", self._client.describe_group, GroupId=name_or_id)
        return name_or_id

    # --- memberships --------------------------------------------------------------------------

    def find_membership(self, group_id: str, user_id: str) -> str | None:
        try:
            response = self._call(
                "GetGroupMembershipId",
                self._client.get_group_membership_id,
                GroupId=group_id,
                MemberId={"UserId": user_id},
            )
        except NotFound:
            return None
        return str(response["MembershipId"])

    def can_add_member_now(self) -> bool:
        """Whether a membership could be added now without waiting out the quota (under a burst
        held to it, a caller would wait its turn: `grants.provision_at_once` then leaves the work
        to the grant's own threads rather than hold a thread of the request's decisions)."""
        return self._limiter("CreateGroupMembership").ready()

    def ensure_member(self, group_id: str, user_id: str) -> tuple[str, bool]:
        """Ensure `user_id` is in `group_id`: (the membership id, whether this call added it rather
        than found it there). Identity Center keeps no time of a membership's creation: whether
        it was there already is all a caller can learn of when the access began."""
        try:
            response = self._call(
                "CreateGroupMembership",
                self._client.create_group_membership,
                GroupId=group_id,
                MemberId={"UserId": user_id},
            )
            return str(response["MembershipId"]), True
        except PermanentFailure as exc:
            # A conflict that stays (`UNIQUENESS_CONSTRAINT_VIOLATION`): a member already. A
            # concurrent modification is `RetryLater` (`classify`), and is not caught here.
            if exc.code != "ConflictException":
                raise
        existing = self.find_membership(group_id, user_id)
        if existing is None:
            raise RetryLater("membership conflicted but cannot be found yet", operation="CreateGroupMembership")
        return existing, False

    def remove_member(self, group_id: str, user_id: str, membership_id: str | None = None) -> bool:
        """Ensure `user_id` is not in `group_id`; True when this call removed it.

        False ("gone already") only when Identity Center says the membership, or its group or user,
        does not exist (`NotFound`); a store whose id or KMS key is not found is a `PermanentFailure`
        (`classify`), which the caller retries: the member may still be in the group."""
        membership_id = membership_id or self.find_membership(group_id, user_id)
        if membership_id is None:
            return False
        try:
            self._call("DeleteGroupMembership", self._client.delete_group_membership, MembershipId=membership_id)
        except NotFound:
            # Gone already, or the stored id is stale (re-created since): make sure by the pair.
            current = self.find_membership(group_id, user_id)
            if current is None or current == membership_id:
                return False
            return self.remove_member(group_id, user_id, current)
        return True

    def missing_groups(self, user_id: str, group_ids: Iterable[str]) -> list[str]:
        """The groups among `group_ids` that the user is not a member of."""
        wanted = list(group_ids)
        if not wanted:
            return []
        response = self._call(
            "IsMemberInGroups", self._client.is_member_in_groups, MemberId={"UserId": user_id}, GroupIds=wanted
        )
        member = {r["GroupId"] for r in response.get("Results", []) if r.get("MembershipExists")}
        return [g for g in wanted if g not in member]

    def group_members(self, group_id: str) -> dict[str, str]:
        """Every user in the group: user id -> membership id (all pages)."""
        members: dict[str, str] = {}
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"GroupId": group_id, "MaxResults": 100}
            if token:
                kwargs["NextToken"] = token
            page = self._call("ListGroupMemberships", self._client.list_group_memberships, **kwargs)
            for item in page.get("GroupMemberships", []):
                user_id = item.get("MemberId", {}).get("UserId")
                if user_id:
                    members[user_id] = item["MembershipId"]
            token = page.get("NextToken")
            if not token:
                return members

    def user_name(self, user_id: str) -> str:
        response = self._call("DescribeUser", self._client.describe_user, UserId=user_id)
        return str(response.get("UserName", user_id))

    def user_enabled(self, user_id: str) -> bool:
        """Whether the user's account is enabled; `NotFound` when the user does not exist."""
        response = self._call("DescribeUser", self._client.describe_user, UserId=user_id)
        return _enabled(response)

    def users(self) -> dict[str, User]:
        """Every user of the store (all pages): UserId -> name and whether the account is enabled."""
        found: dict[str, User] = {}
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"MaxResults": 100}
            if token:
                kwargs["NextToken"] = token
            page = self._call("ListUsers", self._client.list_users, **kwargs)
            for item in page.get("Users", []):
                user_id = item.get("UserId")
                if user_id:
                    found[user_id] = User(str(item.get("UserName") or user_id), _enabled(item))
            token = page.get("NextToken")
            if not token:
                return found


def _enabled(user: dict[str, Any]) -> bool:
    # `UserStatus` (ENABLED or DISABLED) is recent in the API: a store that leaves it out has
    # no disabled users to report.
    return str(user.get("UserStatus") or "ENABLED") != "DISABLED"

"""AWS IAM Identity Center's `sso-admin` API: permission sets, account assignments, provisioning.

What the permission-set reconciler (`handlers.permissionsets`) needs, as "ensure" operations on
one Identity Center instance. Calls go out as the identity store's do (`adapters.identitycenter`):
one client-side token bucket per operation (sso-admin's quota is its own, counted per API), the
same bounded queue of calls in flight (taken once the token is: a caller waiting out a quota holds
no slot), errors classified by AWS error code into the
`jitaccess.errors` tree, and every write refused on a replica that is not the leader (`NotLeading`).

Assignments and provisioning are asynchronous in AWS: the call answers `IN_PROGRESS` and a request
id. `wait` polls the request's status (bounded: `RetryLater` when it has not finished in time, so
kopf retries the pass; a pass is idempotent) and raises `PermanentFailure` with AWS's reason when
it `FAILED`; `finished` waits alike and gives each request's final state instead, for a caller that
goes on past one account's failure (a catalog's pass: `handlers.permissionsets`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

import boto3
from botocore.config import Config

from jitaccess import metrics
from jitaccess.adapters.identitycenter import (
    _THROTTLE_CODES,
    CallQueue,
    RateLimiter,
    classify,
    pace_retries,
    refuse_unless_leading,
)
from jitaccess.errors import NotFound, PermanentFailure, RetryLater

log = logging.getLogger(__name__)
T = TypeVar("T")
#: How far AWS's clock (a creation's `CreatedDate`) may be behind the API server's (a grant's
#: creation) before a creation of the grant's own is taken for an older one.
CLOCK_SKEW = timedelta(minutes=5)

#: The calls that change Identity Center: a replica that is not the leader must not make them.
_WRITES = frozenset(
    {
        "CreatePermissionSet",
        "UpdatePermissionSet",
        "DeletePermissionSet",
        "PutInlinePolicyToPermissionSet",
        "DeleteInlinePolicyFromPermissionSet",
        "AttachManagedPolicyToPermissionSet",
        "DetachManagedPolicyFromPermissionSet",
        "AttachCustomerManagedPolicyReferenceToPermissionSet",
        "DetachCustomerManagedPolicyReferenceFromPermissionSet",
        "CreateAccountAssignment",
        "DeleteAccountAssignment",
        "ProvisionPermissionSet",
        "TagResource",
        "UntagResource",
    }
)
# Throttled writes are what the throttling alert watches: their series start at 0 (jitaccess.metrics).
for _operation in _WRITES:
    metrics.IDENTITY_CENTER_CALLS.labels(_operation, "throttled")
_AWS_MANAGED_PREFIX = ":iam::aws:policy/"


@dataclass(frozen=True)
class PermissionSetState:
    """A permission set as Identity Center holds it now."""

    arn: str
    name: str
    description: str
    session_duration: str
    inline_policy: str
    #: `policy_key` of each managed policy attached, sorted.
    managed_policies: tuple[str, ...]
    tags: dict[str, str]


@dataclass(frozen=True)
class Request:
    """An asynchronous request: which kind (for its status call) and its id."""

    kind: str  # "create", "delete" or "provision"
    request_id: str
    status: str
    failure: str = ""


def policy_key(arn: str) -> str:
    """How a managed policy is known on a permission set: an AWS managed policy by its ARN, a
    customer managed one by its path and name (`/PATH/NAME`): sso-admin references those by name,
    and each account assigned must hold a policy of that name."""
    if _AWS_MANAGED_PREFIX in arn:
        return arn
    return arn.split(":policy", 1)[1] if ":policy" in arn else arn


def _reference(key: str) -> dict[str, str]:
    path, _, name = key.rpartition("/")
    return {"Name": name, "Path": path + "/"}


class SsoAdmin:
    """sso-admin operations on one Identity Center instance; see the module doc."""

    def __init__(
        self,
        client: Any,
        instance_arn: str,
        rate_limit: float = 20.0,
        queue: CallQueue | None = None,
        wait_seconds: float = 120.0,
    ) -> None:
        self._client = client
        self.instance_arn = instance_arn
        self.rate_limit = rate_limit
        self.queue = queue or CallQueue(16)
        self.wait_seconds = wait_seconds
        self._limiters: dict[str, RateLimiter] = {}
        self._guard = threading.Lock()
        #: Calls made, per operation (the bench and the pass's status count them).
        self.calls: dict[str, int] = {}
        # Whether this replica may change Identity Center now (the leader only; `identitycenter`).
        self.may_write: Callable[[], bool] = lambda: True

    @classmethod
    def connect(
        cls,
        instance_arn: str | None,
        *,
        region: str | None = None,
        endpoint_url: str | None = None,
        rate_limit: float = 20.0,
        max_attempts: int = 3,
        queue: CallQueue | None = None,
    ) -> SsoAdmin:
        """Build the client; find the instance with ListInstances when none is given (exactly one)."""
        config = Config(
            retries={"mode": "standard", "total_max_attempts": max_attempts},
            connect_timeout=5,
            read_timeout=10,
            max_pool_connections=50,
        )
        client = boto3.session.Session(region_name=region).client("sso-admin", endpoint_url=endpoint_url, config=config)
        adapter = cls(client, instance_arn or "", rate_limit, queue)
        pace_retries(client, adapter._limiter, _WRITES, lambda: adapter.may_write())
        if not instance_arn:
            instances = adapter._call("ListInstances", client.list_instances, instance=False).get("Instances", [])
            if len(instances) != 1:
                raise PermanentFailure(
                    f"found {len(instances)} Identity Center instances: set JITACCESS_SSO_INSTANCE_ARN",
                    operation="ListInstances",
                )
            adapter.instance_arn = str(instances[0]["InstanceArn"])
        return adapter

    def calls_made(self) -> int:
        with self._guard:
            return sum(self.calls.values())

    def _limiter(self, operation: str) -> RateLimiter:
        with self._guard:
            limiter = self._limiters.get(operation)
            if limiter is None:
                limiter = self._limiters[operation] = RateLimiter(self.rate_limit)
            return limiter

    def _call(self, operation: str, fn: Callable[..., T], *, instance: bool = True, **kwargs: Any) -> T:
        refuse_unless_leading(operation, _WRITES, self.may_write)
        if instance:
            kwargs["InstanceArn"] = self.instance_arn
        with self._guard:
            self.calls[operation] = self.calls.get(operation, 0) + 1
        # The token first, then a slot, as for the identity store (`IdentityCenter._call`): the queue
        # is shared with it, and a thread waiting out one API's quota must not hold a slot another
        # API's call could use (a revocation queued behind a burst of permission-set reads).
        self._limiter(operation).acquire()
        with self.queue:
            # Asked again as the call goes out: the waits above can outlast the lease.
            refuse_unless_leading(operation, _WRITES, self.may_write)
            try:
                result = fn(**kwargs)
            except Exception as exc:
                error = classify(exc, operation)
                outcome = "throttled" if error.code in _THROTTLE_CODES else type(error).__name__
                metrics.IDENTITY_CENTER_CALLS.labels(operation, outcome).inc()
                raise error from exc
        metrics.IDENTITY_CENTER_CALLS.labels(operation, "ok").inc()
        return result

    def _pages(self, operation: str, fn: Callable[..., Any], key: str, **kwargs: Any) -> Iterator[Any]:
        token: str | None = None
        while True:
            paging: dict[str, Any] = {"NextToken": token} if token else {}
            page = self._call(operation, fn, **kwargs, **paging)
            yield from page.get(key, [])
            token = page.get("NextToken")
            if not token:
                return

    # --- permission sets -------------------------------------------------------------------------

    def permission_set_arns(self) -> list[str]:
        return list(self._pages("ListPermissionSets", self._client.list_permission_sets, "PermissionSets"))

    def tags(self, arn: str) -> dict[str, str]:
        items = self._pages("ListTagsForResource", self._client.list_tags_for_resource, "Tags", ResourceArn=arn)
        return {t["Key"]: t["Value"] for t in items}

    def read(self, arn: str) -> PermissionSetState:
        """The permission set now: `NotFound` when it is gone (deleted by hand, say)."""
        described = self._call("DescribePermissionSet", self._client.describe_permission_set, PermissionSetArn=arn)[
            "PermissionSet"
        ]
        inline = self._call(
            "GetInlinePolicyForPermissionSet", self._client.get_inline_policy_for_permission_set, PermissionSetArn=arn
        ).get("InlinePolicy", "")
        managed = [
            p["Arn"]
            for p in self._pages(
                "ListManagedPoliciesInPermissionSet",
                self._client.list_managed_policies_in_permission_set,
                "AttachedManagedPolicies",
                PermissionSetArn=arn,
            )
        ]
        customer = [
            f"{r.get('Path', '/')}{r['Name']}"
            for r in self._pages(
                "ListCustomerManagedPolicyReferencesInPermissionSet",
                self._client.list_customer_managed_policy_references_in_permission_set,
                "CustomerManagedPolicyReferences",
                PermissionSetArn=arn,
            )
        ]
        return PermissionSetState(
            arn=arn,
            name=str(described["Name"]),
            description=str(described.get("Description") or ""),
            session_duration=str(described.get("SessionDuration") or "PT1H"),
            inline_policy=str(inline or ""),
            managed_policies=tuple(sorted([*managed, *customer])),
            tags=self.tags(arn),
        )

    def create(self, name: str, description: str, session_duration: str, tags: dict[str, str]) -> str:
        extra: dict[str, Any] = {"Description": description} if description else {}
        response = self._call(
            "CreatePermissionSet",
            self._client.create_permission_set,
            Name=name,
            SessionDuration=session_duration,
            Tags=[{"Key": k, "Value": v} for k, v in sorted(tags.items())],
            **extra,
        )
        return str(response["PermissionSet"]["PermissionSetArn"])

    def update(self, arn: str, description: str, session_duration: str) -> None:
        extra: dict[str, Any] = {"Description": description} if description else {}
        self._call(
            "UpdatePermissionSet",
            self._client.update_permission_set,
            PermissionSetArn=arn,
            SessionDuration=session_duration,
            **extra,
        )

    def put_inline_policy(self, arn: str, policy: str) -> None:
        if policy:
            self._call(
                "PutInlinePolicyToPermissionSet",
                self._client.put_inline_policy_to_permission_set,
                PermissionSetArn=arn,
                InlinePolicy=policy,
            )
        else:
            self._call(
                "DeleteInlinePolicyFromPermissionSet",
                self._client.delete_inline_policy_from_permission_set,
                PermissionSetArn=arn,
            )

    def attach(self, arn: str, key: str) -> None:
        """Attach a managed policy given by its `policy_key`: an AWS managed one by ARN, a customer
        managed one by reference."""
        try:
            if key.startswith("/"):
                self._call(
                    "AttachCustomerManagedPolicyReferenceToPermissionSet",
                    self._client.attach_customer_managed_policy_reference_to_permission_set,
                    PermissionSetArn=arn,
                    CustomerManagedPolicyReference=_reference(key),
                )
            else:
                self._call(
                    "AttachManagedPolicyToPermissionSet",
                    self._client.attach_managed_policy_to_permission_set,
                    PermissionSetArn=arn,
                    ManagedPolicyArn=key,
                )
        except PermanentFailure as exc:
            if exc.code != "ConflictException":  # attached already: done
                raise

    def detach(self, arn: str, key: str) -> None:
        try:
            if key.startswith("/"):
                self._call(
                    "DetachCustomerManagedPolicyReferenceFromPermissionSet",
                    self._client.detach_customer_managed_policy_reference_from_permission_set,
                    PermissionSetArn=arn,
                    CustomerManagedPolicyReference=_reference(key),
                )
            else:
                self._call(
                    "DetachManagedPolicyFromPermissionSet",
                    self._client.detach_managed_policy_from_permission_set,
                    PermissionSetArn=arn,
                    ManagedPolicyArn=key,
                )
        except NotFound:
            return  # detached already

    def tag(self, arn: str, tags: dict[str, str]) -> None:
        self._call(
            "TagResource",
            self._client.tag_resource,
            ResourceArn=arn,
            Tags=[{"Key": k, "Value": v} for k, v in sorted(tags.items())],
        )

    def delete(self, arn: str) -> None:
        try:
            self._call("DeletePermissionSet", self._client.delete_permission_set, PermissionSetArn=arn)
        except NotFound:
            return

    # --- assignments and provisioning ----------------------------------------------------------

    def assigned_accounts(self, arn: str) -> list[str]:
        """The accounts the permission set is provisioned to (where it may be assigned)."""
        return list(
            self._pages(
                "ListAccountsForProvisionedPermissionSet",
                self._client.list_accounts_for_provisioned_permission_set,
                "AccountIds",
                PermissionSetArn=arn,
            )
        )

    def assignments(self, arn: str, account: str) -> list[tuple[str, str]]:
        """(principal type, principal id) of every assignment of the permission set in the account."""
        rows = self._pages(
            "ListAccountAssignments",
            self._client.list_account_assignments,
            "AccountAssignments",
            AccountId=account,
            PermissionSetArn=arn,
        )
        return [(str(r["PrincipalType"]), str(r["PrincipalId"])) for r in rows]

    def creations_in_progress(
        self,
        arn: str,
        accounts: Iterable[str],
        principal: str,
        principal_type: str = "GROUP",
        *,
        since: datetime | None = None,
    ) -> list[Request]:
        """The creations of the permission set's assignment to `principal` in any of `accounts` that
        are still in progress: what `assignments` does not show yet, and will once they succeed.
        AWS lists only each creation's id, state and time: each in progress is described to tell
        whose, except those started before `since` (less `CLOCK_SKEW`), which cannot be the caller's:
        in a burst of failing grants, each describes the creations of its own moment, not all of them."""
        wanted = {
            "PermissionSetArn": arn,
            "PrincipalType": principal_type,
            "PrincipalId": principal,
        }
        targets = set(accounts)
        found = []
        for item in self._pages(
            "ListAccountAssignmentCreationStatus",
            self._client.list_account_assignment_creation_status,
            "AccountAssignmentsCreationStatus",
            Filter={"Status": "IN_PROGRESS"},
        ):
            created = item.get("CreatedDate")
            if since is not None and isinstance(created, datetime) and created < since - CLOCK_SKEW:
                continue
            try:
                body = self._call(
                    "DescribeAccountAssignmentCreationStatus",
                    self._client.describe_account_assignment_creation_status,
                    AccountAssignmentCreationRequestId=str(item.get("RequestId", "")),
                )["AccountAssignmentCreationStatus"]
            except NotFound:
                continue
            if all(body.get(k) == v for k, v in wanted.items()) and body.get("TargetId") in targets:
                found.append(_request("create", body))
        return found

    def _assignment(self, arn: str, account: str, principal: str, principal_type: str) -> dict[str, Any]:
        return {
            "TargetId": account,
            "TargetType": "AWS_ACCOUNT",
            "PermissionSetArn": arn,
            "PrincipalType": principal_type,
            "PrincipalId": principal,
        }

    def assign(self, arn: str, account: str, principal: str, principal_type: str = "GROUP") -> Request:
        status = self._call(
            "CreateAccountAssignment",
            self._client.create_account_assignment,
            **self._assignment(arn, account, principal, principal_type),
        )["AccountAssignmentCreationStatus"]
        return _request("create", status)

    def unassign(self, arn: str, account: str, principal: str, principal_type: str = "GROUP") -> Request:
        status = self._call(
            "DeleteAccountAssignment",
            self._client.delete_account_assignment,
            **self._assignment(arn, account, principal, principal_type),
        )["AccountAssignmentDeletionStatus"]
        return _request("delete", status)

    def provision(self, arn: str, account: str | None = None) -> Request:
        """Provision to one account, or (None) to every account it is provisioned to."""
        target: dict[str, Any] = (
            {"TargetType": "AWS_ACCOUNT", "TargetId": account}
            if account
            else {"TargetType": "ALL_PROVISIONED_ACCOUNTS"}
        )
        status = self._call(
            "ProvisionPermissionSet", self._client.provision_permission_set, PermissionSetArn=arn, **target
        )["PermissionSetProvisioningStatus"]
        return _request("provision", status)

    def status(self, request: Request) -> Request:
        if request.kind == "create":
            body = self._call(
                "DescribeAccountAssignmentCreationStatus",
                self._client.describe_account_assignment_creation_status,
                AccountAssignmentCreationRequestId=request.request_id,
            )["AccountAssignmentCreationStatus"]
        elif request.kind == "delete":
            body = self._call(
                "DescribeAccountAssignmentDeletionStatus",
                self._client.describe_account_assignment_deletion_status,
                AccountAssignmentDeletionRequestId=request.request_id,
            )["AccountAssignmentDeletionStatus"]
        else:
            body = self._call(
                "DescribePermissionSetProvisioningStatus",
                self._client.describe_permission_set_provisioning_status,
                ProvisionPermissionSetRequestId=request.request_id,
            )["PermissionSetProvisioningStatus"]
        return _request(request.kind, body)

    def wait(self, requests: list[Request], *, interval: float = 0.1) -> list[Request]:
        """Poll until every request has finished (`finished`); their final state. `PermanentFailure`
        naming AWS's reason for any that FAILED (the others are waited for first, so one pass
        reports them all)."""
        done = self.finished(requests, interval=interval)
        failed = [r for r in done if r.status == "FAILED"]
        if failed:
            reasons = "; ".join(f"{r.kind} {r.request_id}: {r.failure or 'no reason given'}" for r in failed)
            raise PermanentFailure(f"Identity Center request(s) failed: {reasons}", operation="wait", code="FAILED")
        return done

    def finished(self, requests: list[Request], *, interval: float = 0.1) -> list[Request]:
        """Poll until every request has finished (backing off to 2 s between polls); their final
        state, those that FAILED with AWS's reason (`Request.failure`), in the order given.
        `RetryLater` past `wait_seconds`."""
        deadline = time.monotonic() + self.wait_seconds
        done = [r for r in requests if r.status != "IN_PROGRESS"]
        pending = [r for r in requests if r.status == "IN_PROGRESS"]
        while pending:
            if time.monotonic() > deadline:
                raise RetryLater(
                    f"{len(pending)} Identity Center request(s) still in progress after {self.wait_seconds:.0f}s",
                    operation="wait",
                )
            time.sleep(interval)
            interval = min(2.0, interval * 1.5)
            polled = [self.status(r) for r in pending]
            done += [r for r in polled if r.status != "IN_PROGRESS"]
            pending = [r for r in polled if r.status == "IN_PROGRESS"]
        final = {r.request_id: r for r in done}
        return [final[r.request_id] for r in requests]


def _request(kind: str, body: dict[str, Any]) -> Request:
    return Request(
        kind, str(body.get("RequestId", "")), str(body.get("Status", "")), str(body.get("FailureReason") or "")
    )

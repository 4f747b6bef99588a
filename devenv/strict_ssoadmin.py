"""IAM Identity Center's `sso-admin` API as strict as AWS where jitaccess depends on it.

moto 5.2's sso-admin is a thin record keeper; each emulator *pins* an instance of its own here
(`pin_instance`), and every request the emulator tags with that instance (a header its middleware
adds) is answered by `Instance`, not by moto's backend. Requests without the tag (in-process
``mock_aws`` tests) still reach moto. The differences from moto:

* ``CreateAccountAssignment``, ``DeleteAccountAssignment`` and ``ProvisionPermissionSet`` are
  asynchronous, as in AWS: they answer ``IN_PROGRESS`` with a ``RequestId``, and the change takes
  effect ``async_seconds`` later (default 0.2 s), when ``Describe*Status`` turns ``SUCCEEDED``.
  moto applies them at once and answers ``SUCCEEDED``. An assignment to a principal that is not in
  the emulator's identity store ends ``FAILED`` with a ``FailureReason``. Tests choose accounts
  whose assignments end ``FAILED`` (`Instance.failing_accounts`: an account AWS cannot reach) or
  where the operator's role is denied, as an IAM deny scoped to the account would
  (`Instance.refused_accounts`): ``CreateAccountAssignment``, ``DeleteAccountAssignment`` and
  ``ListAccountAssignments`` in the account, ``ProvisionPermissionSet`` to it and to
  ``ALL_PROVISIONED_ACCOUNTS`` of a permission set it holds, each refused at once with
  ``AccessDeniedException``; and accounts where ``ProvisionPermissionSet`` ends
  ``FAILED`` (`Instance.unprovisionable_accounts`: a suspended account, a customer managed policy
  deleted there), one of them failing a provisioning to ``ALL_PROVISIONED_ACCOUNTS`` as a whole.
* ``ListAccountAssignmentCreationStatus`` is served (moto lacks it): the creations still
  ``IN_PROGRESS`` are what ``ListAccountAssignments`` does not show yet.
* ``DescribePermissionSetProvisioningStatus``, ``TagResource``, ``UntagResource`` and
  ``ListTagsForResource`` are served (moto lacks them); ``CreatePermissionSet`` keeps its tags.
* Permission set ARNs have AWS's shape, ``arn:aws:sso:::permissionSet/ssoins-.../ps-...``
  (moto: ``.../instance/ssoins-.../ps-...``), and a malformed instance or permission set ARN is
  a ``ValidationException`` naming the pattern, as AWS's input validation words it; a well-formed
  one that does not exist is ``ResourceNotFoundException`` ("Could not find PermissionSet with
  id ps-...").
* ``PutInlinePolicyToPermissionSet`` refuses a policy over 32,768 characters (the API's length
  constraint: ``ValidationException``) or one that is not a JSON object; moto takes anything.
* ``AttachManagedPolicyToPermissionSet`` and ``AttachCustomerManagedPolicyReferenceToPermissionSet``
  together count against the 20 managed policies of a permission set
  (``ServiceQuotaExceededException``); a duplicate is ``ConflictException``. An AWS managed policy
  is accepted only if moto's IAM knows it, as AWS refuses one that does not exist.
* ``CreatePermissionSet`` with a name the instance has already is ``ConflictException``; a
  ``SessionDuration`` outside PT1H..PT12H is ``ValidationException``.
* ``DeletePermissionSet`` while accounts are assigned to it is ``ConflictException``.
* What each account got is kept per provisioning (`Instance.provisioned`): the permission set's
  inline policy, managed policies and session duration as they were when the provisioning (or an
  assignment's implicit one) was requested, so a test can tell a policy written but never
  provisioned from one in effect.

Throttling is the fault injector's (`devenv.faults`: ``faults.fail`` per call, ``faults.throttle``
for a sustained quota), as for the identity store.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from moto.core.exceptions import JsonRESTError
from moto.iam.aws_managed_policies import aws_managed_policies_data
from moto.identitystore.models import IdentityStoreData
from moto.ssoadmin.responses import SSOAdminResponse

__all__ = ["INSTANCE_HEADER", "Instance", "pin_instance", "unpin_instance"]

#: The header the emulator's middleware puts on each request: which pinned instance answers it.
INSTANCE_HEADER: Final = "X-Jitaccess-Emulator-Instance"
MAX_INLINE_POLICY: Final = 32768
MAX_MANAGED_POLICIES: Final = 20

_INSTANCE_ARN = re.compile(
    r"^arn:(aws|aws-us-gov|aws-cn|aws-iso|aws-iso-b):sso:::instance/(sso)?ins-[a-zA-Z0-9-.]{16}$"
)
_PS_ARN = re.compile(
    r"^arn:(aws|aws-us-gov|aws-cn|aws-iso|aws-iso-b):sso:::permissionSet/(sso)?ins-[a-zA-Z0-9-.]{16}/ps-[a-zA-Z0-9-./]{16}$"
)
_NAME = re.compile(r"^[\w+=,.@-]{1,32}$")
_DURATION = re.compile(r"^PT(?:(\d+)H)?(?:(\d+)M)?$")
_ACCOUNT = re.compile(r"^\d{12}$")
_LOCK = threading.Lock()
_PINNED: dict[str, Instance] = {}
_patched = False
_aws_managed: dict[str, Any] | None = None


def _error(kind: str, message: str) -> JsonRESTError:
    return JsonRESTError(kind, message)


def _validation(field_name: str, value: str, pattern: str) -> JsonRESTError:
    return _error(
        "ValidationException",
        f"1 validation error detected: Value '{value}' at '{field_name}' failed to satisfy constraint: "
        f"Member must satisfy regular expression pattern: {pattern}",
    )


@dataclass
class PermissionSet:
    arn: str
    name: str
    description: str
    session_duration: str
    tags: dict[str, str]
    created: float
    inline_policy: str = ""
    managed: list[str] = field(default_factory=list)
    customer_managed: list[tuple[str, str]] = field(default_factory=list)

    def content(self) -> dict[str, Any]:
        """What provisioning copies into an account."""
        return {
            "InlinePolicy": self.inline_policy,
            "ManagedPolicies": sorted(self.managed),
            "CustomerManagedPolicies": sorted(f"{path}{name}" for name, path in self.customer_managed),
            "SessionDuration": self.session_duration,
        }


@dataclass
class _Request:
    kind: str  # "create", "delete" or "provision"
    request_id: str
    due: float
    created: float
    body: dict[str, Any]
    apply: Callable[[], str | None]  # the change; a failure reason, or None
    status: str = "IN_PROGRESS"
    failure: str | None = None


class Instance:
    """One Identity Center instance: permission sets, assignments, provisioning; see module doc."""

    def __init__(self, store_id: str, store: IdentityStoreData, account_id: str = "123456789012") -> None:
        self.arn = f"arn:aws:sso:::instance/ssoins-{secrets.token_hex(8)}"
        self.store_id, self.store, self.account_id = store_id, store, account_id
        self.async_seconds = 0.2
        self.permission_sets: dict[str, PermissionSet] = {}
        # (account, permission set ARN, principal type, principal id)
        self.assignments: set[tuple[str, str, str, str]] = set()
        #: (permission set ARN, account) -> the content provisioned there (`PermissionSet.content`).
        self.provisioned: dict[tuple[str, str], dict[str, Any]] = {}
        #: Provisionings that took effect, per permission set ARN (explicit and by assignment).
        self.provisions: Counter[str] = Counter()
        #: Accounts where every new assignment ends FAILED (an account AWS cannot reach, say): tests.
        self.failing_accounts: set[str] = set()
        #: Accounts where the operator's role is denied (AccessDeniedException at once): assigning,
        #: removing and listing assignments there, provisioning there or to all accounts of a
        #: permission set held there (module doc). Tests.
        self.refused_accounts: set[str] = set()
        #: Accounts where provisioning ends FAILED (a suspended account, a customer managed policy
        #: deleted there): tests. A provisioning to all accounts that reaches one fails as a whole.
        self.unprovisionable_accounts: set[str] = set()
        self._requests: dict[str, _Request] = {}
        self._queue: list[_Request] = []
        self._lock = threading.RLock()

    # -- the asynchronous requests --------------------------------------------------------------

    def settle(self) -> None:
        """Carry out every request whose time has come, in the order they were made."""
        now = time.monotonic()
        with self._lock:
            while self._queue and self._queue[0].due <= now:
                request = self._queue.pop(0)
                request.failure = request.apply()
                request.status = "FAILED" if request.failure else "SUCCEEDED"

    def _submit(self, kind: str, body: dict[str, Any], apply: Callable[[], str | None]) -> _Request:
        with self._lock:
            now = time.monotonic()
            request = _Request(kind, str(uuid.uuid4()), now + self.async_seconds, time.time(), body, apply)
            self._requests[request.request_id] = request
            self._queue.append(request)
        if self.async_seconds <= 0:
            self.settle()
        return request

    def _status(self, request: _Request) -> dict[str, Any]:
        out = {
            **request.body,
            "RequestId": request.request_id,
            "Status": request.status,
            "CreatedDate": request.created,
        }
        if request.failure:
            out["FailureReason"] = request.failure
        return out

    def request_status(self, kind: str, request_id: str) -> dict[str, Any]:
        self.settle()
        with self._lock:
            request = self._requests.get(request_id)
            if request is None or request.kind != kind:
                raise _error("ResourceNotFoundException", f"Could not find request with id {request_id}")
            return self._status(request)

    def list_creations(self, p: dict[str, Any]) -> dict[str, Any]:
        """``ListAccountAssignmentCreationStatus``: the instance's assignment creations (only their
        status, id and date, as AWS lists them), with ``Filter.Status`` those in that state."""
        self.settle()
        wanted = (p.get("Filter") or {}).get("Status")
        with self._lock:
            rows = [
                {"Status": r.status, "RequestId": r.request_id, "CreatedDate": r.created}
                for r in self._requests.values()
                if r.kind == "create" and (wanted is None or r.status == wanted)
            ]
        return _page(p, "AccountAssignmentsCreationStatus", rows)

    # -- permission sets ------------------------------------------------------------------------

    def permission_set(self, arn: str | None) -> PermissionSet:
        arn = arn or ""
        if not _PS_ARN.match(arn):
            raise _validation("permissionSetArn", arn, _PS_ARN.pattern)
        ps = self.permission_sets.get(arn)
        if ps is None or not arn.startswith(self.arn.replace(":instance/", ":permissionSet/") + "/"):
            raise _error("ResourceNotFoundException", f"Could not find PermissionSet with id {arn.rsplit('/', 1)[-1]}")
        return ps

    def create_permission_set(self, p: dict[str, Any]) -> dict[str, Any]:
        name = str(p.get("Name") or "")
        if not _NAME.match(name):
            raise _validation("name", name, _NAME.pattern)
        duration = _duration(p.get("SessionDuration") or "PT1H")
        with self._lock:
            if any(ps.name == name for ps in self.permission_sets.values()):
                raise _error("ConflictException", f"PermissionSet with name {name} already exists.")
            arn = f"{self.arn.replace(':instance/', ':permissionSet/')}/ps-{secrets.token_hex(8)}"
            tags = {t["Key"]: t["Value"] for t in p.get("Tags") or []}
            ps = PermissionSet(arn, name, _description(p), duration, tags, time.time())
            self.permission_sets[arn] = ps
        return {"PermissionSet": _describe(ps)}

    def update_permission_set(self, p: dict[str, Any]) -> dict[str, Any]:
        ps = self.permission_set(p.get("PermissionSetArn"))
        with self._lock:
            if p.get("SessionDuration"):
                ps.session_duration = _duration(p["SessionDuration"])
            if "Description" in p:
                ps.description = _description(p)
        return {}

    def delete_permission_set(self, p: dict[str, Any]) -> dict[str, Any]:
        ps = self.permission_set(p.get("PermissionSetArn"))
        self.settle()
        with self._lock:
            if any(a[1] == ps.arn for a in self.assignments):
                raise _error(
                    "ConflictException",
                    f"PermissionSet {ps.arn.rsplit('/', 1)[-1]} is assigned to accounts: delete its assignments first",
                )
            del self.permission_sets[ps.arn]
            for key in [k for k in self.provisioned if k[0] == ps.arn]:
                del self.provisioned[key]
        return {}

    def put_inline_policy(self, p: dict[str, Any]) -> dict[str, Any]:
        ps = self.permission_set(p.get("PermissionSetArn"))
        policy = str(p.get("InlinePolicy") or "")
        if not 1 <= len(policy) <= MAX_INLINE_POLICY:
            raise _error(
                "ValidationException",
                f"1 validation error detected: Value at 'inlinePolicy' failed to satisfy constraint: "
                f"Member must have length less than or equal to {MAX_INLINE_POLICY}",
            )
        try:
            parsed = json.loads(policy)
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):
            raise _error("ValidationException", "The policy document is malformed: it is not a JSON object")
        with self._lock:
            ps.inline_policy = policy
        return {}

    def delete_inline_policy(self, p: dict[str, Any]) -> dict[str, Any]:
        ps = self.permission_set(p.get("PermissionSetArn"))
        with self._lock:
            ps.inline_policy = ""
        return {}

    def attach_managed(self, p: dict[str, Any]) -> dict[str, Any]:
        ps = self.permission_set(p.get("PermissionSetArn"))
        arn = str(p.get("ManagedPolicyArn") or "")
        if not _aws_managed_exists(arn):
            raise _error("ResourceNotFoundException", f"Policy does not exist with ARN: {arn}")
        with self._lock:
            if arn in ps.managed:
                raise _error("ConflictException", f"Managed policy {arn} is already attached to {ps.arn}")
            self._room_for_one_more(ps)
            ps.managed.append(arn)
        return {}

    def attach_customer_managed(self, p: dict[str, Any]) -> dict[str, Any]:
        ps = self.permission_set(p.get("PermissionSetArn"))
        reference = p.get("CustomerManagedPolicyReference") or {}
        key = (str(reference.get("Name") or ""), str(reference.get("Path") or "/"))
        with self._lock:
            if key in ps.customer_managed:
                raise _error("ConflictException", f"Customer managed policy {key[1]}{key[0]} is already attached")
            self._room_for_one_more(ps)
            ps.customer_managed.append(key)
        return {}

    @staticmethod
    def _room_for_one_more(ps: PermissionSet) -> None:
        if len(ps.managed) + len(ps.customer_managed) >= MAX_MANAGED_POLICIES:
            raise _error(
                "ServiceQuotaExceededException",
                f"You have exceeded AWS SSO limits. Cannot create ManagedPolicy more than {MAX_MANAGED_POLICIES} "
                f"for id {ps.arn.rsplit('/', 1)[-1]}.",
            )

    def detach_managed(self, p: dict[str, Any]) -> dict[str, Any]:
        ps = self.permission_set(p.get("PermissionSetArn"))
        arn = str(p.get("ManagedPolicyArn") or "")
        with self._lock:
            if arn not in ps.managed:
                raise _error("ResourceNotFoundException", f"Could not find ManagedPolicy with arn {arn}")
            ps.managed.remove(arn)
        return {}

    def detach_customer_managed(self, p: dict[str, Any]) -> dict[str, Any]:
        ps = self.permission_set(p.get("PermissionSetArn"))
        reference = p.get("CustomerManagedPolicyReference") or {}
        key = (str(reference.get("Name") or ""), str(reference.get("Path") or "/"))
        with self._lock:
            if key not in ps.customer_managed:
                raise _error("ResourceNotFoundException", f"Customer managed policy {key[1]}{key[0]} is not attached")
            ps.customer_managed.remove(key)
        return {}

    # -- assignments and provisioning -----------------------------------------------------------

    def _assignment(self, p: dict[str, Any]) -> tuple[tuple[str, str, str, str], dict[str, Any]]:
        ps = self.permission_set(p.get("PermissionSetArn"))
        account = str(p.get("TargetId") or "")
        if not _ACCOUNT.match(account) or p.get("TargetType") != "AWS_ACCOUNT":
            raise _validation("targetId", account, _ACCOUNT.pattern)
        principal_type, principal = str(p.get("PrincipalType") or ""), str(p.get("PrincipalId") or "")
        if principal_type not in ("USER", "GROUP"):
            raise _validation("principalType", principal_type, "USER|GROUP")
        body = {
            "TargetId": account,
            "TargetType": "AWS_ACCOUNT",
            "PermissionSetArn": ps.arn,
            "PrincipalType": principal_type,
            "PrincipalId": principal,
        }
        return (account, ps.arn, principal_type, principal), body

    def _refuse_in(self, accounts: list[str], action: str) -> None:
        """AccessDeniedException when any of `accounts` is refused (`refused_accounts`)."""
        if refused := sorted(set(accounts) & self.refused_accounts):
            raise _error(
                "AccessDeniedException",
                f"User: arn:aws:sts::{self.account_id}:assumed-role/jitaccess-operator/session is not authorized "
                f"to perform: sso:{action} on resource: arn:aws:sso:::account/{refused[0]} (emulator fault)",
            )

    def create_assignment(self, p: dict[str, Any]) -> dict[str, Any]:
        key, body = self._assignment(p)
        self._refuse_in([key[0]], "CreateAccountAssignment")
        snapshot = self.permission_set(key[1]).content()

        def apply() -> str | None:
            if key[0] in self.failing_accounts:
                return f"Received a 400 status error: the account {key[0]} cannot be assigned to (emulator fault)"
            table = self.store.users if key[2] == "USER" else self.store.groups
            if key[3] not in table:
                return (
                    f"Received a 404 status error: the {key[2].lower()} {key[3]} does not exist in the identity store"
                )
            if key[1] not in self.permission_sets:
                return "Received a 404 status error: the permission set no longer exists"
            self.assignments.add(key)
            self._provisioned(key[1], key[0], snapshot)
            return None

        return {"AccountAssignmentCreationStatus": self._status(self._submit("create", body, apply))}

    def delete_assignment(self, p: dict[str, Any]) -> dict[str, Any]:
        key, body = self._assignment(p)
        self._refuse_in([key[0]], "DeleteAccountAssignment")

        def apply() -> str | None:
            self.assignments.discard(key)
            return None

        return {"AccountAssignmentDeletionStatus": self._status(self._submit("delete", body, apply))}

    def provision(self, p: dict[str, Any]) -> dict[str, Any]:
        ps = self.permission_set(p.get("PermissionSetArn"))
        target_type = p.get("TargetType")
        if target_type == "AWS_ACCOUNT":
            account = str(p.get("TargetId") or "")
            if not _ACCOUNT.match(account):
                raise _validation("targetId", account, _ACCOUNT.pattern)
            accounts = [account]
        elif target_type == "ALL_PROVISIONED_ACCOUNTS":
            accounts = sorted({acc for arn, acc in self.provisioned if arn == ps.arn})
        else:
            raise _validation("targetType", str(target_type), "AWS_ACCOUNT|ALL_PROVISIONED_ACCOUNTS")
        self._refuse_in(accounts, "ProvisionPermissionSet")
        snapshot = ps.content()

        def apply() -> str | None:
            if ps.arn not in self.permission_sets:
                return "Received a 404 status error: the permission set no longer exists"
            # What AWS applies in the other accounts then is not documented: here, nothing.
            if bad := sorted(set(accounts) & self.unprovisionable_accounts):
                return f"Received a 400 status error: the account {bad[0]} cannot be provisioned (emulator fault)"
            for account in accounts:
                self._provisioned(ps.arn, account, snapshot)
            return None

        body: dict[str, Any] = {"PermissionSetArn": ps.arn}
        if target_type == "AWS_ACCOUNT":
            body["AccountId"] = accounts[0]
        return {"PermissionSetProvisioningStatus": self._status(self._submit("provision", body, apply))}

    def _provisioned(self, arn: str, account: str, content: dict[str, Any]) -> None:
        self.provisioned[(arn, account)] = content
        self.provisions[arn] += 1

    # -- reads ------------------------------------------------------------------------------------

    def list_assignments(self, p: dict[str, Any]) -> dict[str, Any]:
        ps = self.permission_set(p.get("PermissionSetArn"))
        account = str(p.get("AccountId") or "")
        self._refuse_in([account], "ListAccountAssignments")
        self.settle()
        with self._lock:
            rows = sorted(a for a in self.assignments if a[0] == account and a[1] == ps.arn)
        items = [{"AccountId": a, "PermissionSetArn": s, "PrincipalType": t, "PrincipalId": i} for a, s, t, i in rows]
        return _page(p, "AccountAssignments", items)

    def list_accounts_for_permission_set(self, p: dict[str, Any]) -> dict[str, Any]:
        ps = self.permission_set(p.get("PermissionSetArn"))
        self.settle()
        with self._lock:
            accounts = sorted({acc for arn, acc in self.provisioned if arn == ps.arn})
        return _page(p, "AccountIds", accounts)

    def list_permission_sets(self, p: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            arns = sorted(self.permission_sets)
        return _page(p, "PermissionSets", arns)

    def tags(self, p: dict[str, Any]) -> dict[str, Any]:
        ps = self.permission_set(p.get("ResourceArn"))
        return _page(p, "Tags", [{"Key": k, "Value": v} for k, v in sorted(ps.tags.items())])

    def tag(self, p: dict[str, Any]) -> dict[str, Any]:
        ps = self.permission_set(p.get("ResourceArn"))
        with self._lock:
            ps.tags.update({t["Key"]: t["Value"] for t in p.get("Tags") or []})
        return {}

    def untag(self, p: dict[str, Any]) -> dict[str, Any]:
        ps = self.permission_set(p.get("ResourceArn"))
        with self._lock:
            for key in p.get("TagKeys") or []:
                ps.tags.pop(key, None)
        return {}

    def managed_policies(self, p: dict[str, Any]) -> dict[str, Any]:
        ps = self.permission_set(p.get("PermissionSetArn"))
        items = [{"Arn": arn, "Name": arn.rsplit("/", 1)[-1]} for arn in sorted(ps.managed)]
        return _page(p, "AttachedManagedPolicies", items)

    def customer_managed_policies(self, p: dict[str, Any]) -> dict[str, Any]:
        ps = self.permission_set(p.get("PermissionSetArn"))
        items = [{"Name": name, "Path": path} for name, path in sorted(ps.customer_managed)]
        return _page(p, "CustomerManagedPolicyReferences", items)

    def describe(self) -> dict[str, Any]:
        return {
            "InstanceArn": self.arn,
            "IdentityStoreId": self.store_id,
            "OwnerAccountId": self.account_id,
            "Status": "ACTIVE",
            "CreatedDate": 0,
        }


def _describe(ps: PermissionSet) -> dict[str, Any]:
    out: dict[str, Any] = {
        "Name": ps.name,
        "PermissionSetArn": ps.arn,
        "SessionDuration": ps.session_duration,
        "CreatedDate": ps.created,
    }
    if ps.description:
        out["Description"] = ps.description
    return out


def _duration(value: str) -> str:
    match = _DURATION.match(value)
    seconds = int(match.group(1) or 0) * 3600 + int(match.group(2) or 0) * 60 if match else 0
    if not 3600 <= seconds <= 12 * 3600:
        raise _error("ValidationException", f"Session duration {value} is invalid: it must be between PT1H and PT12H")
    return value


def _description(p: dict[str, Any]) -> str:
    description = str(p.get("Description") or "")
    if len(description) > 700:
        raise _error(
            "ValidationException",
            "1 validation error detected: Value at 'description' failed to satisfy constraint: "
            "Member must have length less than or equal to 700",
        )
    return description


def _page(p: dict[str, Any], key: str, items: list[Any]) -> dict[str, Any]:
    start = int(p.get("NextToken") or 0)
    size = int(p.get("MaxResults") or 100)
    out: dict[str, Any] = {key: items[start : start + size]}
    if start + size < len(items):
        out["NextToken"] = str(start + size)
    return out


def _aws_managed_exists(arn: str) -> bool:
    global _aws_managed
    if _aws_managed is None:
        _aws_managed = json.loads(aws_managed_policies_data)
    name = arn.rsplit("/", 1)[-1]
    known = _aws_managed.get(name)
    return known is not None and arn == f"arn:aws:iam::aws:policy{known.get('path', '/')}{name}"


# moto dispatches an action to the response method of the same snake_case name; each of these is
# answered by the pinned instance of the request, else by moto's method of that name (if any).
_ROUTES: Final[dict[str, Callable[[Instance, dict[str, Any]], dict[str, Any]]]] = {
    "create_permission_set": Instance.create_permission_set,
    "update_permission_set": Instance.update_permission_set,
    "delete_permission_set": Instance.delete_permission_set,
    "describe_permission_set": lambda i, p: {"PermissionSet": _describe(i.permission_set(p.get("PermissionSetArn")))},
    "list_permission_sets": Instance.list_permission_sets,
    "put_inline_policy_to_permission_set": Instance.put_inline_policy,
    "get_inline_policy_for_permission_set": lambda i, p: {
        "InlinePolicy": i.permission_set(p.get("PermissionSetArn")).inline_policy
    },
    "delete_inline_policy_from_permission_set": Instance.delete_inline_policy,
    "attach_managed_policy_to_permission_set": Instance.attach_managed,
    "detach_managed_policy_from_permission_set": Instance.detach_managed,
    "list_managed_policies_in_permission_set": Instance.managed_policies,
    "attach_customer_managed_policy_reference_to_permission_set": Instance.attach_customer_managed,
    "detach_customer_managed_policy_reference_from_permission_set": Instance.detach_customer_managed,
    "list_customer_managed_policy_references_in_permission_set": Instance.customer_managed_policies,
    "create_account_assignment": Instance.create_assignment,
    "delete_account_assignment": Instance.delete_assignment,
    "describe_account_assignment_creation_status": lambda i, p: {
        "AccountAssignmentCreationStatus": i.request_status("create", str(p.get("AccountAssignmentCreationRequestId")))
    },
    "describe_account_assignment_deletion_status": lambda i, p: {
        "AccountAssignmentDeletionStatus": i.request_status("delete", str(p.get("AccountAssignmentDeletionRequestId")))
    },
    "list_account_assignments": Instance.list_assignments,
    "list_account_assignment_creation_status": Instance.list_creations,
    "provision_permission_set": Instance.provision,
    "describe_permission_set_provisioning_status": lambda i, p: {
        "PermissionSetProvisioningStatus": i.request_status("provision", str(p.get("ProvisionPermissionSetRequestId")))
    },
    "list_accounts_for_provisioned_permission_set": Instance.list_accounts_for_permission_set,
    "tag_resource": Instance.tag,
    "untag_resource": Instance.untag,
    "list_tags_for_resource": Instance.tags,
}


def _route(action: str) -> Callable[[SSOAdminResponse], str]:
    fallback = getattr(SSOAdminResponse, action, None)
    handler = _ROUTES[action]

    def serve(self: SSOAdminResponse) -> str:
        own = self.headers.get(INSTANCE_HEADER)
        if not own:
            if fallback is None:
                raise _error("InvalidAction", f"{action} is not served outside the emulator")
            return str(fallback(self))
        with _LOCK:
            instance = _PINNED.get(own)
        if instance is None:
            raise _error("ResourceNotFoundException", f"Identity Center instance {own} is gone")
        params = json.loads(self.body or "{}")
        arn = str(params.get("InstanceArn") or "")
        if not _INSTANCE_ARN.match(arn):
            raise _validation("instanceArn", arn, _INSTANCE_ARN.pattern)
        if arn != instance.arn:
            raise _error("ResourceNotFoundException", f"Could not find Instance with arn {arn}")
        return json.dumps(handler(instance, params), default=_json_default)

    return serve


def _list_instances(self: SSOAdminResponse) -> str:
    own = self.headers.get(INSTANCE_HEADER)
    with _LOCK:
        instance = _PINNED.get(own or "")
    if instance is None:
        return str(_ORIGINAL_LIST_INSTANCES(self))
    return json.dumps({"Instances": [instance.describe()]})


_ORIGINAL_LIST_INSTANCES: Final = SSOAdminResponse.list_instances


def _json_default(value: object) -> object:
    if isinstance(value, datetime):
        return value.astimezone(UTC).timestamp()
    raise TypeError(f"cannot serialize {type(value).__name__}")


def _make_strict() -> None:
    global _patched
    with _LOCK:
        if _patched:
            return
        for action in _ROUTES:
            setattr(SSOAdminResponse, action, _route(action))
        SSOAdminResponse.list_instances = _list_instances  # type: ignore[method-assign]
        _patched = True


def pin_instance(store_id: str, store: IdentityStoreData) -> Instance:
    """A new Identity Center instance over this identity store, answering requests tagged with its ARN."""
    _make_strict()
    instance = Instance(store_id, store)
    with _LOCK:
        _PINNED[instance.arn] = instance
    return instance


def unpin_instance(instance: Instance) -> None:
    with _LOCK:
        _PINNED.pop(instance.arn, None)

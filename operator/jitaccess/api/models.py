"""Pydantic models of TeamOwnership, Entitlement, AccessRequest, AccessGrant, AccessExtension and
PermissionCatalog.

These models are the single source of the API contract (docs/api.md): the CRD
schemas in `crds/` are generated from them (see `crdgen`), and the handlers parse every object
they receive through them, so a field's name, type and validation live in one place. The
API's names (group, annotations, condition types and reasons) are in `names`.

Field names are camelCase on the wire (Kubernetes convention) and snake_case in Python.
CEL rules that the API server enforces are attached to fields as `x-kubernetes-validations`.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from jitaccess.api import limits
from jitaccess.api.names import API_VERSION

#: An Identity Store UserId is at most 47 characters (an optional store prefix and a UUID).
USER_ID_MAX_LENGTH = 47

# A Go-style duration restricted to whole h/m/s units, the form `kubectl` users type.
DURATION_PATTERN = r"^([0-9]+(h|m|s))+$"
DURATION_MESSAGE = "must be a duration such as 30m, 1h or 1h30m (whole numbers with units h, m, s)"
_DURATION_RULES: list[Any] = [
    {"rule": f"self.matches('{DURATION_PATTERN}')", "message": DURATION_MESSAGE},
]


class Model(BaseModel):
    """Base for all wire models: camelCase aliases, unknown fields kept (forward compatible)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    def wire(self) -> dict[str, Any]:
        """The object as the API server stores it: aliases, no unset optionals."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


def _cel_quoted(text: str) -> str:
    """`text` as a single-quoted CEL string literal (CEL reads backslash escapes, RE2 needs them kept)."""
    return "'" + text.replace("\\", "\\\\") + "'"


# Reasons are one line of plain text (`jitaccess.domain.text` says why); the webhook refuses the
# rest with the character and its position, this rule refuses it even without the webhook.
_REASON_RULES: list[Any] = [
    {"rule": "self.matches('\\\\S')", "message": "reason must say why access is needed"},
    {
        "rule": f"!self.matches({_cel_quoted(limits.forbidden_class())})",
        "message": "reason may not hold control characters (tab and newline included), DEL, U+FFFD, "
        "bidirectional-text controls, line separators or invisible characters: write it as one line of plain text",
    },
]


def _bounded(max_length: int, rules: list[Any] | None = None) -> dict[str, Any]:
    """A string's `maxLength` (and CEL rules) for the schema only: the API server refuses a longer
    write, while the operator still reads an object stored before the bound existed."""
    return {"maxLength": max_length} | ({"x-kubernetes-validations": rules} if rules else {})


def _name_items(max_items: int, max_length: int) -> dict[str, Any]:
    """A list of names' `maxItems` and each entry's `maxLength`, for the schema only (as `_bounded`):
    an object stored before the bounds is still read, and kept while its list stays as it is."""
    return {"maxItems": max_items, "items": {"type": "string", "maxLength": max_length}}


def _names(description: str, max_items: int, max_length: int = limits.KUBE_NAME_MAX_LENGTH) -> Any:
    """An optional list of Kubernetes user or group names (or Identity Center group names), bounded."""
    bounds = f" (at most {max_items}, each at most {max_length} characters)"
    return Field(
        default_factory=list, description=description + bounds, json_schema_extra=_name_items(max_items, max_length)
    )


def _team(description: str) -> Any:
    """An optional field naming a TeamOwnership (an object name)."""
    return Field(default=None, max_length=limits.NAME_MAX_LENGTH, description=description)


def _duration(description: str, default: str | None = None) -> Any:
    return Field(
        default=default,
        description=description,
        json_schema_extra=_bounded(limits.DURATION_MAX_LENGTH, _DURATION_RULES),
    )


_CONDITIONS = "The object's state for people and tools (kubectl wait --for=condition=...), one per type"


class Condition(Model):
    """A Kubernetes-style condition (type, status, reason, message, lastTransitionTime)."""

    type: str = Field(description="What the condition is about (Ready, Approved, Active, ...: docs/api.md)")
    status: Literal["True", "False", "Unknown"] = Field(description="`True`, `False` or `Unknown`")
    reason: str = Field(description="CamelCase word: for decisions it names who, the message says why")
    message: str = Field(default="", description="What happened and what to do, in words")
    last_transition_time: datetime = Field(description="When the status last changed")
    observed_generation: int | None = Field(
        default=None, description="The spec generation (metadata.generation) the condition was written for"
    )


class ObjectMeta(Model):
    """The parts of metadata the operator reads."""

    name: str = ""
    uid: str = ""
    generation: int = 0
    resource_version: str = ""
    annotations: dict[str, str] = Field(default_factory=dict)
    labels: dict[str, str] = Field(default_factory=dict)
    creation_timestamp: datetime | None = None
    deletion_timestamp: datetime | None = None
    finalizers: list[str] = Field(default_factory=list)


class Notified(Model):
    """What the operator has told people about an object, so that a restart never tells them again."""

    sent: list[str] = Field(
        default_factory=list,
        description="Delivered notices: `slack:<recipient>:<step>` (`slack:team-message:pending`, "
        "`slack:@alice@example.com:granted`) and `webhook:<action>` (`webhook:granted`)",
    )
    slack_channel: str | None = Field(default=None, description="Channel of the approvers' message, to update it")
    slack_ts: str | None = Field(default=None, description="Timestamp (Slack's message id) of the approvers' message")


_NOTIFIED = "What was notified (docs/notifications.md); written by the operator only"


# --- TeamOwnership -----------------------------------------------------------------------------


SLACK_CHANNEL_PATTERN = r"^[CG][A-Z0-9]{2,20}$"
SLACK_USER_PATTERN = r"^[UW][A-Z0-9]{2,20}$"


class TeamNotifications(Model):
    """Where this team's approvers are told of requests for its entitlements (docs/notifications.md)."""

    slack_channel: str | None = Field(
        default=None,
        pattern=SLACK_CHANNEL_PATTERN,
        description="Slack channel id (C0123ABCD, not the #name: Slack renames keep the id) for this team's "
        "approval messages; unset = the operator's default channel",
    )
    slack_users: dict[str, str] = Field(
        default_factory=dict,
        description="Kubernetes username -> Slack user id (U0123ABCD), for people whose Slack email is not "
        "their username: mentions them, and maps their clicks to that username",
        json_schema_extra={
            "maxProperties": limits.SLACK_USERS_MAX,
            "additionalProperties": {"type": "string", "pattern": SLACK_USER_PATTERN},
            "x-kubernetes-validations": [
                {
                    "rule": f"self.all(k, size(k) <= {limits.KUBE_NAME_MAX_LENGTH})",
                    "message": f"a username (a key) is at most {limits.KUBE_NAME_MAX_LENGTH} characters",
                }
            ],
        },
    )


class TeamOwnershipSpec(Model):
    """A team: who belongs to it, who approves for it, and who steps in when they do not."""

    members: list[str] = _names("Usernames as the cluster authenticates them", limits.TEAM_MEMBERS_MAX)
    member_groups: list[str] = _names("Kubernetes groups whose members belong", limits.POLICY_GROUPS_MAX)
    approvers: list[str] = _names("Tech leads: may approve this team's entitlements", limits.TEAM_APPROVERS_MAX)
    approver_groups: list[str] = _names("Kubernetes groups of approvers", limits.POLICY_GROUPS_MAX)
    backup_approvers: list[str] = _names("May approve only once a request has escalated", limits.TEAM_APPROVERS_MAX)
    backup_approver_groups: list[str] = _names("Groups of backup approvers", limits.POLICY_GROUPS_MAX)
    escalate_after: str | None = _duration("Pending this long -> escalate to backup approvers")
    notifications: TeamNotifications | None = Field(default=None, description="Where approvers are told")


class TeamOwnershipStatus(Model):
    """What the operator found of the team: whether its spec is valid (Ready)."""

    conditions: list[Condition] = Field(default_factory=list, description=_CONDITIONS)


class TeamOwnership(Model):
    api_version: str = API_VERSION
    kind: Literal["TeamOwnership"] = "TeamOwnership"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: TeamOwnershipSpec
    status: TeamOwnershipStatus = Field(default_factory=TeamOwnershipStatus)


# --- Entitlement -------------------------------------------------------------------------------


#: A permission set ARN as Identity Center writes it (`arn:aws:sso:::permissionSet/ssoins-.../ps-...`).
PERMISSION_SET_ARN_PATTERN = (
    r"^arn:(aws|aws-us-gov|aws-cn):sso:::permissionSet/(sso)?ins-[a-zA-Z0-9.-]{16}/ps-[a-zA-Z0-9./-]{16}$"
)
ASSIGNMENT_ACCOUNTS_MAX = 20


class PermissionSetRef(Model):
    """A permission set: a tier of a PermissionCatalog (the one jitaccess provisions), or an ARN."""

    catalog: str | None = Field(
        default=None, description="A PermissionCatalog name", json_schema_extra=_bounded(limits.NAME_MAX_LENGTH)
    )
    tier: Literal["baseline", "production"] | None = Field(
        default=None, description="The catalog's tier whose permission set is meant (with catalog)"
    )
    arn: str | None = Field(
        default=None,
        description="A permission set ARN (instead of catalog and tier)",
        json_schema_extra=_bounded(
            200,
            [
                {
                    "rule": f"self.matches({_cel_quoted(PERMISSION_SET_ARN_PATTERN)})",
                    "message": "must be a permission set ARN, arn:aws:sso:::permissionSet/ssoins-.../ps-...",
                }
            ],
        ),
    )


_ASSIGNMENT_ACCOUNT_MESSAGE = "an AWS account id is 12 digits, e.g. '111122223333' (quote it in YAML)"


class AccountAssignmentTarget(Model):
    """Account-assignment mode: the user gets the permission set in these accounts directly."""

    permission_set: PermissionSetRef = Field(
        description="{catalog, tier} of a PermissionCatalog, or {arn}",
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.arn) != (has(self.catalog) && has(self.tier))"
                    " && (has(self.catalog) == has(self.tier))",
                    "message": "permissionSet needs either catalog and tier (a PermissionCatalog tier) or arn, "
                    "not both",
                }
            ]
        },
    )
    accounts: list[str] = Field(
        min_length=1,
        max_length=ASSIGNMENT_ACCOUNTS_MAX,
        description="AWS account ids (12 digits) the permission set is assigned in for the grant's length",
        json_schema_extra={
            "items": {
                "type": "string",
                "maxLength": 12,
                "x-kubernetes-validations": [
                    {"rule": "self.matches('^[0-9]{12}$')", "message": _ASSIGNMENT_ACCOUNT_MESSAGE}
                ],
            },
            "x-kubernetes-list-type": "set",
        },
    )


class IdentityCenterTarget(Model):
    """What a grant gives: membership of an Identity Center group, or (accountAssignment) a
    permission set assigned to the user in named accounts."""

    group_name: str | None = Field(
        default=None,
        description="Group DisplayName in the identity store",
        json_schema_extra=_bounded(limits.GROUP_NAME_MAX_LENGTH),
    )
    group_id: str | None = Field(
        default=None,
        description="Group id; takes precedence over groupName",
        json_schema_extra=_bounded(limits.GROUP_ID_MAX_LENGTH),
    )
    account_assignment: AccountAssignmentTarget | None = Field(
        default=None,
        description="Account-assignment mode, instead of a group: the permission set is assigned to the user "
        "in each account for the length of a grant",
    )


class Eligibility(Model):
    """Who may ask at all: Identity Center groups every requester must be in, asked at every request."""

    identity_center_groups: list[str] = _names(
        "The requester must be a member of every one of these Identity Center groups (DisplayNames)",
        limits.POLICY_GROUPS_MAX,
        limits.GROUP_NAME_MAX_LENGTH,
    )


class Approval(Model):
    """How a request is approved: at once for the owner team or on call, else by the owner team's approvers."""

    auto_approve_owner_team: bool = Field(
        default=True, description="Members of the owner team get it without a human approval"
    )
    approvals_required: int = Field(
        default=1,
        ge=1,
        le=10,
        description="How many distinct approvers of the owner team must approve (never the requester); "
        "one denial ends the request",
    )
    auto_approve_groups: list[str] = _names(
        "On call: members of these Kubernetes groups (as authenticated at the request) get it at once",
        limits.POLICY_GROUPS_MAX,
    )
    auto_approve_identity_center_groups: list[str] = _names(
        "On call: members of these Identity Center groups, asked at the moment of the request, get it at once",
        limits.POLICY_GROUPS_MAX,
        limits.GROUP_NAME_MAX_LENGTH,
    )


class BreakGlass(Model):
    """Who may approve their own request in an emergency, and the limits that come with it."""

    groups: list[str] = Field(
        min_length=1,
        description=f"Kubernetes groups whose members may use break-glass on this entitlement (at most "
        f"{limits.POLICY_GROUPS_MAX}, each at most {limits.KUBE_NAME_MAX_LENGTH} characters)",
        json_schema_extra=_name_items(limits.POLICY_GROUPS_MAX, limits.KUBE_NAME_MAX_LENGTH),
    )
    min_reason_length: int = Field(
        default=40,
        ge=1,
        le=limits.REASON_MAX_LENGTH,
        description="A break-glass reason has at least this many characters",
    )
    max_duration: str = _duration(
        "No break-glass grant lasts longer (and a request naming none gets this at most)", default="1h"
    )
    review_within: str = _duration("An approver of the owner team reviews it within this long", default="24h")
    per_user_per_day: int = Field(
        default=2, ge=1, le=100, description="Break-glass requests one user may make in any 24 hours"
    )


class EntitlementSpec(Model):
    """A requestable role: what it grants, who owns it, how long, who may ask and how it is approved."""

    owner: str = Field(
        min_length=1, description="A TeamOwnership name", json_schema_extra=_bounded(limits.NAME_MAX_LENGTH)
    )
    identity_center: IdentityCenterTarget = Field(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "(has(self.groupName) || has(self.groupId)) != has(self.accountAssignment)",
                    "message": "identityCenter needs exactly one of: groupName (the group's DisplayName) or groupId, "
                    "or accountAssignment (a permission set and accounts)",
                }
            ]
        }
    )
    default_duration: str = _duration("Granted when a request names no duration", default="1h")
    max_duration: str = _duration("No grant lasts longer", default="4h")
    eligibility: Eligibility = Field(default_factory=Eligibility, description="Who may ask at all")
    approval: Approval = Field(default_factory=Approval, description="How requests are approved")
    break_glass: BreakGlass | None = Field(
        default=None, description="Allows break-glass: named groups approve their own request (docs/api.md)"
    )
    reason_pattern: str | None = Field(
        default=None,
        description="Regex the request's reason must match",
        json_schema_extra=_bounded(limits.PATTERN_MAX_LENGTH),
    )
    reason_example: str | None = Field(
        default=None,
        description="A reason that matches reasonPattern (e.g. `INC-1234 roll back the deploy`): shown with the "
        "pattern when a reason is refused, and by `kubectl jit request`; admission refuses one that does not match",
        json_schema_extra=_bounded(limits.REASON_MAX_LENGTH, _REASON_RULES),
    )
    max_extensions: int = Field(
        default=2,
        ge=0,
        le=100,
        description="How many times one grant may be extended (AccessExtension); 0 = never. Extended or not, "
        "no grant lasts longer than maxDuration from its activation",
    )


class DriftRemoval(Model):
    """A member the drift scan takes out of the group, listed before the removal (no `time` yet) until
    archived and told (docs/notifications.md)."""

    membership_id: str = Field(description="The Identity Store MembershipId removed")
    user_id: str = Field(description="The member's Identity Store UserId")
    user: str | None = Field(default=None, description="The user's name when removed")
    group_id: str | None = Field(default=None, description="The group's Identity Store GroupId")
    group_name: str | None = Field(default=None, description="The group's name when the removal was listed")
    time: datetime | None = Field(
        default=None,
        description="When the member was removed; absent while the removal is under way (listed before it is "
        "made, so that an operator stopped in between still leaves a record)",
    )
    first_seen: datetime | None = Field(
        default=None,
        description="When the drift scan listed the member (first seen by jitaccess, not when the membership began)",
    )
    message: str | None = Field(default=None, description="Why it was removed, in words")
    owner_team: str | None = Field(
        default=None,
        description="The Entitlement's owner team (spec.owner) when the removal was listed: the team its record "
        "names, whatever owns the Entitlement by the time it is archived",
    )


class EligibleUser(Model):
    """A user in every eligibility group, as the last eligibility re-check listed them."""

    user_id: str = Field(description="Identity Store UserId")
    username: str = Field(description="Identity Center UserName")


class EntitlementStatus(Model):
    """What the operator found of the Entitlement: its group resolved (Ready), who is eligible, overlaps."""

    group_id: str | None = Field(default=None, description="The Identity Store GroupId the group resolved to")
    conditions: list[Condition] = Field(default_factory=list, description=_CONDITIONS)
    drift_removals: list[DriftRemoval] | None = Field(
        default=None,
        description="Drift removals whose audit records are not archived yet, or whose notices are not yet "
        "delivered (docs/audit.md, docs/notifications.md)",
    )
    eligible_users: list[EligibleUser] | None = Field(
        default=None,
        description="Enabled users in every eligibility group, by user name, at most "
        f"{limits.ELIGIBLE_USERS_LISTED} (eligibleUserCount counts them all); absent when no group is named",
    )
    eligible_user_count: int | None = Field(default=None, description="How many users are eligible")
    notifications: Notified | None = Field(default=None, description=_NOTIFIED)
    released_at: datetime | None = Field(
        default=None, description="When the deleted Entitlement was let go (Ready reason Released): its group unwatched"
    )
    released_owner_team: str | None = Field(
        default=None, description="Its owner team (spec.owner) when it was let go: the team its `released` record names"
    )
    archived_records: list[str] | None = Field(
        default=None,
        description="Its audit records already in the audit archive: `released`, and the drift removals still "
        "listed for their notices; written by the operator only",
    )


class Entitlement(Model):
    api_version: str = API_VERSION
    kind: Literal["Entitlement"] = "Entitlement"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: EntitlementSpec
    status: EntitlementStatus = Field(default_factory=EntitlementStatus)


# --- AccessRequest -----------------------------------------------------------------------------


#: An RFC 3339 time whose `T` or `Z` is lower-case (what is no time at all gets pydantic's message).
_LOWER_CASE_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}(t\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})|T\d{2}:\d{2}:\d{2}(\.\d+)?z)"
)


def _as_kubernetes_reads_it(value: Any) -> Any:
    """A time a user writes, refused unless its `T` and `Z` are upper-case: RFC 3339 and Python take
    `2026-12-05t06:00:00z`, and so does the API server's check of the format, but not the CRD's
    rules (CEL), which then fail on every later write of the object: no status, no approval, no
    finalizer removed, a record nobody can move on."""
    if isinstance(value, str) and _LOWER_CASE_RFC3339.fullmatch(value):
        raise ValueError(f"{value!r}: write it with an upper-case T and Z, such as 2026-12-01T06:00:00Z")
    return value


#: A time written by users, in a spec (`_as_kubernetes_reads_it`).
UserTime = Annotated[datetime, BeforeValidator(_as_kubernetes_reads_it)]


class AccessRequestSpec(Model):
    """What is asked for, for how long and why; the requester is stamped at admission."""

    entitlement: str = Field(
        min_length=1, description="The Entitlement asked for", json_schema_extra=_bounded(limits.NAME_MAX_LENGTH)
    )
    duration: str | None = _duration("How long; defaults to the entitlement's defaultDuration")
    reason: str = Field(
        description="Why access is needed (a ticket, an incident): one line of plain text",
        json_schema_extra=_bounded(limits.REASON_MAX_LENGTH, _REASON_RULES),
    )
    break_glass: bool | None = Field(
        default=None,
        description="Break-glass: the requester approves their own request, as the Entitlement's spec.breakGlass "
        "allows (its groups, reason length, duration cap and rate); reviewed afterwards by the owner team",
    )
    requester: str | None = Field(
        default=None, description="Set from the authenticated caller at admission; never from the client"
    )
    requester_groups: list[str] = Field(
        default_factory=list, description="The caller's groups, stamped at admission with the requester"
    )
    requester_user_id: str | None = Field(
        default=None,
        max_length=USER_ID_MAX_LENGTH,
        description="The requester's Identity Center UserId, resolved from spec.requester and stamped at "
        "admission; never from the client. Access goes to this user only",
    )
    start_time: UserTime | None = Field(
        default=None,
        description="When access is to begin (RFC 3339), at most the operator's horizon ahead (default 7 days); "
        "unset: as soon as approved. Approval may come before; eligibility and the approval are checked again "
        "at this time, and the duration counts from it",
    )


class GivenApproval(Model):
    """One approver's approval, as the operator counted it."""

    by: str = Field(description="The approver, as the cluster authenticated them")
    time: datetime = Field(description="When the operator counted it")


class AccessRequestStatus(Model):
    """Where the request stands: its decision, approvals, escalation and the grant made for it."""

    requester: str | None = Field(default=None, description="Who asked (spec.requester, as stamped)")
    duration: str | None = Field(default=None, description="The duration that applies, defaults resolved")
    owner_team: str | None = _team(
        "The TeamOwnership that owned the Entitlement when the operator took the request up (set once: "
        "the team first asked, and a break-glass request's reviewers; docs/audit.md)"
    )
    escalation_team: str | None = _team(
        "The TeamOwnership whose backup approvers the request escalated to: the Entitlement's owner then "
        "(for the escalated audit record: docs/audit.md); only that team's backup approvers may decide on it"
    )
    decision_team: str | None = _team(
        "The TeamOwnership the request's decision was taken against: the Entitlement's owner when it was "
        "approved or denied, or ended without a decision (set once, with it; for the audit records of the decision "
        "and what follows it: docs/audit.md)"
    )
    revocation_team: str | None = _team(
        "The TeamOwnership a cancel before the request's start was judged against: the Entitlement's owner "
        "when it ended Revoked (for its revoked audit record: docs/audit.md)"
    )
    approvals: list[GivenApproval] | None = Field(
        default=None, description="Every approval counted, in order (an entitlement's approvalsRequired)"
    )
    approval_summary: str | None = Field(
        default=None, description="Approvals so far (`1/2`), or `auto`, `auto (on call)`, `break-glass` (a column)"
    )
    reviewed_by: str | None = Field(default=None, description="Who reviewed a break-glass request")
    review_deadline: datetime | None = Field(default=None, description="When a break-glass request's review is due")
    approved_by: str | None = Field(
        default=None,
        description="Who approved (empty for an auto-approval); with approvalsRequired above 1, the approval that "
        "completed the count",
    )
    approved_for: str | None = Field(
        default=None,
        description="What the approval was for: the group (or permission set and accounts) the Entitlement gave "
        "when the request was approved; access begins only while the Entitlement still gives exactly that",
    )
    denied_by: str | None = Field(default=None, description="Who denied")
    decision_reason: str | None = Field(
        default=None, description="The decider's reason (jitaccess.dev/decision-reason)"
    )
    escalation_time: datetime | None = Field(
        default=None, description="When the request escalated to the backup approvers"
    )
    grant: str | None = Field(default=None, description="The AccessGrant made for it")
    expiration_time: datetime | None = Field(default=None, description="When its grant's access ends")
    conditions: list[Condition] = Field(default_factory=list, description=_CONDITIONS)
    archived_records: list[str] | None = Field(
        default=None,
        description="The audit records (by action, docs/audit.md) already in the audit archive; written by the "
        "operator only, and retention waits for all of them",
    )
    notifications: Notified | None = Field(default=None, description=_NOTIFIED)


class AccessRequest(Model):
    api_version: str = API_VERSION
    kind: Literal["AccessRequest"] = "AccessRequest"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: AccessRequestSpec
    status: AccessRequestStatus = Field(default_factory=AccessRequestStatus)


# --- AccessGrant -------------------------------------------------------------------------------


class AccessGrantSpec(Model):
    """Who is given what, for how long, and on which request; written by the operator only."""

    user: str = Field(min_length=1, description="The grantee's username")
    entitlement: str = Field(min_length=1, description="The Entitlement granted")
    group_name: str = Field(
        min_length=1,
        description="Identity Center group (DisplayName or id); in account-assignment mode the permission set "
        "reference (`catalog:<name>/<tier>` or its ARN)",
    )
    account_assignment: AccountAssignmentTarget | None = Field(
        default=None, description="Account-assignment mode: the Entitlement's, copied when the grant was created"
    )
    request: str = Field(min_length=1, description="The AccessRequest this grant fulfils")
    duration: str = _duration("How long the membership lasts from activation")
    user_id: str | None = Field(
        default=None,
        max_length=USER_ID_MAX_LENGTH,
        description="The grantee's Identity Center UserId, as admission stamped it on the request",
    )
    owner_team: str | None = _team(
        "The TeamOwnership that owned the Entitlement when the grant was created: its approvers "
        "may revoke the grant, even once the Entitlement is gone"
    )
    reason: str | None = Field(
        default=None,
        max_length=limits.REASON_MAX_LENGTH,
        description="The request's reason, kept with the grant for the audit trail",
    )


class StampedApproval(GivenApproval):
    """One approval that made an extension's count, with its stamped groups and reason (audit)."""

    groups: list[str] | None = Field(default=None, description="The approver's groups, as the webhook stamped them")
    reason: str | None = Field(default=None, description="The approver's decision-reason, if any")


class GrantExtension(Model):
    """An AccessExtension applied to a grant: how much later its access now ends, and on whose word."""

    name: str = Field(description="The AccessExtension")
    uid: str | None = Field(
        default=None,
        description="The AccessExtension's metadata.uid: which extension of that name it was (a finished one may be "
        "deleted while its grant runs, and another created under its name)",
    )
    by: str = Field(description="The time added (its spec.duration)")
    approved_by: str = Field(description="The approver, or `auto` for an owner-team member's own extension")
    time: datetime = Field(description="When the operator applied it")
    reason: str | None = Field(default=None, description="The extension's spec.reason")
    previous_expiration_time: datetime | None = Field(default=None, description="When access was to end before")
    expiration_time: datetime = Field(description="When access ends after it")
    approvals: list[StampedApproval] | None = Field(
        default=None,
        description="With approvalsRequired above 1: every approval that made the count, in order (who, when the "
        "operator counted it, their groups and reason)",
    )


class GrantTakeBack(Model):
    """What failing a grant that never became Active took back of what its attempts may have added."""

    time: datetime = Field(description="When the take-back was done: nothing an attempt added is held after it")
    removed: list[str] = Field(
        default_factory=list,
        description="What it removed: the group, or the accounts of the permission set; empty when it found nothing "
        "left to remove (nothing landed, another live grant holds it, or it was gone already)",
    )
    since: datetime | None = Field(
        default=None,
        description="The earliest the user may have held what it removed: the first attempt the operator knew of, "
        "else the grant's creation",
    )


class AccessGrantStatus(Model):
    """The access as Identity Center holds it: ids, when it began and ends, how it ended."""

    user_id: str | None = Field(default=None, description="The grantee's Identity Store UserId")
    group_id: str | None = Field(default=None, description="The group's Identity Store GroupId")
    membership_id: str | None = Field(
        default=None, description="The Identity Store MembershipId: access is removed by it"
    )
    identity_store_id: str | None = Field(
        default=None,
        description="The identity store the access was given in (the operator's identityStoreId then): the "
        "operator ends it only while it points at that store",
    )
    permission_set_arn: str | None = Field(default=None, description="Account-assignment mode: the permission set")
    account_assignments: list[AccountAssignmentState] | None = Field(
        default=None, description="Account-assignment mode: the user's assignment in each account"
    )
    activation_time: datetime | None = Field(default=None, description="When access began")
    expiration_time: datetime | None = Field(
        default=None, description="When access ends: the deadline the operator keeps, across restarts"
    )
    revocation_time: datetime | None = Field(default=None, description="When it was revoked early")
    revoked_by: str | None = Field(default=None, description="Who revoked it (empty for a deletion)")
    take_back: GrantTakeBack | None = Field(
        default=None,
        description="A grant failed before it became Active: when what its attempts may have added was "
        "taken back, and what was removed",
    )
    extensions: list[GrantExtension] | None = Field(
        default=None, description="The AccessExtensions applied, in order: each moved expirationTime later"
    )
    extension_count: int | None = Field(default=None, description="How many extensions were applied (a column)")
    conditions: list[Condition] = Field(default_factory=list, description=_CONDITIONS)
    archived_records: list[str] | None = Field(
        default=None,
        description="The audit records (by action, docs/audit.md) already in the audit archive; written by the "
        "operator only, and retention waits for all of them",
    )
    notifications: Notified | None = Field(default=None, description=_NOTIFIED)


class AccessGrant(Model):
    api_version: str = API_VERSION
    kind: Literal["AccessGrant"] = "AccessGrant"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: AccessGrantSpec
    status: AccessGrantStatus = Field(default_factory=AccessGrantStatus)


# --- AccessExtension ---------------------------------------------------------------------------


class AccessExtensionSpec(Model):
    """Which grant, how much longer and why; the requester is stamped at admission."""

    grant: str = Field(
        min_length=1,
        description="The Active AccessGrant to extend (the caller's own)",
        json_schema_extra=_bounded(limits.NAME_MAX_LENGTH),
    )
    duration: str = _duration("How much longer access lasts (added to the grant's expirationTime)")
    reason: str = Field(
        description="Why more time is needed: one line of plain text",
        json_schema_extra=_bounded(limits.REASON_MAX_LENGTH, _REASON_RULES),
    )
    requester: str | None = Field(
        default=None, description="Set from the authenticated caller at admission; never from the client"
    )
    requester_groups: list[str] = Field(
        default_factory=list, description="The caller's groups, stamped at admission with the requester"
    )


class AccessExtensionStatus(Model):
    """Where the extension stands: its decision, approvals and the grant's end before and after."""

    entitlement: str | None = Field(default=None, description="The grant's Entitlement")
    owner_team: str | None = _team(
        "The grant's owner team (its spec.ownerTeam), set with the entitlement, for the audit records"
    )
    grant_uid: str | None = Field(
        default=None,
        max_length=limits.NAME_MAX_LENGTH,
        description="The uid of the AccessGrant it extends, set with the entitlement: a grant created again under "
        "spec.grant's name is another grant, which it never extends",
    )
    approvals: list[GivenApproval] | None = Field(
        default=None,
        description="The approvals that count, in order (the entitlement's approvalsRequired), against the owner "
        "team as it is",
    )
    approval_summary: str | None = Field(
        default=None, description="Approvals so far (`1/2`), or `auto` for an owner-team member's own (a column)"
    )
    approved_by: str | None = Field(
        default=None,
        description="Who approved (the approval that completed the count); `auto` for an owner-team member's own",
    )
    denied_by: str | None = Field(default=None, description="Who denied")
    decision_reason: str | None = Field(
        default=None, description="The decider's reason (jitaccess.dev/decision-reason)"
    )
    previous_expiration_time: datetime | None = Field(default=None, description="The grant's end before")
    expiration_time: datetime | None = Field(default=None, description="The grant's end once extended")
    conditions: list[Condition] = Field(default_factory=list, description=_CONDITIONS)
    archived_records: list[str] | None = Field(
        default=None,
        description="The audit records (by action, docs/audit.md) already in the audit archive; written by the "
        "operator only, and its grant's retention waits for all of them",
    )
    notifications: Notified | None = Field(default=None, description=_NOTIFIED)


class AccessExtension(Model):
    api_version: str = API_VERSION
    kind: Literal["AccessExtension"] = "AccessExtension"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: AccessExtensionSpec
    status: AccessExtensionStatus = Field(default_factory=AccessExtensionStatus)


# --- PermissionCatalog -------------------------------------------------------------------------
# What a team's roles contain, kept in the team's GitOps file and rendered by
# `jitaccess.domain.permissions` into one Identity Center permission set per tier. Production is
# written as what it adds to baseline, so it is a superset of baseline by construction. The
# patterns below are enforced by the API server (CEL, with a message saying what is expected); the
# admission webhook checks what a schema cannot (rendered policy size, AWS quotas, the tier totals).

ACCOUNT_PATTERN = r"^[0-9]{12}$"
REGION_PATTERN = r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]{1,2}$"
#: An AWS managed policy (the only kind AttachManagedPolicyToPermissionSet takes).
MANAGED_POLICY_PATTERN = r"^arn:aws:iam::aws:policy/([A-Za-z0-9+=,.@_-]+/)*[A-Za-z0-9+=,.@_-]+$"
PIPELINE_PATTERN = r"^[A-Za-z0-9.@_-]{1,100}$"
LAMBDA_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
ECS_NAME_PATTERN = r"^[A-Za-z0-9_-]{1,255}$"
SECRET_PATTERN = r"^[A-Za-z0-9/_+=.@-]{1,512}$"
#: `bucket/*` (the whole bucket), `bucket/prefix/*` (everything under a prefix) or `bucket/key`
#: (one object): a wildcard only as a trailing `/*`, and none of IAM's other wildcards or variables.
S3_PATH_PATTERN = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/(\*|[^*?$\s]*[^*?$\s/](/\*)?)$"
GROUP_NAME_MAX_LENGTH = limits.GROUP_NAME_MAX_LENGTH


#: The schema's bound on any string of a catalog: above every pattern's own, so that a name too long
#: is refused with the pattern's message (saying what is expected), not a bare "too long".
ENTRY_MAX_LENGTH = 1024


def _rules(pattern: str, message: str) -> list[Any]:
    return [{"rule": f"self.matches({_cel_quoted(pattern)})", "message": message}]


def _matching(pattern: str, message: str, description: str) -> Any:
    """A string field the API server checks against `pattern` (CEL), refusing with `message`."""
    return Field(description=description, json_schema_extra=_bounded(ENTRY_MAX_LENGTH, _rules(pattern, message)))


def _optional_matching(pattern: str, message: str, description: str) -> Any:
    extra = _bounded(ENTRY_MAX_LENGTH, _rules(pattern, message))
    return Field(default=None, description=description, json_schema_extra=extra)


def _matching_items(pattern: str, message: str) -> dict[str, Any]:
    """The `items` of a list of strings each checked against `pattern`."""
    return {
        "items": {"type": "string", "maxLength": ENTRY_MAX_LENGTH, "x-kubernetes-validations": _rules(pattern, message)}
    }


_ACCOUNT_MESSAGE = "an AWS account id is 12 digits, e.g. '111122223333' (quote it in YAML)"
_REGION_MESSAGE = "must be an AWS region such as eu-west-1"
_ENTRY_REGION = "Region of this entry; unset = spec.region"
_ENTRY_ACCOUNT = "Account of this entry; unset = every account of the tier it is rendered for"


def _account_list(description: str, min_length: int = 0) -> Any:
    return Field(
        default_factory=list,
        min_length=min_length,
        max_length=limits.CATALOG_ACCOUNTS_MAX,
        description=description,
        # A set, as an Entitlement's accountAssignment.accounts: an account twice is a copy-paste
        # slip the API server refuses by name ("Duplicate value"), not one assignment made twice.
        json_schema_extra={**_matching_items(ACCOUNT_PATTERN, _ACCOUNT_MESSAGE), "x-kubernetes-list-type": "set"},
    )


class CatalogEntry(Model):
    """Where an entry lives: its region and account, when not the catalog's default."""

    region: str | None = _optional_matching(REGION_PATTERN, _REGION_MESSAGE, _ENTRY_REGION)
    account: str | None = _optional_matching(ACCOUNT_PATTERN, _ACCOUNT_MESSAGE, _ENTRY_ACCOUNT)


class PipelineEntry(CatalogEntry):
    name: str = _matching(
        PIPELINE_PATTERN,
        "a CodePipeline name is 1-100 of A-Z a-z 0-9 . @ _ - (the name, not its ARN)",
        "CodePipeline pipeline: start, stop and retry its executions, read its state",
    )


class LambdaEntry(CatalogEntry):
    name: str = _matching(
        LAMBDA_PATTERN,
        "a Lambda function name is 1-64 of A-Z a-z 0-9 _ - (the name, not its ARN or an alias)",
        "Lambda function: invoke it (any version or alias)",
    )


class EcsServiceEntry(CatalogEntry):
    cluster: str = _matching(
        ECS_NAME_PATTERN, "an ECS cluster name is 1-255 of A-Z a-z 0-9 _ - (not its ARN)", "ECS cluster name"
    )
    service: str = _matching(
        ECS_NAME_PATTERN,
        "an ECS service name is 1-255 of A-Z a-z 0-9 _ - (not its ARN)",
        "ECS service: exec into its tasks (ECS Exec; the service must set enableECSManagedTags)",
    )


class SecretEntry(CatalogEntry):
    name: str = _matching(
        SECRET_PATTERN,
        "a Secrets Manager secret name is 1-512 of A-Z a-z 0-9 / _ + = . @ - (the name, not its ARN: no wildcards)",
        "Secrets Manager secret name",
    )


def _entries(description: str) -> Any:
    return Field(default_factory=list, max_length=limits.CATALOG_LIST_MAX_ITEMS, description=description)


_S3_MESSAGE = (
    "an S3 path is bucket/* (the whole bucket), bucket/prefix/* (everything under a prefix) or bucket/key "
    "(one object): a wildcard only as a trailing /*, no ? or ${...}"
)


def _s3_paths(description: str) -> Any:
    return Field(
        default_factory=list,
        max_length=limits.CATALOG_LIST_MAX_ITEMS,
        description=description,
        json_schema_extra=_matching_items(S3_PATH_PATTERN, _S3_MESSAGE),
    )


class S3Access(Model):
    read: list[str] = _s3_paths("Paths to read: s3:GetObject, and s3:ListBucket limited to the prefix")
    write: list[str] = _s3_paths("Paths to write: s3:PutObject and s3:DeleteObject")


class SecretsAccess(Model):
    read: list[SecretEntry] = _entries("secretsmanager:GetSecretValue and DescribeSecret")
    edit: list[SecretEntry] = _entries("secretsmanager:PutSecretValue, UpdateSecret, DescribeSecret")


class Permissions(Model):
    """What a role may do, by resource type (docs/api.md lists the IAM actions each one renders to)."""

    managed_policies: list[str] = Field(
        default_factory=list,
        max_length=limits.MANAGED_POLICIES_MAX,
        description="AWS managed policy ARNs attached to the permission set",
        json_schema_extra=_matching_items(
            MANAGED_POLICY_PATTERN, "must be an AWS managed policy ARN, e.g. arn:aws:iam::aws:policy/ReadOnlyAccess"
        ),
    )
    pipelines: list[PipelineEntry] = _entries("CodePipeline pipelines it may run")
    lambda_functions: list[LambdaEntry] = _entries("Lambda functions it may invoke")
    ecs_exec: list[EcsServiceEntry] = _entries("ECS services whose tasks it may exec into")
    s3: S3Access = Field(default_factory=S3Access, description="S3 paths it may read and write")
    secrets: SecretsAccess = Field(default_factory=SecretsAccess, description="Secrets it may read and edit")


_SESSION_RULES: list[Any] = [
    *_DURATION_RULES,
    {
        "rule": f"!self.matches('{DURATION_PATTERN}') || (duration(self) >= duration('{limits.SESSION_HOURS_MIN}h') "
        f"&& duration(self) <= duration('{limits.SESSION_HOURS_MAX}h'))",
        "message": f"an AWS session lasts {limits.SESSION_HOURS_MIN}h to {limits.SESSION_HOURS_MAX}h",
    },
]


def _session(default: str) -> Any:
    return Field(
        default=default,
        description=f"How long an AWS session of this permission set lasts ({limits.SESSION_HOURS_MIN}h to "
        f"{limits.SESSION_HOURS_MAX}h): also how long a revoked user's sessions are denied",
        json_schema_extra=_bounded(limits.DURATION_MAX_LENGTH, _SESSION_RULES),
    )


def _group_name(description: str) -> Any:
    return Field(min_length=1, description=description, json_schema_extra=_bounded(GROUP_NAME_MAX_LENGTH))


class BaselineTier(Model):
    """The team's everyday (non-production) role: a standing group, its accounts, what it may do."""

    group_name: str = _group_name("Identity Center group (DisplayName) the baseline permission set is assigned to")
    accounts: list[str] = _account_list("Accounts the baseline permission set is assigned in", min_length=1)
    session_duration: str = _session("8h")
    permissions: Permissions = Field(default_factory=Permissions, description="What the baseline role may do")


class ProductionTier(Model):
    """The production role: everything baseline may do, plus `adds`; held only through a grant."""

    group_name: str = _group_name(
        "Identity Center group the production permission set is assigned to: the group of the team's "
        "Entitlement, which jitaccess puts people into for the length of a grant"
    )
    accounts: list[str] = _account_list("Accounts the production permission set is assigned in", min_length=1)
    session_duration: str = _session("1h")
    adds: Permissions = Field(
        default_factory=Permissions, description="What production may do beyond baseline (rendered as baseline + adds)"
    )


class PermissionCatalogSpec(Model):
    """A team's roles: the baseline tier everyone in the team holds, and what production adds."""

    region: str = Field(
        description="Default region of the entries (each may name its own)",
        json_schema_extra=_bounded(ENTRY_MAX_LENGTH, _rules(REGION_PATTERN, _REGION_MESSAGE)),
    )
    description: str | None = Field(
        default=None,
        description="What the team's roles are for, in words (shown by `kubectl jit permissions`)",
        json_schema_extra=_bounded(200),
    )
    baseline: BaselineTier
    production: ProductionTier | None = Field(
        default=None, description="The production tier; unset = the team has no production permission set"
    )


class AccountAssignmentState(Model):
    """The permission set's assignment to the tier's group in one account, as Identity Center reported it."""

    account: str = Field(description="The AWS account id")
    state: str = Field(description="`Provisioned`, `InProgress`, `Failed` or `Removing`")
    message: str | None = Field(default=None, description="Identity Center's reason, when it failed")
    request_id: str | None = Field(default=None, description="The last asynchronous request about it")
    time: datetime | None = Field(default=None, description="When this state was observed")


class DeniedUser(Model):
    """A user whose sessions of this permission set are denied (session revocation, docs/api.md)."""

    user_id: str = Field(description="Identity Store UserId, in the deny statement's condition")
    user: str | None = Field(default=None, description="The user's name")
    grant: str | None = Field(default=None, description="The AccessGrant whose early end put it there")
    since: datetime = Field(description="When the grant ended")
    until: datetime = Field(description="When the entry goes: since + the session duration")


class TierStatus(Model):
    """One tier's permission set in Identity Center."""

    permission_set_name: str | None = Field(default=None, description="The permission set's name")
    permission_set_arn: str | None = Field(default=None, description="The permission set's ARN")
    group_name: str | None = Field(
        default=None, description="The tier's groupName that the last pass resolved to groupId"
    )
    group_id: str | None = Field(
        default=None,
        description="The Identity Store GroupId of the group the permission set is assigned to: admission finds the "
        "grants of the group by it, however their Entitlement spells the group",
    )
    digest: str | None = Field(
        default=None, description="Digest of the rendered permission set last provisioned (unchanged: nothing to do)"
    )
    accounts: list[AccountAssignmentState] | None = Field(default=None, description="Assignment state, per account")
    denied_users: list[DeniedUser] | None = Field(
        default=None, description="Users whose sessions are denied until their entry's `until`"
    )
    provisioned_time: datetime | None = Field(default=None, description="When it was last provisioned")


class ProvisioningResult(Model):
    """The outcome of the last pass that brought Identity Center to the catalog."""

    time: datetime = Field(description="When the pass ended")
    outcome: Literal["Succeeded", "Failed"] = Field(description="`Succeeded` or `Failed`")
    message: str = Field(default="", description="What it did, or why it failed")
    calls: int | None = Field(default=None, description="sso-admin calls the pass made")


class AssignmentDriftRemoval(Model):
    """An account assignment of a jitaccess permission set that no grant nor tier backs, which the
    catalog's pass removes: listed before the removal (no `time` yet) until archived and told
    (docs/notifications.md)."""

    permission_set_arn: str = Field(description="The permission set's ARN")
    permission_set_name: str | None = Field(default=None, description="The permission set's name when listed")
    account: str = Field(description="The AWS account id")
    principal_type: str = Field(description="`USER` or `GROUP`")
    principal_id: str = Field(description="The Identity Store UserId or GroupId assigned")
    user: str | None = Field(default=None, description="The user's name when the principal is a user")
    first_seen: datetime | None = Field(
        default=None,
        description="When the pass listed the assignment (first seen by jitaccess, not when it was made)",
    )
    time: datetime | None = Field(
        default=None,
        description="When the assignment was removed; absent while the removal is under way (listed before it is "
        "made, so that an operator stopped in between still leaves a record)",
    )
    message: str | None = Field(default=None, description="Why it was removed, in words")


class PermissionCatalogStatus(Model):
    """What Identity Center holds of the catalog: each tier's permission set and assignments."""

    conditions: list[Condition] = Field(default_factory=list, description=_CONDITIONS)
    baseline: TierStatus | None = Field(default=None, description="The baseline tier's permission set")
    production: TierStatus | None = Field(default=None, description="The production tier's permission set")
    last_result: ProvisioningResult | None = Field(default=None, description="The last provisioning pass")
    observed_generation: int | None = Field(
        default=None, description="The spec generation the last pass brought Identity Center to"
    )
    drift_removals: list[AssignmentDriftRemoval] | None = Field(
        default=None,
        description="Account assignments made outside jitaccess that were removed, whose audit records are not "
        "archived yet, or whose notices are not yet delivered (docs/audit.md, docs/notifications.md)",
    )
    notifications: Notified | None = Field(default=None, description=_NOTIFIED)
    archived_records: list[str] | None = Field(
        default=None,
        description="The drift removals still listed for their notices whose audit records are already in the "
        "audit archive; written by the operator only",
    )


class PermissionCatalog(Model):
    api_version: str = API_VERSION
    kind: Literal["PermissionCatalog"] = "PermissionCatalog"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: PermissionCatalogSpec
    status: PermissionCatalogStatus = Field(default_factory=PermissionCatalogStatus)


def invalid_field(exc: ValidationError) -> tuple[str, str]:
    """The first problem `exc` found: the field (`spec.startTime`) and what is wrong with it, with
    the form expected where pydantic's message names none (a time: "Input should be a valid
    datetime" says what is wrong, not how to write one)."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    message = f"is invalid: {first['msg']}"
    if str(first["type"]).startswith(("datetime", "timezone")):
        message += "; write an RFC 3339 time with a zone, such as 2026-12-01T06:00:00Z"
    return where, message

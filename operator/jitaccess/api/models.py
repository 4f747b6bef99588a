"""Pydantic models of TeamOwnership, Entitlement, AccessRequest, AccessGrant and AccessExtension.

These models are the single source of the API contract (docs/api.md): the CRD
schemas in `crds/` are generated from them (see `crdgen`), and the handlers parse every object
they receive through them, so a field's name, type and validation live in one place. The
API's names (group, annotations, condition types and reasons) are in `names`.

Field names are camelCase on the wire (Kubernetes convention) and snake_case in Python.
CEL rules that the API server enforces are attached to fields as `x-kubernetes-validations`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
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
        "message": "reason may not hold control characters (tab and newline included), DEL, U+FFFD or "
        "bidirectional-text controls: write it as one line of plain text",
    },
]


def _bounded(max_length: int, rules: list[Any] | None = None) -> dict[str, Any]:
    """A string's `maxLength` (and CEL rules) for the schema only: the API server refuses a longer
    write, while the operator still reads an object stored before the bound existed."""
    return {"maxLength": max_length} | ({"x-kubernetes-validations": rules} if rules else {})


def _duration(description: str, default: str | None = None) -> Any:
    return Field(
        default=default,
        description=description,
        json_schema_extra=_bounded(limits.DURATION_MAX_LENGTH, _DURATION_RULES),
    )


class Condition(Model):
    """A Kubernetes-style condition (type, status, reason, message, lastTransitionTime)."""

    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str = Field(description="CamelCase word: for decisions it names who, the message says why")
    message: str = ""
    last_transition_time: datetime
    observed_generation: int | None = None


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
            "maxProperties": 500,
            "additionalProperties": {"type": "string", "pattern": SLACK_USER_PATTERN},
        },
    )


class TeamOwnershipSpec(Model):
    """A team: who belongs to it, who approves for it, and who steps in when they do not."""

    members: list[str] = Field(default_factory=list, description="Usernames as the cluster authenticates them")
    member_groups: list[str] = Field(default_factory=list, description="Kubernetes groups whose members belong")
    approvers: list[str] = Field(default_factory=list, description="Tech leads: may approve this team's entitlements")
    approver_groups: list[str] = Field(default_factory=list, description="Kubernetes groups of approvers")
    backup_approvers: list[str] = Field(
        default_factory=list, description="May approve only once a request has escalated"
    )
    backup_approver_groups: list[str] = Field(default_factory=list, description="Groups of backup approvers")
    escalate_after: str | None = _duration("Pending this long -> escalate to backup approvers")
    notifications: TeamNotifications | None = Field(default=None, description="Where approvers are told")


class TeamOwnershipStatus(Model):
    conditions: list[Condition] = Field(default_factory=list)


class TeamOwnership(Model):
    api_version: str = API_VERSION
    kind: Literal["TeamOwnership"] = "TeamOwnership"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: TeamOwnershipSpec
    status: TeamOwnershipStatus = Field(default_factory=TeamOwnershipStatus)


# --- Entitlement -------------------------------------------------------------------------------


class IdentityCenterTarget(Model):
    """The Identity Center group a grant puts the user into."""

    group_name: str | None = Field(default=None, description="Group DisplayName in the identity store")
    group_id: str | None = Field(default=None, description="Group id; takes precedence over groupName")


class Eligibility(Model):
    identity_center_groups: list[str] = Field(
        default_factory=list, description="The requester must be a member of every one of these groups"
    )


class Approval(Model):
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
    auto_approve_groups: list[str] = Field(
        default_factory=list,
        description="On call: members of these Kubernetes groups (as authenticated at the request) get it at once",
    )
    auto_approve_identity_center_groups: list[str] = Field(
        default_factory=list,
        description="On call: members of these Identity Center groups, asked at the moment of the request, "
        "get it at once",
    )


class BreakGlass(Model):
    """Who may approve their own request in an emergency, and the limits that come with it."""

    groups: list[str] = Field(
        min_length=1, description="Kubernetes groups whose members may use break-glass on this entitlement"
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
    owner: str = Field(min_length=1, description="A TeamOwnership name")
    identity_center: IdentityCenterTarget = Field(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.groupName) || has(self.groupId)",
                    "message": "identityCenter needs groupName (the group's DisplayName) or groupId",
                }
            ]
        }
    )
    default_duration: str = _duration("Granted when a request names no duration", default="1h")
    max_duration: str = _duration("No grant lasts longer", default="4h")
    eligibility: Eligibility = Field(default_factory=Eligibility)
    approval: Approval = Field(default_factory=Approval)
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
    """A member the drift scan took out of the group, kept until its audit record is archived."""

    membership_id: str
    user_id: str
    user: str | None = Field(default=None, description="The user's name when removed")
    group_id: str | None = None
    time: datetime
    message: str | None = None


class EligibleUser(Model):
    """A user in every eligibility group, as the last eligibility re-check listed them."""

    user_id: str
    username: str


class EntitlementStatus(Model):
    group_id: str | None = None
    conditions: list[Condition] = Field(default_factory=list)
    drift_removals: list[DriftRemoval] | None = Field(
        default=None, description="Drift removals whose audit records are not archived yet (docs/audit.md)"
    )
    eligible_users: list[EligibleUser] | None = Field(
        default=None,
        description="Enabled users in every eligibility group, by user name, at most "
        f"{limits.ELIGIBLE_USERS_LISTED} (eligibleUserCount counts them all); absent when no group is named",
    )
    eligible_user_count: int | None = Field(default=None, description="How many users are eligible")
    notifications: Notified | None = Field(default=None, description=_NOTIFIED)


class Entitlement(Model):
    api_version: str = API_VERSION
    kind: Literal["Entitlement"] = "Entitlement"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: EntitlementSpec
    status: EntitlementStatus = Field(default_factory=EntitlementStatus)


# --- AccessRequest -----------------------------------------------------------------------------


class AccessRequestSpec(Model):
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
    start_time: datetime | None = Field(
        default=None,
        description="When access is to begin (RFC 3339), at most the operator's horizon ahead (default 7 days); "
        "unset: as soon as approved. Approval may come before; eligibility and the approval are checked again "
        "at this time, and the duration counts from it",
    )


class GivenApproval(Model):
    """One approver's approval, as the operator counted it."""

    by: str
    time: datetime = Field(description="When the operator counted it")


class AccessRequestStatus(Model):
    requester: str | None = None
    duration: str | None = Field(default=None, description="The duration that applies, defaults resolved")
    approvals: list[GivenApproval] | None = Field(
        default=None, description="Every approval counted, in order (an entitlement's approvalsRequired)"
    )
    approval_summary: str | None = Field(
        default=None, description="Approvals so far (`1/2`), or `auto`, `auto (on call)`, `break-glass` (a column)"
    )
    reviewed_by: str | None = Field(default=None, description="Who reviewed a break-glass request")
    review_deadline: datetime | None = Field(default=None, description="When a break-glass request's review is due")
    approved_by: str | None = None
    denied_by: str | None = None
    decision_reason: str | None = None
    escalation_time: datetime | None = None
    grant: str | None = None
    expiration_time: datetime | None = None
    conditions: list[Condition] = Field(default_factory=list)
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
    user: str = Field(min_length=1, description="The grantee's username")
    entitlement: str = Field(min_length=1)
    group_name: str = Field(min_length=1, description="Identity Center group (DisplayName or id)")
    request: str = Field(min_length=1, description="The AccessRequest this grant fulfils")
    duration: str = _duration("How long the membership lasts from activation")
    user_id: str | None = Field(
        default=None,
        max_length=USER_ID_MAX_LENGTH,
        description="The grantee's Identity Center UserId, as admission stamped it on the request",
    )
    owner_team: str | None = Field(
        default=None,
        max_length=limits.NAME_MAX_LENGTH,
        description="The TeamOwnership that owned the Entitlement when the grant was created: its approvers "
        "may revoke the grant, even once the Entitlement is gone",
    )
    reason: str | None = Field(
        default=None,
        max_length=limits.REASON_MAX_LENGTH,
        description="The request's reason, kept with the grant for the audit trail",
    )


class GrantExtension(Model):
    """An AccessExtension applied to a grant: how much later its access now ends, and on whose word."""

    name: str = Field(description="The AccessExtension")
    by: str = Field(description="The time added (its spec.duration)")
    approved_by: str = Field(description="The approver, or `auto` for an owner-team member's own extension")
    time: datetime = Field(description="When the operator applied it")
    reason: str | None = Field(default=None, description="The extension's spec.reason")
    previous_expiration_time: datetime | None = Field(default=None, description="When access was to end before")
    expiration_time: datetime = Field(description="When access ends after it")


class AccessGrantStatus(Model):
    user_id: str | None = None
    group_id: str | None = None
    membership_id: str | None = None
    activation_time: datetime | None = None
    expiration_time: datetime | None = None
    revocation_time: datetime | None = None
    revoked_by: str | None = None
    extensions: list[GrantExtension] | None = Field(
        default=None, description="The AccessExtensions applied, in order: each moved expirationTime later"
    )
    extension_count: int | None = Field(default=None, description="How many extensions were applied (a column)")
    conditions: list[Condition] = Field(default_factory=list)
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
    entitlement: str | None = Field(default=None, description="The grant's Entitlement")
    approved_by: str | None = None
    denied_by: str | None = None
    decision_reason: str | None = None
    previous_expiration_time: datetime | None = Field(default=None, description="The grant's end before")
    expiration_time: datetime | None = Field(default=None, description="The grant's end once extended")
    conditions: list[Condition] = Field(default_factory=list)


class AccessExtension(Model):
    api_version: str = API_VERSION
    kind: Literal["AccessExtension"] = "AccessExtension"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: AccessExtensionSpec
    status: AccessExtensionStatus = Field(default_factory=AccessExtensionStatus)

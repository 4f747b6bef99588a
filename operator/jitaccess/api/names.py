"""The API's names, in one place: group and version, plurals and kinds, a catalog's tiers,
annotations, labels, the finalizer, condition types and their reasons, and the sets of reasons the
code decides on.

The models, the CRD generator, the domain rules, the handlers and the `kubectl jit` plugin all
read them from here. Standard library only: the plugin imports this module on its fast path, where
pydantic alone would cost a few hundred milliseconds.
"""

from __future__ import annotations

from typing import Literal

GROUP = "jitaccess.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

# Plurals (the resource names in API paths and kopf's handler selectors) and kinds.
REQUESTS = "accessrequests"
GRANTS = "accessgrants"
EXTENSIONS = "accessextensions"
ENTITLEMENTS = "entitlements"
TEAMS = "teamownerships"
CATALOGS = "permissioncatalogs"
ACCESS_REQUEST = "AccessRequest"
ACCESS_GRANT = "AccessGrant"
ACCESS_EXTENSION = "AccessExtension"
ENTITLEMENT = "Entitlement"
TEAM_OWNERSHIP = "TeamOwnership"
PERMISSION_CATALOG = "PermissionCatalog"
#: How an account-assignment grant names a catalog tier's permission set: `catalog:TEAM/TIER`.
CATALOG_REFERENCE_PREFIX = "catalog:"
#: A PermissionCatalog's tiers (its spec's and its status's fields), in that order.
Tier = Literal["baseline", "production"]
TIERS: tuple[Tier, ...] = ("baseline", "production")
KINDS = {
    REQUESTS: ACCESS_REQUEST,
    GRANTS: ACCESS_GRANT,
    ENTITLEMENTS: ENTITLEMENT,
    TEAMS: TEAM_OWNERSHIP,
    EXTENSIONS: ACCESS_EXTENSION,
    CATALOGS: PERMISSION_CATALOG,
}

# Annotations users and the webhook write. The `-by` ones (and their `-groups`) are written only
# by admission, from the identity the API server authenticated.
ANNOTATION_APPROVED = f"{GROUP}/approved"
ANNOTATION_DENIED = f"{GROUP}/denied"
ANNOTATION_DECISION_REASON = f"{GROUP}/decision-reason"
ANNOTATION_APPROVED_BY = f"{GROUP}/approved-by"
ANNOTATION_DENIED_BY = f"{GROUP}/denied-by"
ANNOTATION_APPROVED_BY_GROUPS = f"{ANNOTATION_APPROVED_BY}-groups"
ANNOTATION_DENIED_BY_GROUPS = f"{ANNOTATION_DENIED_BY}-groups"
ANNOTATION_REVOKED = f"{GROUP}/revoked"
ANNOTATION_REVOKED_BY = f"{GROUP}/revoked-by"
ANNOTATION_REVOKE_REASON = f"{GROUP}/revoke-reason"
# Multi-party approval: every approval so far, as the webhook stamped it (`domain.approvals`).
ANNOTATION_APPROVALS = f"{GROUP}/approvals"
# The owner team's review of a break-glass request (`domain.breakglass`), and its stamps.
ANNOTATION_REVIEWED = f"{GROUP}/reviewed"
ANNOTATION_REVIEWED_BY = f"{GROUP}/reviewed-by"
ANNOTATION_REVIEWED_BY_GROUPS = f"{ANNOTATION_REVIEWED_BY}-groups"
# kopf's finalizer (handlers/startup.py): grants are created with it, sparing kopf a patch.
FINALIZER = f"{GROUP}/finalizer"
# Keeps a deleted request or extension until its audit records are in the archive: the admission
# webhook adds it at creation when an archive is configured, the audit trail removes it
# (`handlers.archive`).
RECORDS_FINALIZER = f"{GROUP}/records"
LABEL_ENTITLEMENT = f"{GROUP}/entitlement"
LABEL_REQUEST = f"{GROUP}/request"

# Condition types. `Approved` and `Denied` are also reasons: of a person's approval, and of a
# denied request's `Denied` and `Ready` conditions.
READY = "Ready"
APPROVED = "Approved"
DENIED = "Denied"
ESCALATED = "Escalated"
# A break-glass request's review by the owner team (True once reviewed).
REVIEWED = "Reviewed"
# An Entitlement's: another Entitlement grants the same access (`domain.overlaps`).
OVERLAPPING = "Overlapping"
# A deleted Entitlement or PermissionCatalog waiting for the notices of its drift removals (True,
# reason `DRIFT_UNTOLD`): its `Ready` cannot say it (an Entitlement's is `Released`, its record's words).
DRIFT_NOTICES_PENDING = "DriftNoticesPending"

# Reasons of an AccessRequest's `Ready` (DENIED above is one too).
PENDING = "Pending"
# Approved, waiting for its `spec.startTime` (no grant yet; `domain.schedule`).
SCHEDULED = "Scheduled"
GRANTED = "Granted"
NOT_ELIGIBLE = "NotEligible"
INVALID = "Invalid"
TIMED_OUT = "TimedOut"
# Reasons of an AccessGrant's `Ready`; the finished ones are a request's too, following its grant.
PROVISIONING = "Provisioning"
ACTIVE = "Active"
EXPIRED = "Expired"
REVOKED = "Revoked"
FAILED = "Failed"
# The user is no longer eligible (out of an eligibility group, deleted or disabled in Identity Center).
ELIGIBILITY_LAPSED = "EligibilityLapsed"
# Reasons of a TeamOwnership's and an Entitlement's `Ready`.
VALID = "Valid"
NO_APPROVERS = "NoApprovers"
RESOLVED = "Resolved"
OWNER_NOT_FOUND = "OwnerNotFound"
TOO_FEW_APPROVERS = "TooFewApprovers"
GROUP_NOT_FOUND = "GroupNotFound"
PERMISSION_SET_NOT_FOUND = "PermissionSetNotFound"
# The group resolves, but spec.eligibility.identityCenterGroups names one that does not exist.
ELIGIBILITY_GROUP_NOT_FOUND = "EligibilityGroupNotFound"
# The group resolves, but spec.approval.autoApproveIdentityCenterGroups names one that does not exist.
ON_CALL_GROUP_NOT_FOUND = "OnCallGroupNotFound"
# Stored before admission refused such a spec (an upgrade, the webhooks down): it would be refused now.
POLICY_REFUSED = "PolicyRefused"
# An Entitlement's drift scan of a group ended while the group may still give access (its Event).
SCAN_STOPPED = "ScanStopped"
# A deleted Entitlement kept until no access it gave remains (`domain.releases`), and its last Event.
DELETING = "Deleting"
RELEASED = "Released"
# Reasons of an Entitlement's `Overlapping`: True, another grants the same access under other rules
# (a Warning: its rules are a way around these) or under the same rules; False, no more.
SAME_ACCESS = "SameAccess"
DUPLICATE = "Duplicate"
NO_OVERLAP = "NoOverlap"
# Reasons of a PermissionCatalog's `Ready`: Identity Center matches it, could not be brought to it,
# or the TeamOwnership it is named after does not exist (yet: GitOps apply order).
PROVISIONED = "Provisioned"
PROVISIONING_FAILED = "ProvisioningFailed"
TEAM_NOT_FOUND = "TeamNotFound"
# Reasons of `Approved` (besides APPROVED) and of `Escalated`.
AUTO_APPROVED = "AutoApproved"
PENDING_TOO_LONG = "PendingTooLong"
# Reasons of Events that no condition carries.
DECISION_IGNORED = "DecisionIgnored"
DRIFT_FOUND = "DriftFound"
# A Warning Event on an Entitlement whose drift scan found a member no grant backs and Identity Center
# refused to remove it (AccessDenied: the operator's IAM policy, an SCP): the member keeps the access.
DRIFT_NOT_REMOVED = "DriftNotRemoved"
# A Warning Event on a deleted Entitlement or PermissionCatalog that goes with drift removals untold;
# the reason of its `DRIFT_NOTICES_PENDING` condition while it waits for them.
DRIFT_UNTOLD = "DriftRemovalsUntold"
# A Warning Event on an AccessGrant whose membership is still there past its expiration time.
EXPIRY_OVERDUE = "ExpiryOverdue"
# A Warning Event on an AccessGrant whose access is removed but whose end the API server refuses to
# store as invalid (an admission policy, a schema bound): it shows Active until that is fixed.
WRITE_REFUSED = "WriteRefused"
# Break-glass: the `Approved` reason (and its Warning Event), `Reviewed`'s False reasons, and the
# Event of one approval of several counted.
BREAK_GLASS = "BreakGlass"
AWAITING_REVIEW = "AwaitingReview"
REVIEW_OVERDUE = "ReviewOverdue"
APPROVAL_COUNTED = "ApprovalCounted"

# Reason of an AccessExtension's `Ready` once its time is added to the grant (besides PENDING,
# DENIED, FAILED).
EXTENDED = "Extended"

# `Ready` reasons after which a grant, or a request, never changes again.
GRANT_FINISHED = frozenset({EXPIRED, REVOKED, FAILED, ELIGIBILITY_LAPSED})
REQUEST_FINISHED = frozenset({DENIED, NOT_ELIGIBLE, INVALID, TIMED_OUT}) | GRANT_FINISHED
EXTENSION_FINISHED = frozenset({EXTENDED, DENIED, FAILED})

#: What the API server answers (400) to a field selector on a field its CRD does not make selectable
#: (`selectableFields` needs Kubernetes 1.31): listings then fall back to every object.
FIELD_LABEL_UNSUPPORTED = "field label not supported"

"""Bounds on the text people write: how long a field may be, and the characters a reason may not hold.

The CRD schemas (`maxLength`, and a CEL rule on `spec.reason`) and the admission webhook
(`jitaccess.domain.text`, for annotations, which have no schema) read them from here, so both
refuse the same things. Why these characters: see `jitaccess.domain.text`.
"""

from __future__ import annotations

#: The longest reason (a request's, a decision's, a revocation's), in characters as Kubernetes counts them.
REASON_MAX_LENGTH = 1024
#: The longest regular expression an Entitlement may ask reasons to match.
PATTERN_MAX_LENGTH = 512
#: A Kubernetes object name (the longest a DNS subdomain may be).
NAME_MAX_LENGTH = 253
#: A label value (Kubernetes': a name's first 63 characters are all a label may hold). An Entitlement's
#: name is one, on each of its grants (`names.LABEL_ENTITLEMENT`), so it may be no longer.
LABEL_VALUE_MAX_LENGTH = 63
#: A duration such as `1h30m`; far more than any sensible one needs.
DURATION_MAX_LENGTH = 32
#: The most a user's write may leave in the labels and annotations of a record (AccessRequest,
#: AccessGrant, AccessExtension), in characters of keys and values, jitaccess's own annotations not
#: counted (each is bounded where it is checked). The operator copies labels and annotations into
#: its bookkeeping in the record's status and keeps records for 90 days: without a bound, one user's
#: few hundred requests of a megabyte each would fill etcd's quota, and every writer in the cluster
#: would stop. kubectl's last-applied record of a request is about a kilobyte.
USER_METADATA_MAX_CHARACTERS = 16_384
#: The most eligible users an Entitlement's status lists (`status.eligibleUsers`): a bound on the
#: object's size (about 100 bytes each), far above the people who may hold one production role.
ELIGIBLE_USERS_LISTED = 1000
#: The most names a message the operator writes in a status lists (`domain.text.listed`: who may
#: approve a request, "and 95 more" for the rest), and the most characters of one it shows. A team
#: may name thousands of approvers, each as long as its writer likes: a condition listing them all,
#: twice once a request escalates, would outgrow what the API server stores (etcd refuses a write
#: above about 1.5 MB), and the request's status could no longer be written at all.
NAMES_LISTED = 10
NAME_SHOWN_MAX_LENGTH = 256
#: The most drift removals an Entitlement's or a PermissionCatalog's status keeps for their notices
#: alone (archived, not yet delivered to Slack's security channel or the CloudEvents sink,
#: `domain.notifications.settle_drift`): a bound on the object's size (about 1 KB each, with their
#: keys) while a notice target stays down. Beyond it the oldest leave untold.
DRIFT_REMOVALS_HELD_FOR_NOTICES = 100

#: The longest Kubernetes user or group name a TeamOwnership or an Entitlement may name (each entry
#: of a team's `members`, `approvers`, `backupApprovers`, group fields and `slackUsers` keys, of an
#: Entitlement's `autoApproveGroups` and `breakGlass.groups`). Kubernetes bounds neither; a user is
#: granted only under their Identity Center UserName (at most 128 characters, CreateUser), so twice
#: that leaves room for an authenticator's prefix (`oidc:`) and for a directory's group paths.
KUBE_NAME_MAX_LENGTH = 256
#: An Identity Center group's DisplayName (CreateGroup: 1-1024 characters).
GROUP_NAME_MAX_LENGTH = 1024
#: An Identity Center GroupId, as a UserId: an optional store prefix and a UUID (DescribeGroup: 1-47).
GROUP_ID_MAX_LENGTH = 47
#: The most names a TeamOwnership's `members` holds: a team of a 600-engineer company counts its
#: members in the hundreds at most (groups are for more).
TEAM_MEMBERS_MAX = 1000
#: The most names a team's `approvers` (and, apart, `backupApprovers`) holds: tech leads, tens at most.
TEAM_APPROVERS_MAX = 100
#: The most groups one group field of a TeamOwnership or an Entitlement holds (`memberGroups`,
#: `approverGroups`, `backupApproverGroups`; `eligibility.identityCenterGroups`,
#: `approval.autoApproveGroups`, `approval.autoApproveIdentityCenterGroups`, `breakGlass.groups`).
POLICY_GROUPS_MAX = 100
#: The most usernames a team's `notifications.slackUsers` maps.
SLACK_USERS_MAX = 500
# Together these bound a team's spec (names of ASCII) to about 520 KB, an Entitlement's to about
# 260 KB: the operator keeps a second copy of the spec in status (kopf's diff-base,
# `handlers.diffbase`) and adds conditions, so one team's owners can no longer store a team whose
# status write etcd refuses (above about 1.5 MB), nor one that makes every message naming its
# people huge. The API server refuses a write over a bound, naming the field; an object stored
# before keeps its lists while they stay as they are (CRD validation ratcheting, docs/upgrading.md).

#: Code point ranges (inclusive) a reason may not hold: C0 controls, DEL and C1 controls, U+FFFD,
#: the bidirectional-text controls (the Arabic letter mark, LRM and RLM, embeddings and overrides,
#: isolates), the line and paragraph separators, and invisible characters.
FORBIDDEN_RANGES = (
    (0x00, 0x1F),
    (0x7F, 0x9F),
    (0x00AD, 0x00AD),  # soft hyphen: invisible
    (0x034F, 0x034F),  # combining grapheme joiner: invisible
    (0x061C, 0x061C),
    (0x115F, 0x1160),  # Hangul choseong and jungseong fillers: blank, and as wide as a letter
    (0x180E, 0x180E),  # Mongolian vowel separator: invisible
    (0x200B, 0x200F),  # zero-width space, non-joiner, joiner; left-to-right and right-to-left marks
    (0x2028, 0x2029),  # line and paragraph separators: a second line in some viewers and in Slack
    (0x202A, 0x202E),
    (0x2060, 0x2064),  # word joiner and the invisible operators
    (0x2066, 0x2069),
    (0x2800, 0x2800),  # braille pattern blank: a blank that is no space, so nothing collapses it
    (0x3164, 0x3164),  # Hangul filler: blank
    # Variation selectors 1-14, and the supplement's 17-256: invisible, and each can carry a byte
    # that tools still read (hidden text). VS15 and VS16 (U+FE0E, U+FE0F) stay: they choose text or
    # emoji presentation, as in "⚠️".
    (0xFE00, 0xFE0D),
    (0xFEFF, 0xFEFF),  # zero-width no-break space (a byte order mark)
    (0xFFA0, 0xFFA0),  # halfwidth Hangul filler: blank
    (0xFFF9, 0xFFFB),  # interlinear annotation marks
    (0xFFFD, 0xFFFD),
    (0xE0000, 0xE007F),  # tag characters: invisible text that tools still read
    (0xE0100, 0xE01EF),
)


def forbidden_class() -> str:
    """The ranges as an RE2 character class, for CEL's `matches`."""
    parts = (f"\\x{{{lo:x}}}" + ("" if lo == hi else f"-\\x{{{hi:x}}}") for lo, hi in FORBIDDEN_RANGES)
    return "[" + "".join(parts) + "]"


# --- AWS IAM Identity Center limits a PermissionCatalog is checked against at admission ---------
# Source: "Quotas and limits in IAM Identity Center" (docs.aws.amazon.com/singlesignon/latest/
# userguide/limits.html) and the API reference of the calls the operator makes (sso-admin).

#: A permission set's inline policy: at most 32,768 bytes (PutInlinePolicyToPermissionSet) ...
INLINE_POLICY_MAX_BYTES = 32_768
#: ... and at most 10,240 characters that are not whitespace (the IAM role it becomes): the binding one.
INLINE_POLICY_MAX_CHARACTERS = 10_240
#: Room kept free in every rendered inline policy for the session-revocation deny statement (about
#: 40 Identity Store UserIds), so that revoking sessions never pushes a policy over AWS's limit.
REVOCATION_RESERVE_CHARACTERS = 2_048
#: AWS managed (and customer managed) policies per permission set; not adjustable.
MANAGED_POLICIES_MAX = 20
#: What the IAM role it becomes takes by default (the IAM quota "Managed policies attached to an IAM
#: role", raised per account up to 20): above it, admission warns.
MANAGED_POLICIES_ROLE_DEFAULT = 10
#: A permission set's session duration, in hours (CreatePermissionSet: PT1H to PT12H).
SESSION_HOURS_MIN, SESSION_HOURS_MAX = 1, 12
#: A permission set's name (CreatePermissionSet: 1-32 characters of [\w+=,.@-]).
PERMISSION_SET_NAME_MAX_LENGTH = 32
#: Entries one list of a catalog may hold: a bound for the schema (and CEL's cost estimate); the
#: inline policy limit above is reached well before it.
CATALOG_LIST_MAX_ITEMS = 100
#: The AWS accounts one tier is assigned in.
CATALOG_ACCOUNTS_MAX = 100

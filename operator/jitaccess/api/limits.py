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
#: A duration such as `1h30m`; far more than any sensible one needs.
DURATION_MAX_LENGTH = 32
#: The most eligible users an Entitlement's status lists (`status.eligibleUsers`): a bound on the
#: object's size (about 100 bytes each), far above the people who may hold one production role.
ELIGIBLE_USERS_LISTED = 1000

#: Code point ranges (inclusive) a reason may not hold: C0 controls, DEL and C1 controls, U+FFFD,
#: and the bidirectional-text controls (the Arabic letter mark, LRM and RLM, embeddings and
#: overrides, isolates).
FORBIDDEN_RANGES = (
    (0x00, 0x1F),
    (0x7F, 0x9F),
    (0x061C, 0x061C),
    (0x200E, 0x200F),
    (0x202A, 0x202E),
    (0x2066, 0x2069),
    (0xFFFD, 0xFFFD),
)


def forbidden_class() -> str:
    """The ranges as an RE2 character class, for CEL's `matches`."""
    parts = (f"\\x{{{lo:x}}}" + ("" if lo == hi else f"-\\x{{{hi:x}}}") for lo, hi in FORBIDDEN_RANGES)
    return "[" + "".join(parts) + "]"

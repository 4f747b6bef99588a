"""The `jitaccess.dev/` annotations an AccessRequest and an AccessExtension may carry.

A key under `jitaccess.dev/` that is none of them is read by nobody: `kubectl annotate accessrequest
NAME jitaccess.dev/approve=true` (one letter short) would be stored, and the request would stay
Pending while its approver believed it approved. The admission webhooks refuse such a key when
someone other than the operator writes it (`unknown_key`), with the key it is closest to; keys of
other prefixes are the users' own. The AccessGrant has its own, narrower rule (`admission.review_grant`).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from jitaccess.api import names, wire

#: What people set on a request or an extension (docs/api.md#annotations), in the order messages list them.
_PEOPLE_SET = {
    names.ACCESS_REQUEST: (
        names.ANNOTATION_APPROVED,
        names.ANNOTATION_DENIED,
        names.ANNOTATION_DECISION_REASON,
        names.ANNOTATION_REVIEWED,
        names.ANNOTATION_REVOKED,
        names.ANNOTATION_REVOKE_REASON,
    ),
    names.ACCESS_EXTENSION: (names.ANNOTATION_APPROVED, names.ANNOTATION_DENIED, names.ANNOTATION_DECISION_REASON),
}
#: What the mutating webhook stamps on them, from the identity the API server authenticated.
_STAMPED = {
    names.ACCESS_REQUEST: (
        names.ANNOTATION_APPROVED_BY,
        names.ANNOTATION_APPROVED_BY_GROUPS,
        names.ANNOTATION_DENIED_BY,
        names.ANNOTATION_DENIED_BY_GROUPS,
        names.ANNOTATION_APPROVALS,
        names.ANNOTATION_REVIEWED_BY,
        names.ANNOTATION_REVIEWED_BY_GROUPS,
        names.ANNOTATION_REVOKED_BY,
    ),
    names.ACCESS_EXTENSION: (
        names.ANNOTATION_APPROVED_BY,
        names.ANNOTATION_APPROVED_BY_GROUPS,
        names.ANNOTATION_DENIED_BY,
        names.ANNOTATION_DENIED_BY_GROUPS,
        names.ANNOTATION_APPROVALS,
    ),
}
#: Every `jitaccess.dev/` annotation of each kind.
KNOWN = {kind: frozenset(_PEOPLE_SET[kind] + _STAMPED[kind]) for kind in _PEOPLE_SET}
_PREFIX = f"{names.GROUP}/"


def unknown_key(kind: str, old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> str | None:
    """The message for the first `jitaccess.dev/` annotation `new` adds or changes that `kind` has
    none of, or None. One already there is left alone: removing it is always fine."""
    before, after = wire.annotations_of(old), wire.annotations_of(new)
    written = sorted(k for k, v in after.items() if k.startswith(_PREFIX) and before.get(k) != v)
    for key in written:
        if key in KNOWN[kind]:
            continue
        people = _PEOPLE_SET[kind]
        close = difflib.get_close_matches(key, people, n=1) or difflib.get_close_matches(key, sorted(KNOWN[kind]), n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        return (
            f"metadata.annotations[{key}]: {kind}s have no such annotation, and jitaccess would ignore it; "
            f"{hint}People set only {', '.join(people)} under {_PREFIX} (docs/api.md#annotations); "
            f"remove {key} or use an annotation of your own prefix"
        )
    return None

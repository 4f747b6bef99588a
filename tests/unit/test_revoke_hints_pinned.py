"""The webhook's refusals that say to run `kubectl jit revoke NAME` give the object's uid too
(`--uid UID`): pasted once that object was deleted and another requested or granted under its name,
the command revokes nothing and names what holds the name, where the bare name revoked whatever it
found. A request whose access runs is pinned by its own uid: the CLI revokes the grant made for it
(`test_cli_review.py`)."""

from __future__ import annotations

import pytest

from jitaccess.domain.teams import Caller
from tests.unit.test_admission import MALLORY, PAULA, cond, grant, refused, request, with_annotations
from tests.unit.test_responders import GRANTED, SCHEDULED, SRE, on_grant, on_request

ACTIVE = [cond("Ready", "True", "Active")]
#: (what, operation, its conditions, who, what the refusal says), the object's uid u-1.
CASES = [
    ("request", "DELETE", GRANTED, MALLORY, "End the access first, with `kubectl jit revoke r1 --uid u-1`"),
    ("request", "DELETE", GRANTED, SRE, 'revoke its grant, `kubectl jit revoke r1 --reason "..." --uid u-1`'),
    ("request", "CANCEL", GRANTED, PAULA, "revoke its grant instead, `kubectl jit revoke r1 --reason '...' --uid u-1`"),
    ("request", "DELETE", SCHEDULED, MALLORY, "(`kubectl jit revoke r1 --reason '...' --uid u-1`)"),
    ("request", "DELETE", SCHEDULED, PAULA, "`kubectl jit revoke r1 --reason '...' --uid u-1`"),
    ("request", "CANCEL", SCHEDULED, SRE, '`kubectl jit revoke r1 --reason "..." --uid u-1`'),
    ("grant", "CANCEL", ACTIVE, SRE, '`kubectl jit revoke r1 --reason "..." --uid u-1`'),
    ("grant", "DELETE", ACTIVE, SRE, "`kubectl jit revoke r1 --reason '...' --uid u-1`"),
    ("grant", "DELETE", ACTIVE, PAULA, "`kubectl jit revoke r1 --reason '...' --uid u-1`"),
]


@pytest.mark.parametrize(("what", "operation", "conditions", "who", "said"), CASES)
def test_a_refusal_that_says_to_revoke_pins_the_object(
    what: str, operation: str, conditions: list[dict[str, str]], who: Caller, said: str
) -> None:
    """CANCEL: `jitaccess.dev/revoked=true` set with no reason (a responder's, refused) or on a
    request whose access runs (its grant is revoked instead)."""
    old = request(conditions=conditions) if what == "request" else grant(conditions=conditions)
    old["metadata"]["uid"] = "u-1"
    new = with_annotations(old, jitaccess_dev__revoked="true") if operation == "CANCEL" else None
    review = on_request if what == "request" else on_grant
    refused(review("UPDATE" if new else "DELETE", old, new, who), said)

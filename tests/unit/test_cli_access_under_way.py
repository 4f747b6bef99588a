"""A request approved a moment ago whose grant the operator is still making (Identity Center slow, a
restart): `kubectl jit revoke --all` and `kubectl jit revoke NAME` wait for that grant and revoke it,
or say that the access was not ended and how to end it; never "nothing to revoke"."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from jitaccess.api import names
from jitaccess.cli import decisions
from jitaccess.cli import objects as o
from jitaccess.cli.errors import Disconnected, NotFound, Refused
from jitaccess.cli.kube import ApiError
from tests.unit.test_cli_commands import FakeApi, cond, err, grant, out, req, session, stored

REASON = "INC-9 leak"


class GrantingApi(FakeApi):
    """The operator makes the grant of `request` once the plugin has read its path `reads` times
    (None: never); `ends` turns the request `Failed` instead, at that read."""

    def __init__(self) -> None:
        super().__init__()
        self.made: dict[str, Any] | None = None
        self.reads = 0
        self.after: int | None = 2
        self.ends = False

    def get(self, path: str, **query: Any) -> dict[str, Any]:
        if self.made is not None and path == o.path(names.GRANTS, self.made["metadata"]["name"]):
            self.reads += 1
            if self.after is not None and self.reads >= self.after:
                name = self.made["metadata"]["name"]
                if self.ends:
                    failed = self.objects[o.path(names.REQUESTS, name)]
                    failed["status"]["conditions"] = [
                        cond("Ready", "False", "Failed", "not granted: no longer eligible")
                    ]
                else:
                    self.objects[path] = self.made
        return super().get(path, **query)


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> GrantingApi:
    monkeypatch.setattr(decisions, "GRANT_POLL_SECONDS", 0.001)
    return GrantingApi()


def approved(api: GrantingApi, name: str = "r-new", *, requester: str = "bob@example.com") -> dict[str, Any]:
    """bob's request, approved by paula, Ready Pending while the operator makes its grant (not made
    yet); the grant it will get, labelled with its uid, is `api.made`."""
    request = req(cond("Approved", "True", "Approved"), cond("Ready", "False", "Pending", "provisioning access"))
    request["metadata"]["name"] = name
    request["spec"]["requester"] = requester
    stored(api, names.REQUESTS, request)
    made = grant(name, "prod-eng-payments", "Provisioning", entitlement="prod-eng-payments", ownerTeam="payments")
    made["spec"]["user"] = requester
    made["metadata"].update(uid=f"g-{name}", labels={names.LABEL_REQUEST: request["metadata"]["uid"]})
    api.made = made
    return request


def ended(made: dict[str, Any]) -> list[dict[str, Any]]:
    """The watch event of `made` ended Revoked (the operator's confirmation)."""
    done = {**made, "status": {"conditions": [cond("Ready", "False", "Revoked")]}}
    return [{"type": "MODIFIED", "object": done}]


def patched(api: FakeApi, name: str) -> list[dict[str, Any]]:
    return [body for verb, (path, body) in [c for c in api.calls if c[0] == "patch"] if path.endswith(f"/{name}")]


# --- revoke --all --------------------------------------------------------------------------------


def test_revoke_all_waits_for_the_grant_of_an_approved_request_and_revokes_it(api: GrantingApi) -> None:
    """Without the wait, nothing was in reach when the passes ran: "nothing to revoke", exit 0, and
    bob's grant was made seconds later, his access running after an incident-wide revoke."""
    approved(api)
    assert api.made is not None
    api.watches = [ended(api.made)]
    s = session(api)
    assert decisions.revoke_all(s, decisions.Scope(), reason=REASON, wait=True, timeout=None) == 0, err(s)
    lines = out(s).splitlines()
    assert "AccessRequest r-new (bob@example.com, prod-eng-payments) is approved, its grant not made yet" in lines
    assert "revoked AccessGrant r-new (bob@example.com in Identity Center group prod-eng-payments)" in lines
    assert "1 grant revoked, 0 requests denied, 0 requests withdrawn, 0 extensions denied" in lines
    [revocation] = patched(api, "r-new")
    assert revocation["metadata"]["annotations"][names.ANNOTATION_REVOKE_REASON] == REASON


def test_revoke_all_grants_only_waits_for_it_too(api: GrantingApi) -> None:
    """--grants-only leaves requests as they are, but the grant about to be made is a grant."""
    approved(api)
    assert api.made is not None
    api.watches = [ended(api.made)]
    s = session(api)
    assert decisions.revoke_all(s, decisions.Scope(grants_only=True), reason=REASON, wait=True, timeout=None) == 0
    assert "revoked AccessGrant r-new (bob@example.com in Identity Center group prod-eng-payments)" in out(s)
    assert not [c for c in api.calls if c[0] == "patch" and "/accessrequests/" in c[1][0]], "the request is left as is"


def test_a_grant_not_made_in_time_is_named_as_not_ended_with_the_command(api: GrantingApi) -> None:
    approved(api)
    api.after = None  # the operator does not make it within the wait
    s = session(api)
    with pytest.raises(Refused) as refused:
        decisions.revoke_all(s, decisions.Scope(), reason=REASON, wait=True, timeout=timedelta(milliseconds=20))
    assert "1 approved request had no grant within" in refused.value.message
    # Pinned: run once that request was withdrawn and another asked under its name, it revokes nothing.
    assert "end it with `kubectl jit revoke r-new --uid uid-r-new --reason 'INC-9 leak'`" in refused.value.message
    assert (
        "not ended: AccessRequest r-new (bob@example.com) is approved, and its grant is not made yet: its access "
        "begins once it is"
    ) in err(s)
    assert out(s).splitlines()[-1].endswith("1 approved request not ended (no grant yet)")
    assert not patched(api, "r-new")

    # --no-wait: not waited for, named all the same.
    s = session(api)
    with pytest.raises(Refused, match=r"had no grant yet \(--no-wait\)"):
        decisions.revoke_all(s, decisions.Scope(), reason=REASON, wait=False, timeout=None)


def test_a_request_that_ends_without_its_grant_is_let_go(api: GrantingApi) -> None:
    approved(api)
    api.ends = True
    s = session(api)
    assert decisions.revoke_all(s, decisions.Scope(), reason=REASON, wait=True, timeout=None) == 0, err(s)
    assert (
        "AccessRequest r-new ended Failed (not granted: no longer eligible) before its grant was made: nothing to "
        "revoke"
    ) in out(s)


def test_a_denial_refused_as_approved_a_moment_before_is_access_under_way(api: GrantingApi) -> None:
    """lena's approval was stamped as the responder's denial came: the webhook refuses the denial
    ("already approved"), and the operator makes the grant a moment later. It was counted as a
    refusal of the responder's, and the grant left running."""
    request = approved(api)
    request["status"]["conditions"] = [cond("Ready", "False", "Pending", "waiting for approval")]
    request["metadata"]["annotations"] = {names.ANNOTATION_APPROVED: "true", names.ANNOTATION_APPROVED_BY: "lena"}
    api.patch_errors = [
        ApiError(403, "Forbidden", "this request was already approved by lena, and a decision is final")
    ]
    assert api.made is not None
    api.watches = [ended(api.made)]
    s = session(api)
    assert decisions.revoke_all(s, decisions.Scope(), reason=REASON, wait=True, timeout=None) == 0, err(s)
    assert "refused" not in err(s)
    assert "revoked AccessGrant r-new (bob@example.com in Identity Center group prod-eng-payments)" in out(s)


# --- revoke NAME -----------------------------------------------------------------------------------


def test_revoke_name_waits_for_the_grant_and_revokes_that_one(api: GrantingApi) -> None:
    """`kubectl jit revoke r-new` answered "not found" (or offered another grant), and the access
    began a moment later."""
    approved(api)
    assert api.made is not None
    api.watches = [ended(api.made)]
    s = session(api)
    assert decisions.revoke(s, "r-new", reason=REASON, wait=True, timeout=None) == 0, err(s)
    lines = out(s).splitlines()
    assert lines[0] == "accessrequest r-new is approved and its grant is being made: waiting for it, to revoke it"
    assert "revoked accessgrant r-new (bob@example.com in Identity Center group prod-eng-payments)" in lines
    [revocation] = patched(api, "r-new")
    assert revocation["metadata"]["uid"] == "g-r-new", "pinned: the grant made for this request"


def test_revoke_name_without_wait_or_in_time_says_to_run_it_again(api: GrantingApi) -> None:
    approved(api)
    with pytest.raises(Refused) as refused:
        decisions.revoke(session(api), "r-new", reason=REASON, wait=False, timeout=None)
    assert refused.value.message.startswith(
        "accessrequest r-new is approved and its grant is being made: there is no grant to revoke yet"
    )
    assert "run `kubectl jit revoke r-new --uid uid-r-new` again once it exists" in refused.value.message
    api.after = None
    with pytest.raises(Refused, match=r"its grant was not made within .*: nothing was revoked"):
        decisions.revoke(session(api), "r-new", reason=REASON, wait=True, timeout=timedelta(milliseconds=20))
    assert not patched(api, "r-new")


def test_revoke_name_of_a_pending_request_offers_no_other_grant(api: GrantingApi) -> None:
    """bob's pending request `alice-db-abcde` has no grant; alice's `alice-db-abcdf` is close: revoke
    said "did you mean alice-db-abcdf?", and running that would have ended alice's access."""
    pending = req(cond("Ready", "False", "Pending"), name="alice-db-abcde")
    pending["spec"]["requester"] = "bob@example.com"
    stored(api, names.REQUESTS, pending)
    stored(api, names.GRANTS, grant("alice-db-abcdf", "prod-eng-payments"))
    with pytest.raises(Refused) as refused:
        decisions.revoke(session(api), "alice-db-abcde", reason=REASON, wait=False, timeout=None)
    assert refused.value.message == (
        "accessrequest alice-db-abcde is Pending: it has no grant, so there is no access to revoke; one waiting for a "
        'decision is denied, `kubectl jit deny alice-db-abcde --uid uid-alice-db-abcde --reason "..."`. '
        "Nothing was revoked"
    )
    pending["spec"]["requester"] = "alice@example.com"
    with pytest.raises(Refused, match=r"your own request waiting for a decision is withdrawn, `kubectl jit withdraw"):
        decisions.revoke(session(api), "alice-db-abcde", reason=REASON, wait=False, timeout=None)
    # No request and no grant of the name: not found, as before.
    with pytest.raises(NotFound):
        decisions.revoke(session(api), "nothing-here", reason=REASON, wait=False, timeout=None)


def test_revoke_with_the_uid_of_a_request_under_way_revokes_its_grant(api: GrantingApi) -> None:
    """`--uid` of the request (as an approver's message gives it): its grant, made for that uid, is
    waited for and revoked, as for the bare name."""
    request = approved(api)
    assert api.made is not None
    api.watches = [ended(api.made)]
    s = session(api)
    uid = request["metadata"]["uid"]
    assert decisions.revoke(s, "r-new", reason=REASON, wait=True, timeout=None, uid=uid) == 0, err(s)
    assert [p["metadata"]["uid"] for p in patched(api, "r-new")] == ["g-r-new"]


def test_a_read_the_cluster_drops_while_waiting_is_tried_again(api: GrantingApi) -> None:
    approved(api)
    assert api.made is not None
    api.after = 3
    real_get, read = api.get, [0]
    dropped = [Disconnected("cannot reach https://cluster: Connection reset by peer")]

    def get(path: str, **query: Any) -> dict[str, Any]:
        if path == o.path(names.REQUESTS, "r-new"):
            read[0] += 1
            if read[0] == 2:  # the first read is revoke's own; the second, the wait's
                raise dropped.pop()
        return real_get(path, **query)

    api.get = get  # type: ignore[method-assign]
    api.watches = [ended(api.made)]
    s = session(api)
    assert decisions.revoke(s, "r-new", reason=REASON, wait=True, timeout=None) == 0, err(s)
    assert not dropped and "revoked accessgrant r-new" in out(s)

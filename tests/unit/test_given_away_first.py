"""Of two teams' objects that meet on one group (one grants it, the other names it as a group people
are in, or assigns it a catalog tier), the one made last is at fault and the other's grants go on:
payments naming ledger's own group as on call, stored past admission, does not stop every request
of ledger's Entitlement, while ledger-x granting payments-oncall (attack 140) stays granted to
nobody (`standing.Problems.given_away`, `standing._came_first`). And a stored refusal for access
given away is not lifted by a pass in which Identity Center did not answer for a name
(`catalog._group_policy`)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from jitaccess.api import names
from jitaccess.domain import standing
from jitaccess.errors import RetryLater
from jitaccess.handlers import catalog
from tests.unit.test_permissions import EXAMPLES
from tests.unit.test_standing import ENTITLEMENTS, Store, checked, ledger_x, ready, stored

OLD, NEW = "2026-01-01T00:00:00Z", "2026-06-01T00:00:00Z"


@pytest.fixture(autouse=True)
def _no_events(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(catalog, "record", lambda *_, **__: None)


def made(obj: dict[str, Any], at: str, generation: int = 1) -> dict[str, Any]:
    """`obj` created `at`, its spec changed `generation - 1` times since."""
    obj = copy.deepcopy(obj)
    obj["metadata"] = {**obj["metadata"], "creationTimestamp": at, "generation": generation}
    return obj


def payments_naming_ledger(at: str) -> dict[str, Any]:
    """prod-eng-payments, made `at`, naming ledger's granted group as one people are in (stored past
    admission, which refuses it)."""
    payments = made(stored("prod-eng-payments"), at)
    payments["spec"]["eligibility"]["identityCenterGroups"].append("prod-eng-ledger")
    return payments


def among(*objs: dict[str, Any]) -> list[dict[str, Any]]:
    """The example Entitlements, `objs` in place of those of their names."""
    mine = {o["metadata"]["name"]: o for o in objs}
    return [mine.get(e["metadata"]["name"], e) for e in ENTITLEMENTS] + [
        o for o in objs if o["metadata"]["name"] not in {e["metadata"]["name"] for e in ENTITLEMENTS}
    ]


def problems(obj: dict[str, Any], *others: dict[str, Any], catalogs: Any = EXAMPLES) -> standing.Problems:
    return standing.problems(obj, catalogs, among(*others), {})


def test_another_team_naming_an_older_entitlements_group_is_the_one_granted_to_nobody() -> None:
    """The reviewer's scenario: ledger's own Entitlement was refused GIVES_AWAY for what payments
    wrote, and every ledger request with it; payments' object refused nothing."""
    ledger = made(stored("prod-eng-ledger"), OLD)
    payments = payments_naming_ledger(NEW)
    of_ledger = problems(ledger, payments)
    assert of_ledger.given_away == []
    (said,) = of_ledger.found
    assert "Entitlement prod-eng-payments, of team payments, was made after Entitlement prod-eng-ledger" in said
    assert "it is the one to fix, and grants of prod-eng-ledger go on" in said
    of_payments = problems(payments, ledger)
    (taken,) = of_payments.given_away
    assert "names 'prod-eng-ledger', which is the group of Entitlement prod-eng-ledger" in taken
    assert "Entitlement prod-eng-ledger, of team ledger, granted the group before" in taken


def test_an_entitlement_granting_a_group_another_team_named_first_stays_granted_to_nobody() -> None:
    """Attack 140: ledger-x, newer, granting payments-oncall, which payments names as on call."""
    payments = made(stored("prod-eng-payments"), OLD)
    payments["spec"]["approval"]["autoApproveIdentityCenterGroups"] = ["payments-oncall"]
    ledger = made(ledger_x(groupName="payments-oncall"), NEW)
    away = problems(ledger, payments).given_away
    assert any("on call for Entitlement prod-eng-payments," in p for p in away), away
    assert problems(payments, ledger).given_away == []


def test_the_group_of_an_entitlement_whose_grants_go_on_stays_drift_scanned() -> None:
    """payments' younger naming of prod-eng-ledger is refused, and ledger's grants go on: that
    naming holds nobody standing, so the group is still scanned (else a member added by hand stayed
    for as long as payments' object did). Named first, it is standing, as before."""
    resolved = {"prod-eng-ledger": "id-ledger", "prod-eng-payments": "id-payments"}

    def standing_ids(ledger: dict[str, Any], payments: dict[str, Any]) -> set[str]:
        return standing.standing_ids(EXAMPLES, among(ledger, payments), resolved)

    assert "id-ledger" not in standing_ids(made(stored("prod-eng-ledger"), OLD), payments_naming_ledger(NEW))
    assert "id-ledger" in standing_ids(made(stored("prod-eng-ledger"), NEW), payments_naming_ledger(OLD))
    assert "id-ledger" in standing_ids(made(stored("prod-eng-ledger"), OLD, generation=2), payments_naming_ledger(NEW))


def test_when_it_is_not_known_which_came_first_the_granting_one_is_refused() -> None:
    """Its spec changed since its creation (the group may have been written after the other's), the
    other's date or its own unknown, or both made at once: refused, as before the rule (a team that
    changed an old Entitlement's group must not pass for the first)."""
    payments = payments_naming_ledger(NEW)
    for ledger in (
        made(stored("prod-eng-ledger"), OLD, generation=2),
        made(stored("prod-eng-ledger"), NEW),
        stored("prod-eng-ledger"),
    ):
        assert problems(ledger, payments).given_away, ledger["metadata"]
        assert problems(payments, ledger).given_away == [], ledger["metadata"]
    # payments' date unknown
    assert problems(
        made(stored("prod-eng-ledger"), OLD), stored("prod-eng-payments") | {"spec": payments["spec"]}
    ).given_away


def test_its_own_teams_objects_never_excuse_it() -> None:
    """A ledger Entitlement made later naming prod-eng-ledger as on call: still ledger's to fix."""
    ledger = made(stored("prod-eng-ledger"), OLD)
    other = made(ledger_x(groupName="ledger-x"), NEW)
    other["spec"]["approval"]["autoApproveIdentityCenterGroups"] = ["prod-eng-ledger"]
    assert problems(ledger, other).given_away
    assert problems(other, ledger).given_away == []


def test_a_catalog_of_another_team_meeting_the_group_refuses_the_entitlement_whichever_came_first() -> None:
    """payments' catalog assigning its baseline (or production tier) to a group ledger-x granted
    before: no pass refuses a catalog (it assigns every tier it lists), so excusing ledger-x would
    hand its grantees payments' permission set. ledger-x is refused, newer catalog or older."""
    ledger = made(ledger_x(groupName="eng-payments"), "2026-11-23T12:00:00Z")
    for when in ("2026-12-01T00:00:00Z", OLD):
        catalogs = [made(c, when) for c in EXAMPLES]
        refused = problems(ledger, catalogs=catalogs)
        assert any("PermissionCatalog payments's baseline group" in p for p in refused.given_away), when
        assert not [p for p in refused.found if "is the one to fix" in p], when


# --- a pass Identity Center does not answer in keeps the refusal ------------------------------------


class Throttled(Store):
    """Identity Center that does not answer for one group name."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name

    def resolve_group(self, name: str) -> str:
        if name != self.name:
            return super().resolve_group(name)
        raise RetryLater("throttled", operation="GetGroupId")


def test_a_refusal_for_access_given_away_stands_through_a_pass_a_name_went_unanswered() -> None:
    """ledger-x grants payments-oncall by its GroupId: only the id payments-oncall resolves to shows it.
    A pass where that lookup is throttled compared by name, found nothing, and wrote `Resolved`:
    ledger-x's requests were granted (into payments' on-call group) until the next resync."""
    by_id = ledger_x(groupId="id-payments-oncall")
    cluster, _ = checked(by_id)
    status, reason, message = ready(cluster)
    assert (status, reason) == ("False", names.POLICY_REFUSED) and message.startswith(standing.GIVES_AWAY)
    again, _ = checked({**by_id, "status": cluster.obj["status"]}, store=Throttled("payments-oncall"))
    assert ready(again) == (status, reason, message)
    # Never refused, it is not refused for a name unanswered: that pass says what it found.
    fresh, _ = checked(by_id, store=Throttled("payments-oncall"))
    assert ready(fresh)[:2] == ("True", names.RESOLVED)

"""A group is standing or granted, never both, among Entitlements too, and a team's Entitlement
gives only its own team's permission sets (`domain.standing`, docs/security.md attacks 140, 141):
refused at admission, and said (`PolicyRefused`) of one stored before the rule, whose groups
people hold standing the drift scan then leaves alone."""

from __future__ import annotations

import asyncio
import copy
from typing import Any, cast

import kopf
import pytest
import yaml

from jitaccess.adapters.identitycenter import IdentityCenter
from jitaccess.adapters.kube import Kube
from jitaccess.api import names, wire
from jitaccess.api.models import Entitlement
from jitaccess.domain import admission as adm
from jitaccess.domain import standing
from jitaccess.domain.admission import Admit, Refusal
from jitaccess.errors import NotFound, RetryLater
from jitaccess.handlers import admission as admission_handlers
from jitaccess.handlers import catalog
from jitaccess.handlers.runtime import Runtime
from jitaccess.settings import Settings
from tests.unit.test_permissions import EXAMPLES, GITOPS, OPERATOR, REPO

ENTITLEMENTS = [
    d
    for file in ("02-entitlements.yaml", "03-pci.yaml", "05-assignment.yaml")
    for d in yaml.safe_load_all((REPO / "examples" / file).read_text())
    if d and d["kind"] == "Entitlement"
]
ARN = "arn:aws:sso:::permissionSet/ssoins-0123456789abcdef/ps-"


def stored(name: str) -> dict[str, Any]:
    return copy.deepcopy(next(e for e in ENTITLEMENTS if e["metadata"]["name"] == name))


def payments_on_call() -> list[dict[str, Any]]:
    """The example Entitlements, prod-eng-payments auto-approving whoever is in payments-oncall."""
    found = copy.deepcopy(ENTITLEMENTS)
    payments = next(e for e in found if e["metadata"]["name"] == "prod-eng-payments")
    payments["spec"]["approval"]["autoApproveIdentityCenterGroups"] = ["payments-oncall"]
    return found


def ledger_x(**target: Any) -> dict[str, Any]:
    """A ledger Entitlement, auto-approved for the ledger team, granting `target`."""
    return {
        "apiVersion": "jitaccess.dev/v1alpha1",
        "kind": names.ENTITLEMENT,
        "metadata": {"name": "ledger-x", "generation": 1},
        "spec": {"owner": "ledger", "identityCenter": target, "approval": {"autoApproveOwnerTeam": True}},
    }


def reviewed(new: dict[str, Any], old: dict[str, Any] | None = None, **given: Any) -> Admit | Refusal:
    given.setdefault("catalogs", EXAMPLES)
    given.setdefault("entitlements", payments_on_call())
    return adm.review_catalog("UPDATE" if old else "CREATE", old, new, GITOPS, operator=OPERATOR, **given)


def refused(verdict: Admit | Refusal, *said: str) -> str:
    assert isinstance(verdict, Refusal) and verdict.code == 422, verdict
    for words in said:
        assert words in verdict.message, verdict.message
    return verdict.message


# --- attack 140: one Entitlement's granted group, another's standing group ---------------------------


def test_the_examples_are_admitted_among_each_other() -> None:
    for entitlement in payments_on_call():
        assert standing.entitlement_problems(entitlement, EXAMPLES, payments_on_call()) == []
        assert reviewed(entitlement) == Admit()


@pytest.mark.parametrize(
    ("group", "said"),
    [
        (
            "payments-oncall",
            "spec.identityCenter.groupName 'payments-oncall' is a group Entitlement prod-eng-payments names in "
            "spec.approval.autoApproveIdentityCenterGroups, whose members hold it standing: a grant of Entitlement "
            "ledger-x would make its grantee on call for Entitlement prod-eng-payments, approved at once, and the "
            "drift scan of ledger-x would remove every member no grant backs; name a group that only grants of "
            "ledger-x fill",
        ),
        (
            "Payments-OnCall ",
            "is a group Entitlement prod-eng-payments names in spec.approval",
        ),  # as a reviewer reads it
        (
            "pci-secure-code-trained",
            "is a group Entitlement prod-eng-payments names in spec.eligibility.identityCenterGroups, whose members "
            "hold it standing: a grant of Entitlement ledger-x would make its grantee eligible for Entitlement "
            "prod-eng-payments",
        ),
    ],
)
def test_an_entitlement_never_grants_a_group_another_names_as_one_people_are_in(group: str, said: str) -> None:
    """ledger-x granting payments-oncall was admitted: a ledger member auto-approved into it was then
    auto-approved "on call" into payments' production, and ledger-x's drift scan emptied the group of
    the people really on call."""
    refused(reviewed(ledger_x(groupName=group)), said)
    assert reviewed(ledger_x(groupName="ledger-x")) == Admit()


@pytest.mark.parametrize("field", standing.STANDING_FIELDS)
def test_an_entitlement_never_grants_a_group_it_names_itself_as_one_people_are_in(field: str) -> None:
    own = ledger_x(groupName="ledger-oncall")
    part, key = field.split(".")
    own["spec"].setdefault(part, {})[key] = ["LEDGER-oncall"]
    refused(
        reviewed(own, catalogs=[], entitlements=[]),
        f"spec.identityCenter.groupName 'ledger-oncall' is a group Entitlement ledger-x names in spec.{field}",
        "a grant of Entitlement ledger-x would make its grantee",
    )


@pytest.mark.parametrize(
    ("group", "said"),
    [
        (
            "prod-eng-ledger",
            "spec.eligibility.identityCenterGroups names 'prod-eng-ledger', which is the group of Entitlement "
            "prod-eng-ledger (team ledger), which people hold only through a grant: whoever is granted it would be "
            "eligible for Entitlement prod-eng-payments, and the drift scan removes everyone else in it; name a "
            "group people are in standing (one the identity provider keeps), or give Entitlement prod-eng-ledger a "
            "group of its own",
        ),
        ("prod-eng-payments-pci", "which is the group of Entitlement prod-eng-payments-pci (team pci)"),
    ],
)
def test_an_entitlement_never_names_a_group_grants_fill_as_one_people_are_in(group: str, said: str) -> None:
    """The other way round, whichever GitOps applies first; and checked when only that field changes."""
    old = stored("prod-eng-payments")
    new = copy.deepcopy(old)
    new["spec"]["eligibility"]["identityCenterGroups"].append(group)
    refused(reviewed(new, old), said)


def test_nor_a_catalogs_production_group() -> None:
    old = stored("prod-eng-payments-pci")
    new = copy.deepcopy(old)
    new["spec"]["approval"]["autoApproveIdentityCenterGroups"] = ["prod-eng-ledger"]
    refused(
        reviewed(new, old, entitlements=[]),
        "spec.approval.autoApproveIdentityCenterGroups names 'prod-eng-ledger', which is PermissionCatalog ledger's "
        "production group, which people hold only through a grant: whoever is granted it would be on call for "
        "Entitlement prod-eng-payments-pci, approved at once",
    )


def test_the_check_runs_when_any_field_it_judges_changes_and_only_then() -> None:
    bad = ledger_x(groupName="payments-oncall")
    # Stored before the rule: a change elsewhere (its labels, its durations) is not held up by it.
    relabelled = copy.deepcopy(bad)
    relabelled["metadata"]["labels"] = {"x": "y"}
    relabelled["spec"]["maxDuration"] = "2h"
    assert reviewed(relabelled, bad) == Admit()
    # Its owner changed: whose grants fill the group changed.
    owned = copy.deepcopy(bad)
    owned["spec"]["owner"] = "pci"
    refused(reviewed(owned, bad), "is a group Entitlement prod-eng-payments names")
    assert adm.entitlement_groups_written(bad, owned) and not adm.entitlement_groups_written(bad, relabelled)


def test_a_group_named_by_id_is_compared_by_the_ids_its_names_resolve_to() -> None:
    """ledger-x naming payments-oncall by its GroupId: no stored object records that id, so only the
    ids Identity Center resolves the names to (`resolved`) can match it."""
    by_id = ledger_x(groupId="g-oncall")
    assert standing.by_id_alone(by_id, [])
    assert not standing.by_id_alone(ledger_x(groupName="x"), ENTITLEMENTS)
    assert {"payments-oncall", "pci-secure-code-trained", "prod-eligible"} <= standing.unresolved(
        EXAMPLES, payments_on_call()
    )
    assert reviewed(by_id) == Admit()
    refused(
        reviewed(by_id, resolved={"payments-oncall": "g-oncall"}),
        "spec.identityCenter.groupId 'g-oncall' is a group Entitlement prod-eng-payments names in "
        "spec.approval.autoApproveIdentityCenterGroups",
    )
    # The other way round: a group named as one people are in, and another Entitlement's group by id.
    others = [*payments_on_call(), by_id]
    old = stored("prod-eng-payments")
    new = copy.deepcopy(old)
    new["spec"]["eligibility"]["identityCenterGroups"].append("ledger-x-group")
    assert reviewed(new, old, entitlements=others) == Admit()
    refused(
        reviewed(new, old, entitlements=others, resolved={"ledger-x-group": "g-oncall"}),
        "spec.eligibility.identityCenterGroups names 'ledger-x-group', which is the group of Entitlement ledger-x "
        "(team ledger, by groupId g-oncall)",
    )


class Asking:
    """Identity Center as the webhook asks it: each name's id, or no answer."""

    def __init__(self, answers: bool = True) -> None:
        self.answers, self.asked = answers, []

    def resolve_group(self, name: str) -> str:
        self.asked.append(name)
        if not self.answers:
            raise RetryLater("throttled", operation="GetGroupId")
        return f"g-{name}"


def test_the_webhook_asks_identity_center_only_for_a_group_named_by_id() -> None:
    asking = Asking()
    rt = Runtime(Settings(), cast(IdentityCenter, asking), cast(Kube, None))
    entitlements = payments_on_call()

    def ids(new: dict[str, Any]) -> dict[str, str]:
        return asyncio.run(admission_handlers._group_ids(rt, new, EXAMPLES, entitlements))

    assert ids(ledger_x(groupName="payments-oncall")) == {} and asking.asked == []
    found = ids(ledger_x(groupId="g-payments-oncall"))
    assert found["payments-oncall"] == "g-payments-oncall" and "prod-eligible" in found
    assert isinstance(reviewed(ledger_x(groupId="g-payments-oncall"), resolved=found), Refusal)
    # Identity Center not answering: refused, try again (compared by name, the id would pass as any
    # standing group, and the operator's PolicyRefused found later refuses its requests only from then on).
    rt = Runtime(Settings(), cast(IdentityCenter, Asking(answers=False)), cast(Kube, None))
    with pytest.raises(kopf.AdmissionError, match=r"could not resolve group names .*try again") as refused:
        ids(ledger_x(groupId="g-payments-oncall"))
    assert refused.value.code == 503
    assert ids(ledger_x(groupName="ledger-x")) == {}  # nothing named by id: nothing asked, nothing refused


# --- attack 141: another team's permission set, by account assignment ------------------------------


def assigned(permission_set: dict[str, str], owner: str = "ledger") -> dict[str, Any]:
    entitlement = stored("payments-prod-direct")
    entitlement["metadata"]["name"] = "ledger-direct"
    entitlement["spec"]["owner"] = owner
    entitlement["spec"]["identityCenter"]["accountAssignment"]["permissionSet"] = permission_set
    return entitlement


def provisioned(catalog: dict[str, Any], **arns: str) -> dict[str, Any]:
    catalog = copy.deepcopy(catalog)
    catalog["status"] = {tier: {"permissionSetArn": arn} for tier, arn in arns.items()}
    return catalog


@pytest.mark.parametrize("tier", ["production", "baseline"])
def test_an_assignment_of_another_teams_catalog_tier_is_refused(tier: str) -> None:
    """ledger-direct assigning payments' production permission set to ledger's members was admitted
    and Ready: attack 112 compared groups only, and account-assignment mode names none."""
    refused(
        reviewed(assigned({"catalog": "payments", "tier": tier})),
        f"spec.identityCenter.accountAssignment.permissionSet names catalog:payments/{tier}, a tier of "
        f"PermissionCatalog payments: grants of team ledger would give the {tier} permissions of team payments; "
        "name a tier of PermissionCatalog ledger, team ledger's own",
    )
    # Whether or not that catalog is stored: a catalog is named after its team.
    refused(reviewed(assigned({"catalog": "payments", "tier": tier}), catalogs=[]), "catalog:payments")
    assert reviewed(assigned({"catalog": "ledger", "tier": tier})) == Admit()
    assert reviewed(stored("payments-prod-direct")) == Admit()


def test_an_assignment_of_another_teams_permission_set_by_its_arn_is_refused() -> None:
    catalogs = [
        provisioned(next(c for c in EXAMPLES if c["metadata"]["name"] == name), production=f"{ARN}{name}-prod-0000")
        for name in ("payments", "ledger")
    ]
    refused(
        reviewed(assigned({"arn": f"{ARN}payments-prod-0000"}), catalogs=catalogs),
        f"spec.identityCenter.accountAssignment.permissionSet.arn '{ARN}payments-prod-0000' is PermissionCatalog "
        "payments's production permission set (status.production.permissionSetArn): grants of team ledger would "
        "give the production permissions of team payments",
    )
    assert reviewed(assigned({"arn": f"{ARN}ledger-prod-0000"}), catalogs=catalogs) == Admit()
    assert reviewed(assigned({"arn": f"{ARN}elsewhere-0000"}), catalogs=catalogs) == Admit()  # no catalog's
    # Its owner changed to another team: checked again.
    own = assigned({"catalog": "payments", "tier": "production"}, owner="payments")
    moved = copy.deepcopy(own)
    moved["spec"]["owner"] = "ledger"
    refused(reviewed(moved, own), "grants of team ledger would give the production permissions of team payments")


# --- stored before the rule: Ready says it, and the drift scan leaves standing groups alone --------


class Store:
    """An Identity Center where every group resolves (to `id-<name>`, an id to itself) and has
    members: a listing of one is recorded."""

    identity_store_id = "d-0000000000"

    def __init__(self) -> None:
        self.listed: list[str] = []

    def resolve_group(self, name: str) -> str:
        return name if name.startswith("id-") else f"id-{name}"

    def group_members(self, group_id: str) -> dict[str, str]:
        self.listed.append(group_id)
        return {}


class Cluster:
    """One stored Entitlement (`update_status`'s read-modify-write) and the catalogs listed."""

    def __init__(self, obj: dict[str, Any], catalogs: list[dict[str, Any]], entitlements: list[dict[str, Any]]) -> None:
        self.obj, self.catalogs, self.entitlements = obj, catalogs, entitlements

    def list(self, plural: str, *_: Any, **__: Any) -> list[dict[str, Any]]:
        return copy.deepcopy({names.CATALOGS: self.catalogs, names.ENTITLEMENTS: self.entitlements}[plural])

    def get(self, plural: str, name: str) -> dict[str, Any] | None:
        return next((c for c in copy.deepcopy(self.catalogs) if wire.name_of(c) == name), None)

    def update_status(self, plural: str, name: str, change: Any, *_: Any, **__: Any) -> dict[str, Any] | None:
        fields = change(copy.deepcopy(self.obj))
        if fields is not None:
            self.obj.setdefault("status", {}).update(fields)
        return copy.deepcopy(self.obj)


def checked(
    obj: dict[str, Any], catalogs: list[dict[str, Any]] = EXAMPLES, store: Store | None = None
) -> tuple[Cluster, Store]:
    """`obj` checked by the operator among the example Entitlements (prod-eng-payments on call
    through payments-oncall) and `catalogs`, the drift scan on, in `store` (a `Store` by default)."""
    obj = {**copy.deepcopy(obj), "metadata": {**obj["metadata"], "uid": "uid-x"}}
    store, cluster = store or Store(), Cluster(obj, catalogs, payments_on_call())
    rt = Runtime(Settings(remove_unbacked_members=True), cast(IdentityCenter, store), cast(Kube, cluster))
    teams = {team: [{"approvers": ["paula@example.com"]}] for team in ("payments", "ledger", "pci")}
    index = {e["metadata"]["name"]: [e] for e in payments_on_call()}
    body = kopf.Body(copy.deepcopy(obj))
    asyncio.run(catalog.check_entitlement(body=body, memo=kopf.Memo(runtime=rt), teams=teams, entitlements=index))
    return cluster, store


def ready(cluster: Cluster) -> tuple[str, str, str]:
    (found,) = [c for c in cluster.obj["status"]["conditions"] if c["type"] == names.READY]
    return found["status"], found["reason"], found["message"]


@pytest.fixture(autouse=True)
def _no_events(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(catalog, "record", lambda *_, **__: None)


@pytest.mark.parametrize("target", [{"groupName": "payments-oncall"}, {"groupId": "id-payments-oncall"}])
def test_a_stored_entitlement_granting_a_standing_group_is_not_ready_and_its_scan_leaves_the_group(
    target: dict[str, str],
) -> None:
    """Stored while the webhooks were down, or naming by id what admission knew by name only: the
    operator, which resolves every name, says why admission refuses it, and does not empty the
    group of the people on call."""
    cluster, store = checked(ledger_x(**target))
    status, reason, message = ready(cluster)
    assert (status, reason) == ("False", names.POLICY_REFUSED)
    # Said first: its grants would make their grantees on call for payments, and nobody is granted it.
    assert message.startswith(f"{standing.GIVES_AWAY}: admission refuses this spec now, and it was stored before")
    assert "is a group Entitlement prod-eng-payments names in spec.approval.autoApproveIdentityCenterGroups" in message
    assert "requests for it are refused, no grant of it begins" in message
    assert "no drift scan removes members of a group an Entitlement names as one people are in" in message
    assert "id-payments-oncall" not in store.listed
    # Its own group, granted only: scanned, and Ready.
    cluster, store = checked(ledger_x(groupName="ledger-x"))
    assert ready(cluster)[:2] == ("True", names.RESOLVED)
    assert store.listed == ["id-ledger-x"]


def test_a_stored_entitlement_naming_a_granted_group_as_one_people_are_in_is_not_ready() -> None:
    payments = stored("prod-eng-payments")
    payments["spec"]["eligibility"]["identityCenterGroups"].append("prod-eng-ledger")
    cluster, _ = checked(payments)
    status, reason, message = ready(cluster)
    assert (status, reason) == ("False", names.POLICY_REFUSED)
    assert "spec.eligibility.identityCenterGroups names 'prod-eng-ledger', which is the group of Entitlement" in message
    # Who its owner team lets in is its own to say: its requests are not refused for it.
    assert message.startswith("admission refuses this spec now") and "its grants are made as before" in message


def test_a_stored_assignment_of_another_teams_permission_set_is_not_ready() -> None:
    cluster, _ = checked(assigned({"catalog": "payments", "tier": "production"}))
    status, reason, message = ready(cluster)
    assert (status, reason) == ("False", names.POLICY_REFUSED)
    assert "grants of team ledger would give the production permissions of team payments" in message
    assert message.startswith(standing.GIVES_AWAY)


def test_a_deleted_entitlements_scan_finds_the_standing_groups_itself() -> None:
    """The scan of a deleted Entitlement, which no check passes them to (`_release`)."""
    obj = ledger_x(groupName="payments-oncall")
    store, cluster = Store(), Cluster(obj, EXAMPLES, payments_on_call())
    rt = Runtime(Settings(remove_unbacked_members=True), cast(IdentityCenter, store), cast(Kube, cluster))
    catalog._watch(rt, Entitlement.model_validate(obj), ("payments-oncall", "id-payments-oncall"))
    assert store.listed == []
    # A catalog's baseline group, as the stored catalogs name it: people hold it standing too.
    catalog._watch(rt, Entitlement.model_validate(obj), ("eng-payments", "id-eng-payments"))
    assert store.listed == []
    catalog._watch(rt, Entitlement.model_validate(obj), ("ledger-x", "id-ledger-x"))
    assert store.listed == ["id-ledger-x"]


# --- a GroupId where a group's DisplayName goes -----------------------------------------------------

#: The GroupIds Identity Center gives the groups the tests below name.
UUIDS = {
    "payments-oncall": "9a67f2b4-1011-4f1e-8c1e-0000000000a1",
    "prod-eng-payments": "9067642ac7-9a67f2b4-1011-4f1e-8c1e-0000000000b2",
}


class ByUuid(Store):
    """Identity Center with GroupIds of their real form: a name resolves to its id, an id to itself."""

    def resolve_group(self, name: str) -> str:
        return name if standing.groupids.looks_like_group_id(name) else UUIDS.get(name, f"id-{name}")


def test_what_looks_like_a_group_id() -> None:
    assert standing.groupids.looks_like_group_id(UUIDS["payments-oncall"])
    assert standing.groupids.looks_like_group_id(UUIDS["prod-eng-payments"])  # with its store's prefix
    assert not standing.groupids.looks_like_group_id("payments-oncall")
    assert not standing.groupids.looks_like_group_id("g-oncall")
    # DisplayNames of a GroupId's length and dashes, but not hex in its 8-4-4-4-12 layout.
    assert not standing.groupids.looks_like_group_id("jitaccess-production-admins-eu-west1")
    assert not standing.groupids.looks_like_group_id("platform-jitaccess-production-admins-eu-west1")
    assert standing.groupids.looks_like_group_id(UUIDS["payments-oncall"].upper())


@pytest.mark.parametrize(
    ("field", "said"),
    [
        ("identityCenter.groupName", "name it by spec.identityCenter.groupId"),
        ("eligibility.identityCenterGroups", "name the group by its DisplayName"),
        ("approval.autoApproveIdentityCenterGroups", "name the group by its DisplayName"),
    ],
)
def test_an_entitlement_naming_a_group_by_its_id_where_its_name_goes_is_refused(field: str, said: str) -> None:
    """ledger-x with `groupName: <payments-oncall's GroupId>` was admitted (compared by name, it is no
    group anyone names), and Identity Center granted payments-oncall: its grantees were on call for
    prod-eng-payments. Or an on-call group named by id made prod-eng-payments' group standing."""
    new = ledger_x(groupName="ledger-x")
    part, key = field.split(".")
    value = UUIDS["payments-oncall"]
    new["spec"].setdefault(part, {})[key] = value if key == "groupName" else [value]
    refused(reviewed(new), f"spec.{field}: '{value}' is a GroupId, not a group's DisplayName", said)
    # One stored so before the rule: a change elsewhere of the fields judged is not held up by it.
    moved = copy.deepcopy(new)
    moved["spec"]["approval"]["autoApproveOwnerTeam"] = False
    moved["spec"]["owner"] = "pci"
    verdict = reviewed(moved, new, entitlements=[])
    assert isinstance(verdict, Admit) or "GroupId" not in verdict.message


def test_a_catalog_naming_a_tiers_group_by_its_id_is_refused() -> None:
    catalog = copy.deepcopy(next(c for c in EXAMPLES if c["metadata"]["name"] == "ledger"))
    catalog["spec"]["production"]["groupName"] = UUIDS["prod-eng-payments"]
    verdict = permission_review(catalog)
    assert isinstance(verdict, Refusal), verdict
    assert (
        f"spec.production.groupName: '{UUIDS['prod-eng-payments']}' is a GroupId, not a group's DisplayName"
        in verdict.message
    )
    assert permission_review(catalog, old=catalog) == Admit()  # nothing written


def permission_review(catalog: dict[str, Any], old: dict[str, Any] | None = None) -> Admit | Refusal:
    from jitaccess.domain import permissions

    verdict = permissions.review(
        "UPDATE" if old else "CREATE", old, catalog, GITOPS, operator=OPERATOR, catalogs=EXAMPLES, entitlements=[]
    )
    return cast("Admit | Refusal", verdict)


def test_a_group_id_stored_where_a_name_goes_is_known_by_that_id() -> None:
    """Stored before the rule: the operator knows each such group by its id, so it says why the
    Entitlement is refused, and keeps a standing group named so out of the drift scan."""
    oncall, payments = UUIDS["payments-oncall"], UUIDS["prod-eng-payments"]
    cluster, store = checked(ledger_x(groupName=oncall), store=ByUuid())
    status, reason, message = ready(cluster)
    assert (status, reason) == ("False", names.POLICY_REFUSED), message
    assert "is a group Entitlement prod-eng-payments names in spec.approval.autoApproveIdentityCenterGroups" in message
    assert oncall not in store.listed
    # An on-call group named by prod-eng-payments' group's id: that group is standing to the scan,
    # and the Entitlement naming it so is refused.
    ledger = stored("prod-eng-ledger")
    ledger["spec"]["approval"]["autoApproveIdentityCenterGroups"] = [payments]
    entitlements = [*payments_on_call(), ledger]
    assert payments in standing.standing_ids(EXAMPLES, entitlements, {})
    assert "prod-eng-payments" in standing.unresolved(EXAMPLES, entitlements)
    assert standing.by_id_alone(stored("prod-eng-payments"), entitlements)
    found = standing.entitlement_problems(ledger, EXAMPLES, entitlements, {"prod-eng-payments": payments})
    assert any("is the group of Entitlement prod-eng-payments" in p for p in found), found
    # A catalog's baseline group named by its id: known by it too.
    catalog = copy.deepcopy(next(c for c in EXAMPLES if c["metadata"]["name"] == "ledger"))
    catalog["spec"]["baseline"]["groupName"] = oncall
    assert standing.standing_ids([catalog], [], {}) == {oncall}


# --- a refusal by GroupId holds from one resync to the next ------------------------------------------


def passes(obj: dict[str, Any], count: int, store: Store | None = None) -> list[tuple[str, str, Any]]:
    """`obj` checked `count` times in a row, each pass seeing what the last one stored: its `Ready`
    reason and status.groupId after each."""
    store = store or Store()
    cluster = Cluster({**copy.deepcopy(obj), "metadata": {**obj["metadata"], "uid": "uid-x"}}, EXAMPLES, [])
    rt = Runtime(Settings(remove_unbacked_members=True), cast(IdentityCenter, store), cast(Kube, cluster))
    teams = {team: [{"approvers": ["paula@example.com"]}] for team in ("payments", "ledger", "pci")}
    index = {e["metadata"]["name"]: [e] for e in payments_on_call()}
    seen = []
    for _ in range(count):
        body = kopf.Body(copy.deepcopy(cluster.obj))
        asyncio.run(catalog.check_entitlement(body=body, memo=kopf.Memo(runtime=rt), teams=teams, entitlements=index))
        seen.append((ready(cluster)[1], ready(cluster)[0], cluster.obj["status"].get("groupId")))
    return seen


def test_a_refusal_found_by_group_id_stays_from_one_pass_to_the_next() -> None:
    """ledger-x's groupName is another spelling of payments-oncall (the same GroupId): it was Ready at
    the first pass, PolicyRefused at the second (its status.groupId then trusted), Ready again at the
    third (a PolicyRefused made that id untrusted), and so on at every resync."""
    seen = passes(ledger_x(groupName="id-payments-oncall"), 3)
    assert seen == [(names.POLICY_REFUSED, "False", "id-payments-oncall")] * 3


def test_the_group_id_a_policy_refused_entitlement_resolved_is_its_groups() -> None:
    """As the other Entitlements' checks and admission see it: `PolicyRefused` is written with the
    id its group resolved to, or with none (`test_a_group_not_found_leaves_no_group_id_behind`)."""
    stored = {"metadata": {"generation": 1}, "spec": {"identityCenter": {"groupName": "x"}}}
    stored["status"] = {
        "groupId": "id-x",
        "conditions": [{"type": names.READY, "reason": names.POLICY_REFUSED, "observedGeneration": 1}],
    }
    assert standing.groupids.group_id(stored) == "id-x"


class Gone(Store):
    """Identity Center where the group `gone` no longer exists."""

    def resolve_group(self, name: str) -> str:
        if name == "gone":
            raise NotFound("no such group", operation="GetGroupId")
        return super().resolve_group(name)


def test_a_group_not_found_leaves_no_group_id_behind() -> None:
    """The id a group that no longer resolves had is no current group's: it is cleared, so that a
    `PolicyRefused` written meanwhile does not make it trusted."""
    obj = ledger_x(groupName="gone")
    obj["status"] = {"groupId": "id-gone-long-ago"}
    assert passes(obj, 1, Gone()) == [(names.GROUP_NOT_FOUND, "False", None)]


# --- one group name Identity Center does not resolve stops no Entitlement's check -----------------


class Flaky(Store):
    """Identity Center that does not answer for `prod-eligible` (throttled), and finds no group
    `no-such-group`: each name asked is recorded."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[str] = []

    def resolve_group(self, name: str) -> str:
        self.asked.append(name)
        if name == "prod-eligible":
            raise RetryLater("throttled", operation="GetGroupId")
        if name == "no-such-group":
            raise NotFound("no such group", operation="GetGroupId")
        return super().resolve_group(name)


def test_a_standing_name_identity_center_does_not_resolve_leaves_it_unknown_and_the_check_goes_on() -> None:
    """Every Entitlement's check resolves every Entitlement's eligibility and on-call names: one of
    them throttled raised before `Ready` of every Entitlement, the deleted ones' too. `Ready` is
    written; the drift scan waits for the next pass: a standing group not known as one by its id
    would have been emptied of the people in it."""
    cluster, store = checked(ledger_x(groupName="ledger-x"), store=Flaky())
    assert ready(cluster)[:2] == ("True", names.RESOLVED)
    assert store.listed == []
    # Still refused by name, and by the ids of the names that did resolve.
    cluster, store = checked(ledger_x(groupName="id-payments-oncall"), store=Flaky())
    assert ready(cluster)[:2] == ("False", names.POLICY_REFUSED)
    assert store.listed == []


def test_a_standing_name_that_is_no_group_is_asked_once_in_a_while() -> None:
    flaky = Flaky()
    rt = Runtime(Settings(), cast(IdentityCenter, flaky), cast(Kube, Cluster({}, EXAMPLES, [])))
    entitlement = ledger_x(groupName="ledger-x")
    entitlement["spec"]["eligibility"] = {"identityCenterGroups": ["no-such-group", "prod-eligible"]}
    for _ in range(3):
        _, resolved, unanswered = catalog._policy_ids(rt, [entitlement])
        assert isinstance(unanswered, RetryLater)
        assert "no-such-group" not in resolved and "prod-eligible" not in resolved
    assert flaky.asked.count("no-such-group") == 1
    assert flaky.asked.count("prod-eligible") == 3  # a "did not answer" is never kept
    # Its own check asks afresh (the Entitlement's own group, an eligibility group missing).
    rt.forget("group", "no-such-group")
    catalog._policy_ids(rt, [entitlement])
    assert flaky.asked.count("no-such-group") == 2

"""Entitlements that grant the same access (`domain.overlaps`): which overlap, the differences
named, and the `Overlapping` condition each should carry."""

from __future__ import annotations

from typing import Any

from jitaccess.api import names
from jitaccess.api.models import Condition, Entitlement
from jitaccess.domain import overlaps as rules
from tests.unit.factories import T0

ARN = "arn:aws:sso:::permissionSet/ssoins-1234567890abcdef/ps-1234567890abcdef"


def ent(name: str, status: dict[str, Any] | None = None, generation: int = 1, **spec: Any) -> Entitlement:
    base: dict[str, Any] = {
        "owner": "payments",
        "identityCenter": {"groupName": "payments-prod"},
        "maxDuration": "4h",
        "eligibility": {"identityCenterGroups": ["prod-eligible", "pci-secure-code-trained"]},
    }
    return Entitlement.model_validate(
        {"metadata": {"name": name, "generation": generation}, "spec": {**base, **spec}, "status": status or {}}
    )


def assigned(name: str, accounts: list[str], permission_set: dict[str, str] | None = None, **spec: Any) -> Entitlement:
    target = {"accountAssignment": {"permissionSet": permission_set or {"arn": ARN}, "accounts": accounts}}
    return ent(name, identityCenter=target, **spec)


def resolved(group_id: str, generation: int = 1) -> dict[str, Any]:
    ready = {
        "type": "Ready",
        "status": "True",
        "reason": "Resolved",
        "message": "",
        "lastTransitionTime": T0.isoformat(),
        "observedGeneration": generation,
    }
    return {"groupId": group_id, "conditions": [ready]}


def test_the_bypass_is_named_on_both_sides_with_every_rule_that_differs() -> None:
    a = ent("payments-prod", approval={"approvalsRequired": 2})
    b = ent("payments-prod-quick", owner="platform", eligibility={}, maxDuration="8h")
    found = rules.overlaps([a, b])
    assert [o.other for o in found["payments-prod"]] == ["payments-prod-quick"]
    assert [o.other for o in found["payments-prod-quick"]] == ["payments-prod"]
    (mine,) = found["payments-prod"]
    assert mine.shared == "Identity Center group payments-prod"
    assert mine.differences == (
        "owner team payments here, platform there",
        "eligibility groups [pci-secure-code-trained, prod-eligible] here, none there",
        "approvalsRequired 2 here, 1 there",
        "maxDuration 4h here, 8h there",
    )
    (theirs,) = found["payments-prod-quick"]
    assert theirs.differences[1] == "eligibility groups none here, [pci-secure-code-trained, prod-eligible] there"


def test_the_condition_says_same_access_and_names_the_other_and_the_differences() -> None:
    a, b = ent("a"), ent("b", approval={"autoApproveGroups": ["oncall"]})
    ((first, verdict), (second, _)) = rules.changes([a, b])
    assert (first.metadata.name, second.metadata.name) == ("a", "b")
    assert (verdict.status, verdict.reason, verdict.warning) == (True, names.SAME_ACCESS, True)
    assert verdict.message == (
        "Entitlement b also grants Identity Center group payments-prod, under other rules: "
        "autoApproveGroups none here, [oncall] there."
    )


def test_identical_rules_are_a_duplicate_not_a_warning() -> None:
    # Same rules written differently: lists in another order, a duration in other units.
    a = ent("a", maxDuration="4h")
    b = ent("b", maxDuration="240m", eligibility={"identityCenterGroups": ["pci-secure-code-trained", "prod-eligible"]})
    verdicts = dict((e.metadata.name, v) for e, v in rules.changes([a, b]))
    assert verdicts["a"].reason == names.DUPLICATE and not verdicts["a"].warning
    assert verdicts["a"].message == (
        "Entitlement b also grants Identity Center group payments-prod, under the same rules: keep one of them."
    )


def test_other_groups_and_other_fields_do_not_overlap() -> None:
    a = ent("a")
    b = ent("b", identityCenter={"groupName": "payments-staging"}, owner="platform")
    # defaultDuration, reasonExample and maxExtensions are not rules of who gets the access.
    c = ent("c", identityCenter={"groupName": "payments-staging"}, owner="platform", defaultDuration="30m")
    assert set(rules.overlaps([a, b, c])) == {"b", "c"}
    assert rules.overlaps([a, b, c])["b"][0].differences == ()


def test_a_group_named_by_id_overlaps_the_one_resolved_to_it_for_the_current_generation_only() -> None:
    by_id = ent("by-id", identityCenter={"groupId": "g-123"})
    by_name = ent("by-name", status=resolved("g-123"), generation=1)
    (overlap,) = rules.overlaps([by_id, by_name])["by-id"]
    assert overlap.other == "by-name" and overlap.shared == "Identity Center group id g-123"
    assert rules.overlaps([by_id, by_name])["by-name"][0].shared == "Identity Center group id g-123"
    # Its groupName just changed (generation 2): the resolved id is the old group's.
    renamed = ent("by-name", status=resolved("g-123"), generation=2, identityCenter={"groupName": "other"})
    assert rules.overlaps([by_id, renamed]) == {}
    # The group is gone (deleted in AWS): the id left in the status is of no group any more.
    gone = resolved("g-123")
    gone["conditions"][0].update(status="False", reason="GroupNotFound")
    assert rules.overlaps([by_id, ent("by-name", status=gone)]) == {}


def test_a_group_id_in_the_spec_takes_precedence_over_its_name() -> None:
    both = ent("both", identityCenter={"groupName": "payments-prod", "groupId": "g-9"})
    assert rules.overlaps([both, ent("by-name")]) == {}


def test_a_permission_set_overlaps_when_one_account_is_shared() -> None:
    a = assigned("a", ["111122223333", "444455556666"])
    b = assigned("b", ["444455556666", "777788889999"], owner="ledger")
    c = assigned("c", ["777788889999"], permission_set={"catalog": "payments", "tier": "production"})
    found = rules.overlaps([a, b, c])
    assert set(found) == {"a", "b"}, "c names another permission set (a tier, not the ARN)"
    assert found["a"][0].shared == f"permission set {ARN} in account 444455556666"
    assert found["a"][0].differences == ("owner team payments here, ledger there",)


def test_a_group_and_a_permission_set_do_not_overlap() -> None:
    assert rules.overlaps([ent("a"), assigned("b", ["111122223333"])]) == {}


def test_break_glass_and_reason_pattern_are_rules_too() -> None:
    a = ent("a", reasonPattern="^INC-[0-9]+")
    b = ent("b", breakGlass={"groups": ["sre"]})
    (overlap,) = rules.overlaps([a, b])["a"]
    assert overlap.differences == (
        "breakGlass off here, groups [sre], maxDuration 1h, 2 per user per day there",
        "reasonPattern '^INC-[0-9]+' here, none there",
    )


def test_several_others_those_that_differ_first() -> None:
    found = rules.overlaps([ent("a"), ent("b"), ent("c", owner="platform")])["a"]
    message = rules.message(found)
    assert message.index("Entitlement c") < message.index("Entitlement b")
    assert rules.verdict(found, None) == rules.Verdict(True, names.SAME_ACCESS, message)


def test_a_long_list_is_cut_and_counted() -> None:
    listed = [ent(f"e{i:02}") for i in range(rules.LISTED + 3)]
    message = rules.message(rules.overlaps(listed)["e00"])
    assert message.count("Entitlement ") == rules.LISTED
    assert message.endswith("And 2 more.")


def condition(status: str, reason: str, message: str) -> Condition:
    return Condition(type=names.OVERLAPPING, status=status, reason=reason, message=message, last_transition_time=T0)


def test_the_condition_is_written_only_when_it_changes() -> None:
    found = rules.overlaps([ent("a"), ent("b")])["a"]
    wanted = rules.verdict(found, None)
    assert wanted is not None
    assert rules.verdict(found, condition("True", wanted.reason, wanted.message)) is None
    assert rules.verdict(found, condition("True", wanted.reason, "stale")) == wanted
    assert rules.verdict(found, condition("False", names.NO_OVERLAP, "x")) == wanted


def test_an_overlap_that_ended_is_cleared_and_one_that_never_was_is_not_written() -> None:
    assert rules.verdict([], None) is None
    assert rules.verdict([], condition("False", names.NO_OVERLAP, "no other")) is None
    cleared = rules.verdict([], condition("True", names.SAME_ACCESS, "Entitlement b also grants ..."))
    assert cleared == rules.Verdict(False, names.NO_OVERLAP, "no other Entitlement grants the same access any more")
    assert not cleared.warning


def test_changes_after_the_other_was_deleted() -> None:
    a, b = ent("a"), ent("b", owner="platform")
    (verdict_a, _), (verdict_b, _) = ((v, e) for e, v in rules.changes([a, b]))
    overlapping = ent("a", status={"conditions": [condition("True", verdict_a.reason, verdict_a.message).wire()]})
    ((entitlement, cleared),) = rules.changes([overlapping])
    assert entitlement.metadata.name == "a" and cleared.reason == names.NO_OVERLAP
    assert verdict_b.reason == names.SAME_ACCESS


PRODUCTION = rules.Tier("catalog:payments/production", "payments-prod", frozenset({"444455556666"}), ARN)


def test_a_tier_assigned_directly_overlaps_the_group_the_catalog_assigns_it_to() -> None:
    # examples/04-permissions.yaml and 05-assignment.yaml: the production tier's group, and the tier assigned directly.
    group = ent("payments-prod", reasonPattern="^[A-Z]+-[0-9]+")
    direct = assigned(
        "payments-prod-direct", ["444455556666", "555566667777"], {"catalog": "payments", "tier": "production"}
    )
    assert rules.overlaps([group, direct]) == {}, "without the catalog, nothing says they are one access"
    found = rules.overlaps([group, direct], [PRODUCTION])
    (mine,) = found["payments-prod"]
    assert mine.other == "payments-prod-direct"
    assert mine.shared == "permission set catalog:payments/production in account 444455556666"
    assert mine.differences == ("reasonPattern '^[A-Z]+-[0-9]+' here, none there",)
    assert found["payments-prod-direct"][0].shared == mine.shared
    # Only some of it in common: the same rules are still no reason to keep one of them only.
    same = assigned(
        "same",
        ["444455556666", "555566667777"],
        {"catalog": "payments", "tier": "production"},
        reasonPattern="^[A-Z]+-[0-9]+",
    )
    (partial,) = rules.overlaps([group, same], [PRODUCTION])["same"]
    assert rules.message([partial]) == (
        "Entitlement payments-prod also grants permission set catalog:payments/production in account 444455556666, "
        "under the same rules."
    )
    # Not in the tier's accounts: the group gives nothing there.
    elsewhere = assigned("dr-only", ["555566667777"], {"catalog": "payments", "tier": "production"})
    assert rules.overlaps([group, elsewhere], [PRODUCTION]) == {}


def test_a_group_named_by_id_is_the_tiers_group_once_the_catalog_records_that_id() -> None:
    direct = assigned("payments-prod-direct", ["444455556666"], {"catalog": "payments", "tier": "production"})
    by_id = ent("by-id", identityCenter={"groupId": "g-prod"}, reasonPattern="^[A-Z]+-[0-9]+")
    # The catalog names the group, the Entitlement its id: nothing says they are one group yet.
    assert rules.overlaps([by_id, direct], [PRODUCTION]) == {}
    recorded = rules.Tier(PRODUCTION.reference, PRODUCTION.group, PRODUCTION.accounts, ARN, "g-prod")
    found = rules.overlaps([by_id, direct], [recorded])
    (mine,) = found["by-id"]
    assert mine.other == "payments-prod-direct"
    assert mine.shared == "permission set catalog:payments/production in account 444455556666"
    assert mine.differences == ("reasonPattern '^[A-Z]+-[0-9]+' here, none there",)
    # By another name that resolved to the id, for the current generation only.
    other_name = ent("other-name", resolved("g-prod"), identityCenter={"groupName": "PAYMENTS-prod"})
    assert [o.other for o in rules.overlaps([other_name, direct], [recorded])["other-name"]] == ["payments-prod-direct"]
    stale = ent("stale", resolved("g-prod"), generation=2, identityCenter={"groupName": "PAYMENTS-prod"})
    assert rules.overlaps([stale, direct], [recorded]) == {}
    # Another group's id is not the tier's.
    assert rules.overlaps([ent("x", identityCenter={"groupId": "g-other"}), direct], [recorded]) == {}


def test_a_tier_named_by_its_arn_is_the_same_permission_set() -> None:
    by_tier = assigned("by-tier", ["111122223333"], {"catalog": "payments", "tier": "production"})
    by_arn = assigned("by-arn", ["111122223333"], {"arn": ARN}, owner="ledger")
    assert rules.overlaps([by_tier, by_arn]) == {}, "the ARN is known only once the catalog reports it"
    found = rules.overlaps([by_tier, by_arn], [PRODUCTION])
    assert found["by-arn"][0].shared == "permission set catalog:payments/production in account 111122223333"
    unprovisioned = rules.Tier(PRODUCTION.reference, PRODUCTION.group, PRODUCTION.accounts)
    assert rules.overlaps([by_tier, by_arn], [unprovisioned]) == {}


def test_two_entitlements_to_a_tier_group_are_described_by_the_group() -> None:
    found = rules.overlaps([ent("a"), ent("b", owner="ledger")], [PRODUCTION])
    assert found["a"][0].shared == "Identity Center group payments-prod"

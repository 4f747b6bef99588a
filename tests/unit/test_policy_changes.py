"""The audit line of a policy write names each changed leaf of the spec, before and after."""

from jitaccess.domain.admission import policy_changes


def entitlement(**spec: object) -> dict[str, object]:
    return {"kind": "Entitlement", "metadata": {"name": "prod-eng-ledger"}, "spec": spec}


def test_a_changed_group_and_a_removed_eligibility_are_each_named() -> None:
    old = entitlement(owner="ledger", identityCenter={"groupName": "prod-eng-ledger"}, eligibility={"groups": ["x"]})
    new = entitlement(owner="ledger", identityCenter={"groupName": "prod-eng-payments-pci"})
    assert policy_changes(old, new) == [
        'spec.eligibility.groups: ["x"] -> (none)',
        'spec.identityCenter.groupName: "prod-eng-ledger" -> "prod-eng-payments-pci"',
    ]


def test_a_member_added_shows_the_whole_list_and_nothing_else() -> None:
    old = {"spec": {"members": ["a@x"], "approvers": ["l@x"]}}
    new = {"spec": {"members": ["a@x", "eve@x"], "approvers": ["l@x"]}}
    assert policy_changes(old, new) == ['spec.members: ["a@x"] -> ["a@x", "eve@x"]']


def test_a_creation_lists_every_leaf_and_metadata_alone_is_no_change() -> None:
    assert policy_changes(None, {"spec": {"owner": "ledger", "maxDuration": "4h"}}) == [
        'spec.maxDuration: (none) -> "4h"',
        'spec.owner: (none) -> "ledger"',
    ]
    labelled = {"metadata": {"labels": {"a": "b"}}, "spec": {"owner": "ledger"}}
    assert policy_changes({"spec": {"owner": "ledger"}}, labelled) == []


def test_a_long_value_is_cut_and_a_type_change_is_one_line() -> None:
    [line] = policy_changes({"spec": {"reasonPattern": "x" * 500}}, {"spec": {"reasonPattern": "y"}})
    assert line.endswith('-> "y"') and "..." in line and len(line) < 260
    assert policy_changes({"spec": {"eligibility": {"groups": []}}}, {"spec": {"eligibility": "none"}}) == [
        'spec.eligibility: {"groups": []} -> "none"'
    ]

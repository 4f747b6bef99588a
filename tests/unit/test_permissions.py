"""PermissionCatalog rendering and admission (`jitaccess.domain.permissions`).

The example catalogs (examples/04-permissions.yaml) render to the permission sets under
tests/unit/golden/permissions/, one JSON file per team and tier; after a deliberate change, rewrite
them with `JITACCESS_UPDATE_GOLDEN=1 pytest tests/unit/test_permissions.py` and review their diff.
Every rendered policy is also linted with parliament (duo-labs), which checks each action exists,
each resource has the format the action takes, and the condition keys.
"""

from __future__ import annotations

import copy
import json
import os
import sys
import types
from datetime import UTC, datetime, timedelta, timezone
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml

from jitaccess.api import limits
from jitaccess.api.models import PermissionCatalog
from jitaccess.domain import permissions
from jitaccess.domain.admission import Admit, OperatorIdentity, Refusal
from jitaccess.domain.teams import Caller

REPO = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).parent / "golden" / "permissions"
EXAMPLES = [d for d in yaml.safe_load_all((REPO / "examples" / "04-permissions.yaml").read_text()) if d]
OPERATOR = OperatorIdentity(frozenset({"system:serviceaccount:jitaccess:operator"}))
GITOPS = Caller("gitops@example.com", frozenset({"system:masters"}))
USER_ID = "9067b4a2-f0a1-70e0-5c1c-1d2e3f4a5b6c"
# The one finding parliament makes, on purpose: `ecs:ListTasks` has no resource type but the
# container instance, and is limited by its `ecs:cluster` condition instead.
EXPECTED_FINDINGS = {("RESOURCE_STAR", "ecs:ListTasks")}


def example(name: str) -> dict[str, Any]:
    return copy.deepcopy(next(d for d in EXAMPLES if d["metadata"]["name"] == name))


def catalog(doc: dict[str, Any]) -> PermissionCatalog:
    return PermissionCatalog.model_validate(doc)


def statements(policy: dict[str, Any], sid_prefix: str) -> list[dict[str, Any]]:
    return [s for s in policy["Statement"] if str(s["Sid"]).startswith(sid_prefix)]


def parliament_findings(policy: dict[str, Any]) -> set[tuple[str, str]]:
    # parliament 1.6.4 finds its data files with pkg_resources, which setuptools no longer ships:
    # the one function it calls, from importlib.resources.
    shim = types.ModuleType("pkg_resources")
    shim.resource_filename = lambda package, name: str(resources.files(package) / name)  # type: ignore[attr-defined]
    sys.modules.setdefault("pkg_resources", shim)
    from parliament import analyze_policy_string  # type: ignore[import-untyped]

    found = analyze_policy_string(json.dumps(policy), include_community_auditors=False).findings
    return {
        (
            f.issue,
            ",".join(f.detail)
            if isinstance(f.detail, list) and all(isinstance(d, str) for d in f.detail)
            else json.dumps(f.detail),
        )
        for f in found
    }


# --- rendering ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("team", "tier"), [(d["metadata"]["name"], t) for d in EXAMPLES for t in permissions.TIERS], ids=str
)
def test_example_catalogs_render_as_golden_and_lint_clean(team: str, tier: permissions.Tier) -> None:
    spec = permissions.render(catalog(example(team)), tier)
    rendered = {
        "name": spec.name,
        "description": spec.description,
        "sessionDuration": spec.session_duration,
        "groupName": spec.group_name,
        "accounts": list(spec.accounts),
        "managedPolicyArns": list(spec.managed_policy_arns),
        "tags": spec.tags,
        "inlinePolicy": spec.inline_policy,
    }
    text = json.dumps(rendered, indent=2, sort_keys=True) + "\n"
    path = GOLDEN / f"{team}-{tier}.json"
    if os.environ.get("JITACCESS_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert text == path.read_text(), f"{path.name} differs from its golden file (see this module's docstring)"
    assert parliament_findings(permissions.with_denied_users(spec.inline_policy, [USER_ID])) == EXPECTED_FINDINGS
    assert len(spec.inline_policy_json) <= permissions.INLINE_POLICY_BUDGET


def test_production_is_baseline_plus_adds() -> None:
    doc = catalog(example("payments"))
    base, prod = permissions.render(doc, "baseline"), permissions.render(doc, "production")
    assert (base.name, prod.name) == ("jit-payments-base", "jit-payments-prod")
    assert (base.session_duration, prod.session_duration) == ("PT8H", "PT1H")
    assert (base.group_name, prod.group_name) == ("eng-payments", "prod-eng-payments")
    assert prod.accounts == ("444455556666",)
    assert prod.tags == {
        "managed-by": "jitaccess",
        "jitaccess.dev/team": "payments",
        "jitaccess.dev/tier": "production",
    }
    lambdas = statements(prod.inline_policy, "LambdaInvoke")[0]["Resource"]
    # Baseline's function, in production's account, with the function production adds.
    assert lambdas == [
        "arn:aws:lambda:eu-west-1:444455556666:function:payments-issue-refund",
        "arn:aws:lambda:eu-west-1:444455556666:function:payments-issue-refund:*",
        "arn:aws:lambda:eu-west-1:444455556666:function:payments-replay-webhook",
        "arn:aws:lambda:eu-west-1:444455556666:function:payments-replay-webhook:*",
    ]
    assert statements(base.inline_policy, "LambdaInvoke")[0]["Resource"] == [
        "arn:aws:lambda:eu-west-1:111122223333:function:payments-replay-webhook",
        "arn:aws:lambda:eu-west-1:111122223333:function:payments-replay-webhook:*",
    ]


def test_rendering_is_deterministic_whatever_the_order_of_the_entries() -> None:
    doc = example("ledger")
    shuffled = copy.deepcopy(doc)
    adds = shuffled["spec"]["production"]["adds"]
    adds["lambdaFunctions"].reverse()
    adds["lambdaFunctions"].append(adds["lambdaFunctions"][0])  # a duplicate renders once
    first, again = permissions.render(catalog(doc), "production"), permissions.render(catalog(shuffled), "production")
    assert first.inline_policy == again.inline_policy and first.digest == again.digest
    changed = copy.deepcopy(doc)
    changed["spec"]["production"]["adds"]["lambdaFunctions"][0]["name"] = "ledger-rerun-close-v2"
    other = permissions.render(catalog(changed), "production")
    assert other.digest != first.digest
    # Only the Lambda statement changes, Sid included; every other statement is the same.
    before = {s["Sid"] for s in first.inline_policy["Statement"]}
    after = {s["Sid"] for s in other.inline_policy["Statement"]}
    assert [s[:12] for s in sorted(before ^ after)] == ["LambdaInvoke", "LambdaInvoke"]


def test_entries_with_their_own_account_and_region() -> None:
    doc = example("ledger")
    doc["spec"]["production"]["accounts"] = ["555566667777", "888899990000"]
    doc["spec"]["production"]["adds"]["secrets"]["edit"] = [{"name": "ledger/db-admin", "account": "555566667777"}]
    spec = permissions.render(catalog(doc), "production")
    assert statements(spec.inline_policy, "SecretsEdit")[0]["Resource"] == [
        "arn:aws:secretsmanager:eu-west-1:555566667777:secret:ledger/db-admin-??????"
    ]
    lambdas = statements(spec.inline_policy, "LambdaInvoke")[0]["Resource"]
    assert "arn:aws:lambda:eu-central-1:888899990000:function:ledger-dr-failover" in lambdas
    assert "arn:aws:lambda:eu-west-1:888899990000:function:ledger-rerun-close" in lambdas


def test_s3_listing_is_limited_to_the_prefixes_read() -> None:
    doc = example("payments")
    doc["spec"]["baseline"]["permissions"]["s3"] = {
        "read": ["exports/reports/*", "exports/daily/summary.csv", "public-assets/*"],
        "write": ["exports/uploads/*"],
    }
    policy = permissions.render(catalog(doc), "baseline").inline_policy
    listing = {s["Resource"][0]: s.get("Condition") for s in statements(policy, "S3List")}
    assert listing == {
        "arn:aws:s3:::exports": {"StringLike": {"s3:prefix": ["daily/summary.csv", "reports/", "reports/*"]}},
        "arn:aws:s3:::public-assets": None,
    }
    assert statements(policy, "S3Write")[0]["Resource"] == ["arn:aws:s3:::exports/uploads/*"]
    assert statements(policy, "S3Write")[0]["Action"] == ["s3:DeleteObject", "s3:PutObject"]


def test_ecs_exec_is_limited_to_the_services_listed() -> None:
    policy = permissions.render(catalog(example("payments")), "production").inline_policy
    (exec_,) = statements(policy, "EcsExec")
    assert exec_["Resource"] == [
        "arn:aws:ecs:eu-west-1:444455556666:cluster/payments",
        "arn:aws:ecs:eu-west-1:444455556666:task/payments/*",
    ]
    assert exec_["Condition"] == {
        "StringEquals": {"aws:ResourceTag/aws:ecs:serviceName": ["payments-api", "payments-refunds-worker"]}
    }


def test_a_tier_with_nothing_inline_has_no_inline_policy() -> None:
    doc = example("payments")
    doc["spec"]["baseline"]["permissions"] = {"managedPolicies": ["arn:aws:iam::aws:policy/ReadOnlyAccess"]}
    spec = permissions.render(catalog(doc), "baseline")
    assert spec.inline_policy == {} and spec.inline_policy_json == ""
    assert spec.managed_policy_arns == ("arn:aws:iam::aws:policy/ReadOnlyAccess",)


# --- session revocation --------------------------------------------------------------------------


def test_denied_users_are_one_sorted_deny_statement_replaced_not_doubled() -> None:
    policy = permissions.render(catalog(example("payments")), "production").inline_policy
    denied = permissions.with_denied_users(policy, ["b-user", "a-user", "b-user"])
    deny = [s for s in denied["Statement"] if s["Sid"] == permissions.DENY_SID]
    assert deny == [
        {
            "Sid": "JitaccessRevokedSessions",
            "Effect": "Deny",
            "Action": "*",
            "Resource": "*",
            "Condition": {"StringEquals": {"identitystore:UserId": ["a-user", "b-user"]}},
        }
    ]
    again = permissions.with_denied_users(denied, ["c-user"])
    assert [s["Condition"] for s in again["Statement"] if s["Sid"] == permissions.DENY_SID] == [
        {"StringEquals": {"identitystore:UserId": ["c-user"]}}
    ]
    assert permissions.with_denied_users(denied, []) == policy
    assert permissions.with_denied_users({}, ["a-user"])["Version"] == "2012-10-17"
    assert parliament_findings(permissions.with_denied_users({}, ["a-user"])) == set()


def test_a_session_issued_in_the_second_of_a_revocation_before_it_is_denied() -> None:
    """Revocation times are recorded to the second and sessions' issue times are finer: the stamp is
    the second after the revocation, so a session stolen a moment before it, in its own second, stays
    denied (IAM's DateLessThan is strict)."""
    revoked = datetime(2026, 12, 1, 9, 0, 7, 800_000, tzinfo=UTC)
    stolen = revoked - timedelta(milliseconds=500)
    for since in (revoked, revoked.replace(microsecond=0)):  # as it happened, and as the status records it
        stamp = permissions.revoked_before(since)
        assert stolen < datetime.fromisoformat(stamp), stamp
        assert stamp == "2026-12-01T09:00:08Z"
    denied = permissions.with_denied_users({}, [], [(revoked.replace(microsecond=0), "a-user")])
    [statement] = denied["Statement"]
    assert statement["Condition"]["DateLessThan"] == {"aws:TokenIssueTime": "2026-12-01T09:00:08Z"}


def test_users_who_hold_the_group_again_are_denied_sessions_issued_before_their_revocation() -> None:
    policy = permissions.render(catalog(example("payments")), "production").inline_policy
    t0 = datetime(2026, 12, 1, 9, 0, 7, tzinfo=UTC)
    # The same instant in another zone is the same statement.
    t0_elsewhere = t0.astimezone(timezone(timedelta(hours=2)))
    before = [(t0, "b-user"), (t0_elsewhere, "a-user"), (t0 + timedelta(hours=1), "c-user"), (t0, "d-user")]
    denied = permissions.with_denied_users(policy, ["d-user"], before)
    revocation = [s for s in denied["Statement"] if s["Sid"].startswith("JitaccessRevoked")]
    assert revocation == [
        {
            "Sid": "JitaccessRevokedSessions",
            "Effect": "Deny",
            "Action": "*",
            "Resource": "*",
            "Condition": {"StringEquals": {"identitystore:UserId": ["d-user"]}},
        },
        {
            "Sid": "JitaccessRevokedSessionsIssuedBefore20261201T090008Z",
            "Effect": "Deny",
            "Action": "*",
            "Resource": "*",
            "Condition": {
                "StringEquals": {"identitystore:UserId": ["a-user", "b-user"]},
                "DateLessThan": {"aws:TokenIssueTime": "2026-12-01T09:00:08Z"},
            },
        },
        {
            "Sid": "JitaccessRevokedSessionsIssuedBefore20261201T100008Z",
            "Effect": "Deny",
            "Action": "*",
            "Resource": "*",
            "Condition": {
                "StringEquals": {"identitystore:UserId": ["c-user"]},
                "DateLessThan": {"aws:TokenIssueTime": "2026-12-01T10:00:08Z"},
            },
        },
    ]
    # Replaced, not doubled; gone with no users.
    again = permissions.with_denied_users(denied, [], [(t0, "e-user")])
    assert [s["Sid"] for s in again["Statement"] if s["Sid"].startswith("JitaccessRevoked")] == [
        "JitaccessRevokedSessionsIssuedBefore20261201T090008Z"
    ]
    assert permissions.with_denied_users(denied, [], []) == policy
    assert parliament_findings(permissions.with_denied_users({}, [], [(t0, "a-user")])) == set()


def test_the_revocation_reserve_holds_forty_user_ids() -> None:
    ids = [f"{i:08x}-0000-0000-0000-000000000000" for i in range(40)]
    deny = permissions.policy_json(permissions.with_denied_users({}, ids))
    assert len(deny) <= limits.REVOCATION_RESERVE_CHARACTERS


# --- admission -----------------------------------------------------------------------------------


def review(doc: dict[str, Any], old: dict[str, Any] | None = None) -> Admit | Refusal:
    return permissions.review("UPDATE" if old else "CREATE", old, doc, GITOPS, operator=OPERATOR)


def test_the_examples_are_admitted() -> None:
    for doc in EXAMPLES:
        assert review(doc) == Admit()
        assert permissions.warnings(catalog(doc)) == []


def test_an_inline_policy_over_the_limit_is_refused_naming_the_largest_part() -> None:
    doc = example("payments")
    doc["spec"]["production"]["accounts"] = [f"{n:012}" for n in range(1, 6)]
    doc["spec"]["production"]["adds"]["secrets"]["read"] = [{"name": f"payments/s{i:02}"} for i in range(40)]
    verdict = review(doc)
    assert isinstance(verdict, Refusal) and verdict.code == 422
    assert verdict.message.startswith("PermissionCatalog payments cannot be provisioned: the production permission ")
    assert "AWS takes 10,240 (not counting whitespace)" in verdict.message
    assert "so at most 8,192" in verdict.message
    assert "the largest part is spec.baseline.permissions.secrets and spec.production.adds.secrets" in verdict.message
    assert "across 5 account(s)" in verdict.message
    # Baseline, in its one account, still fits: only production is named.
    assert "the baseline permission set" not in verdict.message


def test_managed_policies_count_across_baseline_and_adds() -> None:
    doc = example("payments")
    doc["spec"]["production"]["adds"]["managedPolicies"] = [f"arn:aws:iam::aws:policy/P{i}" for i in range(20)]
    verdict = review(doc)
    assert isinstance(verdict, Refusal)
    assert (
        "the production permission set would carry 21 managed policies (spec.baseline.permissions.managedPolicies "
        "and spec.production.adds.managedPolicies): Identity Center attaches at most 20" in verdict.message
    )
    doc["spec"]["production"]["adds"]["managedPolicies"] = [f"arn:aws:iam::aws:policy/P{i}" for i in range(10)]
    assert review(doc) == Admit()
    (warning,) = permissions.warnings(catalog(doc))
    assert warning.startswith("the production permission set carries 11 managed policies: an IAM role takes 10")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"production": {"sessionDuration": "13h"}},
            "spec.production.sessionDuration '13h': an AWS session lasts 1h to 12h",
        ),
        ({"baseline": {"sessionDuration": "30m"}}, "spec.baseline.sessionDuration '30m': an AWS session lasts 1h"),
        (
            {"production": {"groupName": "eng-payments"}},
            "spec.production.groupName 'eng-payments' is the baseline group",
        ),
    ],
)
def test_sessions_and_groups(change: dict[str, Any], message: str) -> None:
    doc = example("payments")
    for tier, fields in change.items():
        doc["spec"][tier].update(fields)
    verdict = review(doc)
    assert isinstance(verdict, Refusal) and message in verdict.message


def test_a_team_name_too_long_for_a_permission_set_name() -> None:
    doc = example("ledger")
    doc["metadata"]["name"] = "x" * 24
    verdict = review(doc)
    assert isinstance(verdict, Refusal)
    assert "Identity Center allows 32 characters, so a team's catalog name has at most 23" in verdict.message
    doc["metadata"]["name"] = "x" * 23
    assert review(doc) == Admit()


def test_unchanged_spec_and_the_operator_are_not_held_up() -> None:
    doc = example("payments")
    doc["spec"]["production"]["sessionDuration"] = "13h"  # stored before the rule existed, say
    relabelled = copy.deepcopy(doc)
    relabelled["metadata"]["labels"] = {"owner": "payments"}
    assert review(relabelled, old=doc) == Admit()
    kopf_note = copy.deepcopy(doc)
    kopf_note["metadata"]["annotations"] = {"kopf.zalando.org/last-handled-configuration": "{}"}
    refused = review(kopf_note, old=doc)
    assert isinstance(refused, Refusal) and "kopf.zalando.org/" in refused.message


def test_docs_api_md_lists_every_action_rendered() -> None:
    text = (REPO / "docs" / "api.md").read_text()
    section = text[text.index("### Permissions and the IAM actions they render to") : text.index("### Admission: AWS")]
    rendered = {
        action
        for doc in EXAMPLES
        for tier in permissions.TIERS
        for statement in permissions.render(catalog(doc), tier).inline_policy["Statement"]
        for action in statement["Action"]
    }
    assert rendered >= {*permissions.PIPELINE_ACTIONS, *permissions.SECRET_EDIT_ACTIONS, *permissions.S3_WRITE_ACTIONS}
    missing = sorted(a for a in rendered if f"`{a}`" not in section and f"`{a.split(':')[1]}`" not in section)
    assert missing == [], "actions rendered but not listed in docs/api.md"


# --- production held only through grants (`domain.standing`) ----------------------------------------

ENTITLEMENTS = [
    d
    for file in ("02-entitlements.yaml", "03-pci.yaml", "05-assignment.yaml")
    for d in yaml.safe_load_all((REPO / "examples" / file).read_text())
    if d and d["kind"] == "Entitlement"
]


def review_among(doc: dict[str, Any], old: dict[str, Any] | None = None) -> Admit | Refusal:
    """`doc` reviewed with the example catalogs (its own stored version among them) and Entitlements."""
    return permissions.review(
        "UPDATE" if old else "CREATE", old, doc, GITOPS, operator=OPERATOR, catalogs=EXAMPLES, entitlements=ENTITLEMENTS
    )


def test_the_examples_are_admitted_among_each_other() -> None:
    from jitaccess.domain import standing

    for doc in EXAMPLES:
        assert review_among(doc) == Admit()
        assert standing.ungranted_production(doc, ENTITLEMENTS) is None
    for entitlement in ENTITLEMENTS:
        assert standing.entitlement_problems(entitlement, EXAMPLES) == []


@pytest.mark.parametrize(
    ("tier", "group", "said"),
    [
        # Another team's standing group: everyone in eng-ledger would hold payments' production.
        (
            "production",
            "eng-ledger",
            "spec.production.groupName 'eng-ledger' is PermissionCatalog ledger's baseline group, whose members hold "
            "it standing: they would all hold production with no grant; name the group of an Entitlement of team payments",
        ),
        ("production", "ENG-Ledger ", "is PermissionCatalog ledger's baseline group"),  # as a reviewer reads it
        # A group people are in, named as such by an Entitlement.
        (
            "production",
            "prod-eligible",
            "'prod-eligible' is a group Entitlement prod-eng-payments names in spec.eligibility.identityCenterGroups, "
            "whose members hold it standing",
        ),
        ("production", "payments-oncall", "spec.approval.autoApproveIdentityCenterGroups, whose members hold"),
        # Another team's production group, or its Entitlement's group: their grants would be ours.
        (
            "production",
            "prod-eng-ledger",
            "'prod-eng-ledger' is PermissionCatalog ledger's production group: grants of team ledger would give the "
            "production permissions of team payments",
        ),
        ("production", "prod-eng-payments-pci", "is the group of Entitlement prod-eng-payments-pci (team pci)"),
        # The reverse: a standing tier on a group grants fill.
        (
            "baseline",
            "prod-eng-ledger",
            "spec.baseline.groupName 'prod-eng-ledger' is PermissionCatalog ledger's production group, which people "
            "hold only through a grant",
        ),
        ("baseline", "prod-eng-payments-pci", "is the group of Entitlement prod-eng-payments-pci (team pci), which"),
    ],
)
def test_a_tier_on_a_group_of_the_other_kind_is_refused(tier: str, group: str, said: str) -> None:
    """Production given to a standing group (any catalog's baseline, a group an Entitlement names
    as one people are in) is standing production for all its members; given to another team's
    production group, it is theirs through that team's grants. A baseline on a group grants fill
    makes that access standing."""
    doc = example("payments")
    doc["spec"][tier]["groupName"] = group
    verdict = review_among(doc, example("payments"))
    assert isinstance(verdict, Refusal) and verdict.code == 422, verdict
    assert said in verdict.message, verdict.message
    assert review(doc, example("payments")) == Admit()  # the catalog alone says nothing of it


def test_the_teams_own_entitlement_group_and_a_new_group_are_admitted() -> None:
    """Production on the group of the team's own Entitlement is what it is for; on a group nobody
    names yet it is admitted with a warning (GitOps may apply the catalog before the Entitlement)."""
    from jitaccess.domain import standing

    doc = example("payments")
    doc["spec"]["production"]["groupName"] = "prod-eng-payments-v2"
    assert review_among(doc, example("payments")) == Admit()
    assert standing.ungranted_production(doc, ENTITLEMENTS) == (
        "no Entitlement of team payments grants spec.production.groupName 'prod-eng-payments-v2': the production "
        "tier is held only through such an Entitlement's grants, and nobody holds it until one exists"
    )


@pytest.mark.parametrize(
    ("group", "said"),
    [
        ("eng-payments", "spec.identityCenter.groupName 'eng-payments' is PermissionCatalog payments's baseline group"),
        ("prod-eng-ledger", "is PermissionCatalog ledger's production group: grants of team payments would give"),
    ],
)
def test_an_entitlement_on_a_standing_group_or_another_teams_production_is_refused(group: str, said: str) -> None:
    """The same rule from the Entitlement's side, whichever GitOps applies first."""
    from jitaccess.domain import admission as adm

    entitlement = copy.deepcopy(ENTITLEMENTS[0])
    assert entitlement["metadata"]["name"] == "prod-eng-payments"
    assert adm.review_catalog("CREATE", None, entitlement, GITOPS, operator=OPERATOR, catalogs=EXAMPLES) == Admit()
    old = copy.deepcopy(entitlement)
    entitlement["spec"]["identityCenter"]["groupName"] = group
    verdict = adm.review_catalog("UPDATE", old, entitlement, GITOPS, operator=OPERATOR, catalogs=EXAMPLES)
    assert isinstance(verdict, Refusal) and said in verdict.message, verdict
    relabelled = {**entitlement, "metadata": {**entitlement["metadata"], "labels": {"x": "y"}}}
    assert (
        adm.review_catalog("UPDATE", entitlement, relabelled, GITOPS, operator=OPERATOR, catalogs=EXAMPLES) == Admit()
    )


def resolved_tier(doc: dict[str, Any], tier: str, group_id: str, group_name: str | None = None) -> dict[str, Any]:
    """`doc` (a catalog) with the GroupId a provisioning pass recorded for `tier`'s group, resolved
    from `group_name` (the spec's by default; another: an id for an older name)."""
    doc = copy.deepcopy(doc)
    resolved_from = group_name or doc["spec"][tier]["groupName"]
    doc.setdefault("status", {})[tier] = {"groupName": resolved_from, "groupId": group_id}
    return doc


def by_group_id(entitlement: dict[str, Any], group_id: str, owner: str | None = None) -> dict[str, Any]:
    """An Entitlement naming its group by `groupId` (of team `owner`, when given)."""
    entitlement = copy.deepcopy(entitlement)
    entitlement["spec"]["identityCenter"] = {"groupId": group_id}
    if owner:
        entitlement["spec"]["owner"] = owner
    return entitlement


def test_an_entitlement_naming_a_catalogs_group_by_its_recorded_id_is_refused() -> None:
    """The Entitlement's side by GroupId: compared with a tier's group once the catalog's status
    records the id it resolved the tier's groupName to, never by an id resolved from an older name."""
    from jitaccess.domain import admission as adm

    entitlement = copy.deepcopy(ENTITLEMENTS[0])
    old = copy.deepcopy(entitlement)
    ledger = [doc for doc in EXAMPLES if doc["metadata"]["name"] != "ledger"]
    stored = [*ledger, resolved_tier(example("ledger"), "baseline", "g-eng-ledger")]
    new = by_group_id(entitlement, "g-eng-ledger")
    verdict = adm.review_catalog("UPDATE", old, new, GITOPS, operator=OPERATOR, catalogs=stored)
    assert isinstance(verdict, Refusal) and verdict.code == 422, verdict
    assert verdict.message == (
        "spec.identityCenter.groupId 'g-eng-ledger' is PermissionCatalog ledger's baseline group, whose members hold "
        "it standing: a grant of it would be no grant at all, and the drift scan would remove them; name the group "
        "that carries the production tier"
    )
    stored = [*ledger, resolved_tier(example("ledger"), "production", "g-prod-ledger")]
    verdict = adm.review_catalog(
        "UPDATE", old, by_group_id(entitlement, "g-prod-ledger"), GITOPS, operator=OPERATOR, catalogs=stored
    )
    assert isinstance(verdict, Refusal), verdict
    assert "is PermissionCatalog ledger's production group: grants of team payments would give" in verdict.message
    # The id was resolved from the group ledger's baseline named before: not trusted for the name it has now.
    stale = [*ledger, resolved_tier(example("ledger"), "baseline", "g-eng-ledger", "eng-ledger-old")]
    assert adm.review_catalog("UPDATE", old, new, GITOPS, operator=OPERATOR, catalogs=stale) == Admit()
    # No id recorded: nothing to compare an id with (Identity Center is not asked at admission).
    assert adm.review_catalog("UPDATE", old, new, GITOPS, operator=OPERATOR, catalogs=EXAMPLES) == Admit()


def test_a_tier_on_the_group_an_entitlement_names_by_id_is_refused_by_the_recorded_id() -> None:
    """The catalog's side: another team's Entitlement naming the group by groupId, or by a name
    that resolved to the id for its current generation, is that group."""
    pci = next(e for e in ENTITLEMENTS if e["spec"]["owner"] == "pci")
    others = [e for e in ENTITLEMENTS if e is not pci]

    def reviewed(tier: str, *entitlements: dict[str, Any]) -> Admit | Refusal:
        # A change the check runs on (another session length), the tier's group resolved to g-prod-payments.
        old = resolved_tier(example("payments"), tier, "g-prod-payments")
        new = copy.deepcopy(old)
        new["spec"][tier]["sessionDuration"] = "2h"
        return permissions.review(
            "UPDATE", old, new, GITOPS, operator=OPERATOR, catalogs=EXAMPLES, entitlements=[*others, *entitlements]
        )

    verdict = reviewed("production", by_group_id(pci, "g-prod-payments"))
    assert isinstance(verdict, Refusal), verdict
    assert (
        "spec.production.groupName 'prod-eng-payments' is the group of Entitlement prod-eng-payments-pci (team pci, "
        "by groupId g-prod-payments): grants of team pci would give the production permissions of team payments"
    ) in verdict.message
    assert reviewed("production", by_group_id(pci, "g-other")) == Admit()
    # By another name, resolved to the id: for the Entitlement's current generation only.
    renamed = copy.deepcopy(pci)
    renamed["spec"]["identityCenter"] = {"groupName": "Prod-Eng-Payments-Renamed"}
    ready = {"type": "Ready", "status": "True", "reason": "Resolved", "observedGeneration": 3}
    renamed["metadata"]["generation"] = 3
    renamed["status"] = {"groupId": "g-prod-payments", "conditions": [ready]}
    verdict = reviewed("production", renamed)
    assert isinstance(verdict, Refusal) and "Entitlement prod-eng-payments-pci (team pci)" in verdict.message
    renamed["metadata"]["generation"] = 4  # its groupName changed since: the id is the old name's
    assert reviewed("production", renamed) == Admit()
    # A baseline tier on it makes JIT access standing, by the id as by the name.
    verdict = reviewed("baseline", by_group_id(pci, "g-prod-payments"))
    assert isinstance(verdict, Refusal) and "which people hold only through a grant" in verdict.message, verdict


def test_the_teams_entitlement_naming_the_production_group_by_its_recorded_id_grants_it() -> None:
    from jitaccess.domain import standing

    doc = resolved_tier(example("payments"), "production", "g-prod-payments")
    own = next(e for e in ENTITLEMENTS if e["metadata"]["name"] == "prod-eng-payments")
    entitlements = [by_group_id(own, "g-prod-payments")]
    assert standing.ungranted_production(doc, entitlements) is None
    assert standing.ungranted_production(example("payments"), entitlements) is not None

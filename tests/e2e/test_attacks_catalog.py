"""Attacks 80-84 and 115 of docs/security.md: a team's PermissionCatalog (issue 14).

The same style as `test_attacks.py` (real identities, plain kubectl, the real API server, the
operator's webhooks, RBAC). A catalog is what a team's roles may do in AWS, so a bad one must never
be stored: the operator would render it into a permission set. Each refusal names the entry and
what to write instead, and the stored catalog is unchanged:

- 80: a team member (or anyone but GitOps) writing a catalog, their own team's or another's;
- 81: entries that are not what they say: an account that is not 12 digits, an ARN that is not an
  AWS managed policy, a name that is an ARN or holds a wildcard;
- 82: an S3 path with a wildcard beyond a trailing `/*` (`bucket/*/secrets`, `bucket/a*`), which
  would grant far more than the path reads;
- 83: a catalog past AWS's limits (the rendered inline policy over what a permission set takes,
  more managed policies than a permission set carries, a session longer than 12h), refused before
  any AWS call;
- 84: a catalog for a team that does not exist: stored (GitOps may apply it first) with a warning;
- 115: a catalog deleted, or its production tier removed, while grants hold its permission sets
  (`direct`, an Active account-assignment grant of the example catalog's production tier): refused
  until they end; a change of the tier that deletes nothing they hold (its accounts) is admitted.
  A group-mode grant (a membership of the tier's group) holds the tier as well, and its group:
  removing the tier, or giving it another group, is refused until the grant ends; so does the grant
  of an Entitlement that names the group by its GroupId (the catalog's status records the id the
  tier's group resolved to).
"""

from __future__ import annotations

import copy
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e import test_assignments as assignments
from tests.support.harness import Jit, eventually

pytestmark = pytest.mark.e2e

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "04-permissions.yaml"
ALICE, PAULA, MALLORY = "alice@example.com", "paula@example.com", "mallory@example.com"


def example(name: str) -> dict[str, Any]:
    docs = [d for d in yaml.safe_load_all(EXAMPLES.read_text()) if d]
    return copy.deepcopy(next(d for d in docs if d["metadata"]["name"] == name))


#: GitOps: a deploy identity with every right, impersonated by the admin (the e2e operator runs as the
#: admin, and the operator's own writes skip the webhooks).
GITOPS = ("--as", "gitops@example.com", "--as-group", "system:masters")


def as_gitops(system: Jit, manifest: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    result: subprocess.CompletedProcess[str] = system.kubectl(
        "apply", "-f", "-", *GITOPS, input=yaml.safe_dump(manifest), check=False
    )
    return result


def refused(result: subprocess.CompletedProcess[str], *fragments: str) -> str:
    assert result.returncode != 0, f"{result.args} was accepted:\n{result.stdout}"
    for fragment in fragments:
        assert fragment in result.stderr, f"{fragment!r} not in:\n{result.stderr}"
    return result.stderr


@pytest.fixture
def catalogs(system: Jit) -> Iterator[Jit]:
    """The example catalogs applied (by the admin, as GitOps would), and put back afterwards."""
    system.kubectl("apply", "-f", str(EXAMPLES))
    yield system
    system.kubectl("apply", "-f", str(EXAMPLES))


# --- 80. a team member writing a catalog ----------------------------------------------------------


@pytest.mark.parametrize("user", [ALICE, PAULA, MALLORY])
def test_80_only_gitops_writes_catalogs(catalogs: Jit, user: str) -> None:
    """What a team's roles may do changes by pull request: no user (the team's tech lead included)
    may create, change or delete a catalog, while everyone may read them."""
    mine = example("payments")
    mine["spec"]["production"]["adds"]["managedPolicies"] = ["arn:aws:iam::aws:policy/AdministratorAccess"]
    refused(catalogs.apply(mine, user=user, check=False), "forbidden")
    new = example("ledger")
    new["metadata"]["name"] = "shadow"
    refused(catalogs.apply(new, user=user, verb="create", check=False), "forbidden")
    refused(catalogs.kubectl("delete", "permissioncatalog", "ledger", user=user, check=False), "forbidden")
    patch = '{"spec":{"production":{"sessionDuration":"12h"}}}'
    merge = ("patch", "permissioncatalog", "payments", "--type=merge", "-p", patch)
    refused(catalogs.kubectl(*merge, user=user, check=False), "forbidden")
    status = '{"status":{"conditions":[]}}'
    refused(catalogs.kubectl(*merge[:4], "--subresource=status", "-p", status, user=user, check=False), "forbidden")
    assert catalogs.kubectl("get", "permissioncatalog", "payments", user=user).returncode == 0
    stored = catalogs.get("permissioncatalog", "payments")
    assert stored is not None and stored["spec"] == example("payments")["spec"]
    assert catalogs.get("permissioncatalog", "shadow") is None


# --- 81. entries that are not what they say ------------------------------------------------------


@pytest.mark.parametrize(
    ("where", "value", "message"),
    [
        (("baseline", "accounts", 0), "12345", "an AWS account id is 12 digits"),
        (
            ("baseline", "permissions", "managedPolicies", 0),
            "arn:aws:iam::111122223333:policy/Everything",
            "must be an AWS managed policy ARN",
        ),
        (
            ("production", "adds", "lambdaFunctions", 0, "name"),
            "arn:aws:lambda:eu-west-1:444455556666:function:payments-issue-refund",
            "a Lambda function name is 1-64",
        ),
        (("production", "adds", "secrets", "edit", 0, "name"), "payments/*", "no wildcards"),
        (("region",), "Europe", "must be an AWS region"),
    ],
)
def test_81_malformed_entries_are_refused_by_the_schema(
    catalogs: Jit, where: tuple[Any, ...], value: str, message: str
) -> None:
    bad = example("payments")
    node = bad["spec"]
    for key in where[:-1]:
        node = node[key]
    node[where[-1]] = value
    refused(as_gitops(catalogs, bad), message)
    stored = catalogs.get("permissioncatalog", "payments")
    assert stored is not None and stored["spec"] == example("payments")["spec"]


@pytest.mark.parametrize("tier", ["baseline", "production"])
def test_81_an_account_listed_twice_is_refused_by_name(catalogs: Jit, tier: str) -> None:
    bad = example("payments")
    accounts = bad["spec"][tier]["accounts"]
    accounts.append(accounts[0])
    refused(as_gitops(catalogs, bad), f'spec.{tier}.accounts[{len(accounts) - 1}]: Duplicate value: "{accounts[0]}"')
    stored = catalogs.get("permissioncatalog", "payments")
    assert stored is not None and stored["spec"] == example("payments")["spec"]


# --- 82. an S3 path wider than it reads ----------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["payments-scratch/*/secrets", "payments-scratch/a*", "payments-scratch", "payments-*/x", "p/x?y"]
)
def test_82_s3_wildcards_only_as_a_trailing_slash_star(catalogs: Jit, path: str) -> None:
    bad = example("payments")
    bad["spec"]["baseline"]["permissions"]["s3"]["read"] = [path]
    refused(as_gitops(catalogs, bad), "a wildcard only as a trailing /*")
    stored = catalogs.get("permissioncatalog", "payments")
    assert stored is not None and stored["spec"] == example("payments")["spec"]


# --- 83. past AWS's limits -------------------------------------------------------------------------


def test_83_an_inline_policy_past_the_limit_is_refused_before_any_aws_call(catalogs: Jit) -> None:
    bad = example("payments")
    bad["spec"]["production"]["adds"]["lambdaFunctions"] = [{"name": f"payments-job-{i:03}"} for i in range(100)]
    refused(
        as_gitops(catalogs, bad),
        "PermissionCatalog payments cannot be provisioned",
        "the production permission set's inline policy renders to",
        "AWS takes 10,240",
        "the largest part is spec.baseline.permissions.lambdaFunctions and spec.production.adds.lambdaFunctions",
    )
    stored = catalogs.get("permissioncatalog", "payments")
    assert stored is not None and stored["spec"] == example("payments")["spec"]


def test_83_too_many_managed_policies_and_a_long_session_are_refused(catalogs: Jit) -> None:
    bad = example("payments")
    bad["spec"]["production"]["adds"]["managedPolicies"] = [f"arn:aws:iam::aws:policy/Job{i}" for i in range(20)]
    refused(
        as_gitops(catalogs, bad),
        "the production permission set would carry 21 managed policies",
        "at most 20",
    )
    bad = example("payments")
    bad["spec"]["production"]["sessionDuration"] = "13h"
    refused(as_gitops(catalogs, bad), "an AWS session lasts 1h to 12h")
    bad = example("payments")
    bad["spec"]["production"]["groupName"] = bad["spec"]["baseline"]["groupName"]
    refused(as_gitops(catalogs, bad), "spec.production.groupName 'eng-payments' is the baseline group")
    stored = catalogs.get("permissioncatalog", "payments")
    assert stored is not None and stored["spec"] == example("payments")["spec"]


# --- 84. a catalog for a team that does not exist -------------------------------------------------


def test_84_a_catalog_without_its_team_is_stored_with_a_warning(catalogs: Jit) -> None:
    orphan = example("ledger")
    orphan["metadata"]["name"] = "treasury"
    # Its own groups: ledger's production group is team ledger's, and refused to another team (attack 112).
    orphan["spec"]["baseline"]["groupName"] = "eng-treasury"
    orphan["spec"]["production"]["groupName"] = "prod-eng-treasury"
    try:
        result = as_gitops(catalogs, orphan)
        assert result.returncode == 0, result.stderr
        assert "there is no TeamOwnership treasury" in result.stderr
        assert catalogs.get("permissioncatalog", "treasury") is not None
    finally:
        catalogs.kubectl("delete", "permissioncatalog", "treasury", "--ignore-not-found")


# --- 115. a catalog deleted, or a tier removed, under the grants of its permission sets -----------

#: The example catalog provisioned and its assignment-mode Entitlement applied (a fixture: the ARN of
#: the production permission set).
direct = assignments.direct


def test_115_a_catalog_is_not_deleted_while_a_grant_holds_its_permission_set(system: Jit, direct: str) -> None:
    """Deleting the catalog deletes its permission sets, and every assignment with them: refused while
    a grant of it runs, as deleting a request whose access runs is; allowed once the grant ended."""
    system.request("alice-kept", assignments.ENTITLEMENT, duration="1h", user=ALICE)
    system.wait_reason("accessgrant", "alice-kept", "Active")
    for dry_run in (["--dry-run=server"], []):
        result = system.kubectl("delete", "permissioncatalog", "payments", *dry_run, *GITOPS, check=False)
        assert result.returncode != 0, result.stdout
        assert (
            "PermissionCatalog payments gives the permission sets of 1 AccessGrant(s) that have not ended "
            "(alice-kept)" in result.stderr
        ), result.stderr
        assert "End them first (`kubectl jit revoke GRANT` for each" in result.stderr
    catalog = system.get("permissioncatalog", "payments") or {}
    assert catalog and "deletionTimestamp" not in catalog["metadata"]
    assert system.ready_reason("accessgrant", "alice-kept") == "Active"
    assert assignments._assigned(system, direct, ALICE) == set(assignments.ACCOUNTS)
    # Ended: nothing holds the catalog any more (a dry run; later tests use the example catalog).
    system.kubectl("annotate", "accessgrant", "alice-kept", "jitaccess.dev/revoked=true", user=ALICE)
    system.wait_reason("accessgrant", "alice-kept", "Revoked")
    system.kubectl("delete", "permissioncatalog", "payments", "--dry-run=server", *GITOPS)


def patch_refused(system: Jit, patch: str, held: str) -> None:
    """The JSON patch of the payments catalog refused, dry run and real write alike, as changing the
    production tier under `held` (the grant named, and what the change would do)."""
    for dry_run in (["--dry-run=server"], []):
        result = system.kubectl(
            "patch", "permissioncatalog", "payments", "--type=json", "-p", patch, *dry_run, *GITOPS, check=False
        )
        refused(
            result,
            "PermissionCatalog payments gives the production permission set(s) to 1 AccessGrant(s) that have not "
            f"ended {held}",
            "End them first (`kubectl jit revoke GRANT` for each",
        )


def test_115_a_tier_a_grant_holds_is_not_removed_from_the_catalog(system: Jit, direct: str, catalogs: Jit) -> None:
    """Removing `spec.production` deletes the production permission set, and every assignment of it,
    as deleting the catalog does: refused while a grant of it runs, admitted once the grant ended.
    A change that deletes nothing a grant holds is admitted meanwhile: an account the tier no longer
    lists keeps the assignments of live grants there (only the tier's group leaves it)."""
    system.request("alice-tier", assignments.ENTITLEMENT, duration="1h", user=ALICE)
    system.wait_reason("accessgrant", "alice-tier", "Active")
    without = json.dumps([{"op": "remove", "path": "/spec/production"}])
    patch_refused(system, without, "(alice-tier): removing spec.production would delete them")
    catalog = system.get("permissioncatalog", "payments") or {}
    assert catalog["spec"].get("production"), "the tier is still there"
    moved = {"spec": {"production": {"accounts": ["555566667777"]}}}
    system.kubectl("patch", "permissioncatalog", "payments", "--type=merge", "-p", json.dumps(moved), *GITOPS)

    def provisioned() -> bool:
        tier = ((system.get("permissioncatalog", "payments") or {}).get("status") or {}).get("production") or {}
        return [a["account"] for a in tier.get("accounts") or []] == ["555566667777"]

    eventually(provisioned, timeout=60, what="the production tier moved to 555566667777")
    assert system.ready_reason("accessgrant", "alice-tier") == "Active"
    assert assignments._assigned(system, direct, ALICE) == set(assignments.ACCOUNTS)
    # Ended: nothing holds the tier any more (a dry run: the fixture puts the example catalog back).
    system.kubectl("annotate", "accessgrant", "alice-tier", "jitaccess.dev/revoked=true", user=ALICE)
    system.wait_reason("accessgrant", "alice-tier", "Revoked")
    system.kubectl("patch", "permissioncatalog", "payments", "--type=json", "-p", without, "--dry-run=server", *GITOPS)


def test_115_a_group_mode_grant_holds_its_tier_and_its_group(system: Jit, catalogs: Jit) -> None:
    """A membership of the production tier's group is what gives its permission set: removing the
    tier would delete it, and another `groupName` would move it to that group, the grant's member
    left in a group that gives nothing while the grant said Active. Both refused while the grant
    runs, the tier and the membership kept; both admitted once it ended."""
    system.request("alice-member", "prod-eng-payments", duration="1h", user=ALICE)
    system.wait_reason("accessgrant", "alice-member", "Active")
    assert system.members("prod-eng-payments") == {ALICE}
    holds_tier_and_group(system, "alice-member")


def holds_tier_and_group(system: Jit, grant: str) -> None:
    """The Active group-mode grant `grant` (ALICE's, of the payments production group) holds the tier
    and its group: removing `spec.production`, or another `groupName`, refused (the tier, its group
    and the membership kept); both admitted once the grant is revoked."""
    without = json.dumps([{"op": "remove", "path": "/spec/production"}])
    regrouped = json.dumps([{"op": "replace", "path": "/spec/production/groupName", "value": "prod-eng-payments-v2"}])
    said = {
        without: f"({grant}): removing spec.production would delete them",
        regrouped: f"({grant}) through their membership of prod-eng-payments: changing "
        "spec.production.groupName would move them to prod-eng-payments-v2",
    }
    for patch, fragment in said.items():
        patch_refused(system, patch, fragment)
    production = ((system.get("permissioncatalog", "payments") or {}).get("spec") or {}).get("production") or {}
    assert production.get("groupName") == "prod-eng-payments", "the tier and its group are kept"
    assert system.ready_reason("accessgrant", grant) == "Active"
    assert system.members("prod-eng-payments") == {ALICE}
    # Ended: nothing holds the tier or its group any more (dry runs: the fixture puts the catalog back).
    system.kubectl("annotate", "accessgrant", grant, "jitaccess.dev/revoked=true", user=ALICE)
    system.wait_reason("accessgrant", grant, "Revoked")
    for patch in said:
        system.kubectl(
            "patch", "permissioncatalog", "payments", "--type=json", "-p", patch, "--dry-run=server", *GITOPS
        )


@pytest.fixture
def by_id(system: Jit, direct: str, catalogs: Jit) -> Iterator[str]:
    """An Entitlement of the payments team naming the production tier's group by its GroupId (the
    example's otherwise), once the catalog's status records the id the tier's group resolved to."""
    group_id = system.ic.group_id("prod-eng-payments")

    def recorded() -> bool:
        tier = ((system.get("permissioncatalog", "payments") or {}).get("status") or {}).get("production") or {}
        return tier.get("groupId") == group_id and tier.get("groupName") == "prod-eng-payments"

    eventually(recorded, timeout=60, what=f"status.production.groupId {group_id}; log:\n{system.operator.tail(20)}")
    entitlement = copy.deepcopy(
        next(
            d
            for d in yaml.safe_load_all((EXAMPLES.parent / "02-entitlements.yaml").read_text())
            if d and d["metadata"]["name"] == "prod-eng-payments"
        )
    )
    entitlement["metadata"]["name"] = "prod-eng-payments-by-id"
    entitlement["spec"]["identityCenter"] = {"groupId": group_id}
    system.apply(entitlement)
    system.wait_reason("entitlement", "prod-eng-payments-by-id", "Resolved", timeout=30)
    yield "prod-eng-payments-by-id"
    system.clean()  # the grants first: an Entitlement is not removed under live access
    system.kubectl("delete", "entitlement", "prod-eng-payments-by-id", "--ignore-not-found", "--timeout=60s")


def test_115_a_grant_naming_the_group_by_id_holds_the_tier_and_its_group(system: Jit, by_id: str) -> None:
    """The grant of an Entitlement naming the tier's group by GroupId says the id, not the tier's
    `groupName`: it holds the tier and its group all the same, matched by the id the catalog's
    status records. Without it, removing the tier or giving it another group was admitted, the
    grant's membership then giving nothing while the grant said Active."""
    system.request("alice-by-id", by_id, duration="1h", user=ALICE)
    grant = system.wait_reason("accessgrant", "alice-by-id", "Active")
    assert grant["spec"]["groupName"] == grant["status"]["groupId"] == system.ic.group_id("prod-eng-payments")
    assert system.members("prod-eng-payments") == {ALICE}
    refused(
        system.kubectl("delete", "permissioncatalog", "payments", "--dry-run=server", *GITOPS, check=False),
        "PermissionCatalog payments gives the permission sets of 1 AccessGrant(s) that have not ended (alice-by-id)",
    )
    holds_tier_and_group(system, "alice-by-id")

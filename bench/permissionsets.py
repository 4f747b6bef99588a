"""What PermissionCatalogs cost in sso-admin calls and time, under AWS's quota.

`teams` catalogs (baseline and production tiers, `accounts` accounts each: 2 x teams permission
sets) are reconciled by the operator's own pass (`handlers.permissionsets.sync`, run in this
process over the real API server, 8 at a time as the operator's workers would) against the
emulator's sso-admin with its asynchronous requests taking `async_seconds` and a quota of 20 calls
a second per operation enforced by the emulator (`faults.throttle`: beyond it, ThrottlingException),
the operator keeping under it with its own rate limiter (`JITACCESS_SSO_RATE_LIMIT`, 20).

Measured: the first provisioning of everything; a full re-sync (every catalog verified against
Identity Center, nothing to change: what the periodic pass and a restart cost); one catalog change
(one Lambda function added to one team's production tier); each as wall time and calls by
operation, and how many calls the quota refused.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bench.system import System
from jitaccess.adapters.identitycenter import IdentityCenter
from jitaccess.adapters.kube import Kube, load_client_config
from jitaccess.api import names
from jitaccess.handlers import permissionsets
from jitaccess.handlers.runtime import Runtime
from jitaccess.settings import Settings

#: sso-admin operations the pass makes, each throttled by the emulator at the quota.
OPERATIONS = (
    "ListPermissionSets",
    "ListTagsForResource",
    "DescribePermissionSet",
    "GetInlinePolicyForPermissionSet",
    "ListManagedPoliciesInPermissionSet",
    "ListCustomerManagedPolicyReferencesInPermissionSet",
    "ListAccountAssignments",
    "ListAccountsForProvisionedPermissionSet",
    "CreatePermissionSet",
    "TagResource",
    "UpdatePermissionSet",
    "PutInlinePolicyToPermissionSet",
    "AttachManagedPolicyToPermissionSet",
    "CreateAccountAssignment",
    "DescribeAccountAssignmentCreationStatus",
    "ProvisionPermissionSet",
    "DescribePermissionSetProvisioningStatus",
    "DeleteAccountAssignment",
    "DeletePermissionSet",
)
QUOTA = 20.0


def _catalog(team: int, accounts: int, lambdas: int = 1) -> dict[str, Any]:
    base = [f"{team:03d}{n:09d}" for n in range(accounts)]
    prod = [f"9{team:03d}{n:08d}" for n in range(accounts)]
    return {
        "apiVersion": f"{names.GROUP}/{names.VERSION}",
        "kind": "PermissionCatalog",
        "metadata": {"name": f"team{team}"},
        "spec": {
            "region": "eu-west-1",
            "baseline": {
                "groupName": f"team{team}-base",
                "accounts": base,
                "permissions": {
                    "managedPolicies": ["arn:aws:iam::aws:policy/ReadOnlyAccess"],
                    "lambdaFunctions": [{"name": f"team{team}-replay"}],
                    "s3": {"read": [f"team{team}-exports/reports/*"]},
                },
            },
            "production": {
                "groupName": f"team{team}-prod",
                "accounts": prod,
                "adds": {"lambdaFunctions": [{"name": f"team{team}-fix-{n}"} for n in range(lambdas)]},
            },
        },
    }


def resync(system: System, teams: int, accounts: int, async_seconds: float = 1.0) -> dict[str, Any]:
    assert system.ic is not None and system.cp is not None
    ic = system.ic
    ic.sso.async_seconds = async_seconds
    for operation in OPERATIONS:
        ic.faults.throttle([operation], rate=QUOTA)
    for team in range(teams):
        ic.create_group(f"team{team}-base")
        ic.create_group(f"team{team}-prod")
    os.environ.update({**ic.env(), "KUBECONFIG": str(system.cp.admin_kubeconfig)})
    load_client_config()
    rt = Runtime(
        settings=Settings(region=ic.region, endpoint_url=ic.endpoint_url, sso_rate_limit=QUOTA),
        identity_center=IdentityCenter.connect(
            ic.identity_store_id, region=ic.region, endpoint_url=ic.endpoint_url, rate_limit=QUOTA
        ),
        kube=Kube(),
    )
    # Events are kopf's to post, from inside a handler; this pass runs outside kopf.
    setattr(permissionsets, "record", lambda *_a, **_k: None)  # noqa: B010
    for team in range(teams):
        system.custom.create_cluster_custom_object(names.GROUP, names.VERSION, names.CATALOGS, _catalog(team, accounts))

    def everything(verify: bool) -> dict[str, Any]:
        ic.faults.calls.clear()
        ic.faults.throttled.clear()
        started = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda t: permissionsets.sync(rt, f"team{t}", verify=verify), range(teams)))
        return _measured(ic.faults.calls, ic.faults.throttled, time.monotonic() - started)

    try:
        first = everything(True)
        again = everything(True)
        ic.faults.calls.clear()
        ic.faults.throttled.clear()
        system.custom.patch_cluster_custom_object(
            names.GROUP, names.VERSION, names.CATALOGS, "team0", {"spec": _catalog(0, accounts, lambdas=2)["spec"]}
        )
        started = time.monotonic()
        permissionsets.sync(rt, "team0", verify=False)
        change = _measured(ic.faults.calls, ic.faults.throttled, time.monotonic() - started)
    finally:
        for team in range(teams):
            system.custom.delete_cluster_custom_object(names.GROUP, names.VERSION, names.CATALOGS, f"team{team}")
        ic.faults.clear()
    return {
        "teams": teams,
        "accounts_per_tier": accounts,
        "permission_sets": 2 * teams,
        "async_seconds": async_seconds,
        "first_provisioning": first,
        "full_resync": again,
        "one_change": change,
    }


def _measured(calls: Counter[str], throttled: Counter[str], seconds: float) -> dict[str, Any]:
    return {
        "seconds": round(seconds, 2),
        "calls": sum(calls.values()),
        "by_operation": dict(sorted(calls.items())),
        "throttled": sum(throttled.values()),
    }

"""A team's PermissionCatalog rendered into IAM Identity Center permission sets, and checked against AWS's limits.

`render(catalog, tier)` is the one place that says what a catalog entry allows in AWS: a
`PermissionSetSpec` (name, description, session duration, inline policy, AWS managed policies,
accounts, tags, the group it is assigned to) for the reconciler to make Identity Center match.
Production renders baseline's permissions plus its `adds`, so it can never allow less.

The inline policy is least privilege, one statement per kind of access (the action sets below,
listed in docs/api.md), with resources built from the entry's region and account (or the catalog's
region and each account of the tier). It is deterministic: lists sorted and de-duplicated, Sids
derived from the statement's content, so an unchanged catalog renders to the same policy (and the
same `digest`), and never costs a re-provisioning.

`problems` is what admission refuses before any AWS call (the rendered policy over AWS's size
limit, too many managed policies, a name Identity Center would refuse), each naming the entry and
the limit, and `review` adds what the other policy objects make of its groups (`standing`); `warnings` what it only warns about. `with_denied_users` adds the session-revocation
deny statements (conditioned on `identitystore:UserId`, as AWS documents for revoking the sessions
of a permission set, and for users who hold the group again on `aws:TokenIssueTime` as well: only
their sessions issued before the revocation) to a rendered policy.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from jitaccess.api import limits, names, wire
from jitaccess.api.models import (
    CatalogEntry,
    EcsServiceEntry,
    LambdaEntry,
    PermissionCatalog,
    Permissions,
    PipelineEntry,
    S3Access,
    SecretEntry,
    SecretsAccess,
)
from jitaccess.domain import standing
from jitaccess.domain.admission import ALLOW, INVALID, Obj, OperatorIdentity, Refusal, Verdict, review_bookkeeping
from jitaccess.domain.durations import parse_duration
from jitaccess.domain.teams import Caller
from jitaccess.errors import InvalidInput

Tier = names.Tier
TIERS = names.TIERS
#: The permission set's name is `jit-<team>-<short tier>`: Identity Center allows 32 characters.
SHORT_TIER: dict[Tier, str] = {"baseline": "base", "production": "prod"}
NAME_PREFIX = "jit-"
#: Tags on every permission set jitaccess creates: only what carries them is jitaccess's to change or delete.
MANAGED_BY_TAG, MANAGED_BY = "managed-by", "jitaccess"
TEAM_TAG, TIER_TAG = "jitaccess.dev/team", "jitaccess.dev/tier"
PARTITION = "aws"
POLICY_VERSION = "2012-10-17"
#: The Sid of the session-revocation statement: fixed, so that it is found and replaced, never doubled.
DENY_SID = "JitaccessRevokedSessions"
#: The condition key AWS documents for denying one Identity Center user's sessions of a permission set.
USER_ID_CONDITION_KEY = "identitystore:UserId"
#: The Sids of the statements denying the sessions issued before a revocation to users who hold the
#: group again: this prefix and the revocation's time (`JitaccessRevokedSessionsIssuedBefore20261201T090000Z`),
#: so each is found and replaced, never doubled, and users revoked at one time share one.
ISSUED_BEFORE_SID = "JitaccessRevokedSessionsIssuedBefore"
#: The condition key of when a session was issued (IAM's "revoke active sessions" uses it).
ISSUE_TIME_CONDITION_KEY = "aws:TokenIssueTime"

# The action sets, by kind of entry (docs/api.md lists them too; a unit test keeps both in step).
PIPELINE_ACTIONS = (
    "codepipeline:GetPipeline",
    "codepipeline:GetPipelineExecution",
    "codepipeline:GetPipelineState",
    "codepipeline:ListActionExecutions",
    "codepipeline:ListPipelineExecutions",
    "codepipeline:StartPipelineExecution",
    "codepipeline:StopPipelineExecution",
)
#: Retrying is authorized on the pipeline's stages (`<pipeline>/<stage>`), not on the pipeline.
PIPELINE_STAGE_ACTIONS = ("codepipeline:RetryStageExecution",)
LAMBDA_ACTIONS = ("lambda:InvokeFunction",)
ECS_EXEC_ACTIONS = ("ecs:ExecuteCommand",)
ECS_DESCRIBE_ACTIONS = ("ecs:DescribeTasks",)
ECS_LIST_ACTIONS = ("ecs:ListTasks",)
#: The tag ECS puts on a service's tasks when the service sets `enableECSManagedTags`.
ECS_SERVICE_TAG = "aws:ResourceTag/aws:ecs:serviceName"
S3_READ_ACTIONS = ("s3:GetObject",)
S3_LIST_ACTIONS = ("s3:ListBucket",)
S3_WRITE_ACTIONS = ("s3:DeleteObject", "s3:PutObject")
SECRET_READ_ACTIONS = ("secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue")
SECRET_EDIT_ACTIONS = ("secretsmanager:DescribeSecret", "secretsmanager:PutSecretValue", "secretsmanager:UpdateSecret")
#: Secrets Manager appends six random characters to a secret's name in its ARN.
SECRET_SUFFIX = "-??????"

Statement = dict[str, Any]


@dataclass(frozen=True)
class PermissionSetSpec:
    """One permission set as Identity Center should have it (what the reconciler makes true)."""

    name: str
    description: str
    session_duration: str
    #: The inline policy document; empty (`{}`) when the tier grants nothing beyond managed policies.
    inline_policy: dict[str, Any]
    managed_policy_arns: tuple[str, ...]
    accounts: tuple[str, ...]
    tags: dict[str, str]
    group_name: str
    team: str
    tier: Tier
    digest: str = field(init=False)

    def __post_init__(self) -> None:
        content = {
            "name": self.name,
            "description": self.description,
            "sessionDuration": self.session_duration,
            "inlinePolicy": self.inline_policy,
            "managedPolicyArns": self.managed_policy_arns,
            "accounts": self.accounts,
            "tags": self.tags,
            "groupName": self.group_name,
        }
        object.__setattr__(self, "digest", _digest(content, 16))

    @property
    def inline_policy_json(self) -> str:
        """The inline policy as PutInlinePolicyToPermissionSet takes it (compact); "" when there is none."""
        return policy_json(self.inline_policy)


def policy_json(policy: Mapping[str, Any]) -> str:
    """A policy document as compact JSON, keys sorted: what is sent, and what AWS's size limit counts."""
    return json.dumps(policy, separators=(",", ":"), sort_keys=True) if policy else ""


def _digest(content: Any, length: int) -> str:
    return hashlib.sha256(json.dumps(content, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:length]


# --- the catalog, per tier ---------------------------------------------------------------------


def tiers(catalog: PermissionCatalog) -> tuple[Tier, ...]:
    """The tiers the catalog has (production is optional)."""
    return TIERS if catalog.spec.production is not None else ("baseline",)


def permission_set_name(team: str, tier: Tier) -> str:
    return f"{NAME_PREFIX}{team}-{SHORT_TIER[tier]}"


def permissions(catalog: PermissionCatalog, tier: Tier) -> Permissions:
    """What the tier may do: baseline's permissions, plus production's `adds` for production."""
    base = catalog.spec.baseline.permissions
    production = catalog.spec.production
    if tier == "baseline":
        return base
    if production is None:
        raise InvalidInput("spec.production", "is not set: the catalog has no production tier")
    adds = production.adds
    # Constructed, not validated: a tier's total may exceed one list's bound, which `problems` reports.
    return Permissions.model_construct(
        managed_policies=[*base.managed_policies, *adds.managed_policies],
        pipelines=[*base.pipelines, *adds.pipelines],
        lambda_functions=[*base.lambda_functions, *adds.lambda_functions],
        ecs_exec=[*base.ecs_exec, *adds.ecs_exec],
        s3=S3Access.model_construct(read=[*base.s3.read, *adds.s3.read], write=[*base.s3.write, *adds.s3.write]),
        secrets=SecretsAccess.model_construct(
            read=[*base.secrets.read, *adds.secrets.read], edit=[*base.secrets.edit, *adds.secrets.edit]
        ),
    )


def _tier_settings(catalog: PermissionCatalog, tier: Tier) -> tuple[str, list[str], str]:
    """The tier's group, accounts and session duration."""
    spec = catalog.spec.baseline if tier == "baseline" else catalog.spec.production
    if spec is None:
        raise InvalidInput("spec.production", "is not set: the catalog has no production tier")
    return spec.group_name, spec.accounts, spec.session_duration


def session_duration_iso(text: str, where: str = "sessionDuration") -> str:
    """A duration such as `1h30m` as the ISO 8601 duration Identity Center takes (`PT1H30M`)."""
    seconds = int(parse_duration(text, where).total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{n}{unit}" for n, unit in ((hours, "H"), (minutes, "M"), (secs, "S")) if n]
    return "PT" + "".join(parts)


def render(catalog: PermissionCatalog, tier: Tier) -> PermissionSetSpec:
    """The permission set of one tier of a team's catalog (the catalog's name is the team's)."""
    team = catalog.metadata.name
    group, accounts, session = _tier_settings(catalog, tier)
    allowed = permissions(catalog, tier)
    return PermissionSetSpec(
        name=permission_set_name(team, tier),
        description=f"jitaccess: the {tier} role of team {team} (PermissionCatalog {team})",
        session_duration=session_duration_iso(session, f"spec.{tier}.sessionDuration"),
        inline_policy=policy_document(allowed, accounts, catalog.spec.region),
        managed_policy_arns=tuple(sorted(set(allowed.managed_policies))),
        accounts=tuple(sorted(set(accounts))),
        tags={MANAGED_BY_TAG: MANAGED_BY, TEAM_TAG: team, TIER_TAG: tier},
        group_name=group,
        team=team,
        tier=tier,
    )


# --- the inline policy -------------------------------------------------------------------------


def policy_document(allowed: Permissions, accounts: Iterable[str], region: str) -> dict[str, Any]:
    """The least-privilege inline policy of `allowed`, for a permission set assigned in `accounts`."""
    statements = [s for part in _parts(allowed, tuple(sorted(set(accounts))), region).values() for s in part]
    return _document(statements)


def _document(statements: list[Statement]) -> dict[str, Any]:
    if not statements:
        return {}
    return {"Version": POLICY_VERSION, "Statement": sorted(statements, key=lambda s: str(s["Sid"]))}


def _parts(allowed: Permissions, accounts: tuple[str, ...], region: str) -> dict[str, list[Statement]]:
    """The statements of each kind of entry, by the catalog field they come from."""
    return {
        "pipelines": _pipelines(allowed.pipelines, accounts, region),
        "lambdaFunctions": _lambdas(allowed.lambda_functions, accounts, region),
        "ecsExec": _ecs(allowed.ecs_exec, accounts, region),
        "s3": _s3(allowed.s3),
        "secrets": _secrets(allowed.secrets, accounts, region),
    }


def _statement(purpose: str, actions: Iterable[str], resources: Iterable[str], condition: Any = None) -> Statement:
    """One Allow statement; its Sid is `purpose` and a digest of the rest, so it changes only with it."""
    body: Statement = {"Effect": "Allow", "Action": sorted(set(actions)), "Resource": sorted(set(resources))}
    if condition:
        body["Condition"] = condition
    return {"Sid": purpose + _digest(body, 8), **body}


def _where(entry: CatalogEntry, accounts: tuple[str, ...], region: str) -> list[tuple[str, str]]:
    """(account, region) pairs an entry is rendered in: its own, or the tier's accounts and the default region."""
    return [(account, entry.region or region) for account in ((entry.account,) if entry.account else accounts)]


def _arn(service: str, region: str, account: str, resource: str) -> str:
    return f"arn:{PARTITION}:{service}:{region}:{account}:{resource}"


def _pipelines(entries: list[PipelineEntry], accounts: tuple[str, ...], region: str) -> list[Statement]:
    arns = [_arn("codepipeline", r, a, e.name) for e in entries for a, r in _where(e, accounts, region)]
    if not arns:
        return []
    stages = [f"{arn}/*" for arn in arns]
    return [
        _statement("CodePipeline", PIPELINE_ACTIONS, arns),
        _statement("CodePipelineStages", PIPELINE_STAGE_ACTIONS, stages),
    ]


def _lambdas(entries: list[LambdaEntry], accounts: tuple[str, ...], region: str) -> list[Statement]:
    # The function and its qualified forms (`name:alias`, `name:3`): invoking a version is invoking it.
    arns = [
        _arn("lambda", r, a, f"function:{e.name}{qualifier}")
        for e in entries
        for a, r in _where(e, accounts, region)
        for qualifier in ("", ":*")
    ]
    return [_statement("LambdaInvoke", LAMBDA_ACTIONS, arns)] if arns else []


def _ecs(entries: list[EcsServiceEntry], accounts: tuple[str, ...], region: str) -> list[Statement]:
    """ECS Exec into the listed services' tasks. `ecs:ExecuteCommand` is authorized on the cluster and
    the task together; the condition on the tag ECS puts on a service's tasks (`enableECSManagedTags`)
    keeps it to the listed services, as AWS documents tag-limited ECS Exec. Finding the task takes
    `ecs:ListTasks` (which has no resource but the cluster condition) and `ecs:DescribeTasks`."""
    services: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    for entry in entries:
        for account, where in _where(entry, accounts, region):
            services[(account, where, entry.cluster)].add(entry.service)
    if not services:
        return []
    clusters = {key: _arn("ecs", key[1], key[0], f"cluster/{key[2]}") for key in services}
    tasks = {key: _arn("ecs", key[1], key[0], f"task/{key[2]}/*") for key in services}
    statements = [
        _statement("EcsDescribeTasks", ECS_DESCRIBE_ACTIONS, tasks.values()),
        _statement("EcsListTasks", ECS_LIST_ACTIONS, ["*"], {"ArnEquals": {"ecs:cluster": sorted(clusters.values())}}),
    ]
    statements += [
        _statement(
            "EcsExec",
            ECS_EXEC_ACTIONS,
            [clusters[key], tasks[key]],
            {"StringEquals": {ECS_SERVICE_TAG: sorted(names)}},
        )
        for key, names in services.items()
    ]
    return statements


def s3_parts(path: str) -> tuple[str, str]:
    """`bucket/prefix/*` -> (`bucket`, `prefix/*`); `bucket/*` -> (`bucket`, `*`)."""
    bucket, _, key = path.partition("/")
    return bucket, key


def _s3(access: S3Access) -> list[Statement]:
    statements = []
    if access.read:
        statements.append(_statement("S3Read", S3_READ_ACTIONS, [f"arn:{PARTITION}:s3:::{p}" for p in access.read]))
    if access.write:
        statements.append(_statement("S3Write", S3_WRITE_ACTIONS, [f"arn:{PARTITION}:s3:::{p}" for p in access.write]))
    # Listing: the whole bucket where a read path is the whole bucket, else only the prefixes read.
    prefixes: dict[str, set[str]] = defaultdict(set)
    for path in access.read:
        bucket, key = s3_parts(path)
        prefixes[bucket].add(key)
    whole = sorted(bucket for bucket, keys in prefixes.items() if "*" in keys)
    if whole:
        statements.append(_statement("S3List", S3_LIST_ACTIONS, [f"arn:{PARTITION}:s3:::{b}" for b in whole]))
    for bucket, keys in prefixes.items():
        if "*" not in keys:
            # `reports/*` lists `reports/` itself and everything under it.
            allowed = sorted({v for k in keys for v in ((k[:-1], k) if k.endswith("/*") else (k,))})
            condition = {"StringLike": {"s3:prefix": allowed}}
            statements.append(_statement("S3List", S3_LIST_ACTIONS, [f"arn:{PARTITION}:s3:::{bucket}"], condition))
    return statements


def _secrets(access: SecretsAccess, accounts: tuple[str, ...], region: str) -> list[Statement]:
    def arns(entries: list[SecretEntry]) -> list[str]:
        return [
            _arn("secretsmanager", r, a, f"secret:{e.name}{SECRET_SUFFIX}")
            for e in entries
            for a, r in _where(e, accounts, region)
        ]

    statements = []
    if access.read:
        statements.append(_statement("SecretsRead", SECRET_READ_ACTIONS, arns(access.read)))
    if access.edit:
        statements.append(_statement("SecretsEdit", SECRET_EDIT_ACTIONS, arns(access.edit)))
    return statements


# --- session revocation ------------------------------------------------------------------------


def with_denied_users(
    policy: Mapping[str, Any], user_ids: Iterable[str], issued_before: Iterable[tuple[datetime, str]] = ()
) -> dict[str, Any]:
    """`policy` with every action denied to the sessions of `user_ids` (Identity Store UserIds, sorted),
    and to the sessions issued before `since` of each `(since, UserId)` of `issued_before` (users who
    hold the group again: the sessions of their new grant are theirs, the ones from before their
    revocation never are), one statement per `since`; any earlier revocation statement is replaced,
    and none is added for no users."""
    kept = [dict(s) for s in policy.get("Statement", []) if not _is_revocation(s)]
    ids = sorted(set(user_ids))
    if ids:
        kept.append(_deny_all(DENY_SID, {"StringEquals": {USER_ID_CONDITION_KEY: ids}}))
    before: defaultdict[str, set[str]] = defaultdict(set)
    for since, user_id in issued_before:
        if user_id not in ids:  # denied whatever the time already
            before[revoked_before(since)].add(user_id)
    for stamp, users in before.items():
        condition = {"StringEquals": {USER_ID_CONDITION_KEY: sorted(users)}, **sessions_issued_before(stamp)}
        kept.append(_deny_all(ISSUED_BEFORE_SID + stamp.replace("-", "").replace(":", ""), condition))
    return _document(kept)


def issue_time(when: datetime) -> str:
    """`when` as `aws:TokenIssueTime` is compared with: ISO 8601 in UTC, whole seconds."""
    return wire.rfc3339(when)


def revoked_before(since: datetime) -> str:
    """The `aws:TokenIssueTime` every session issued by a revocation at `since` is before: the whole
    second after it. Revocation times are recorded to the second, and a session's issue time is
    finer: `since` itself would leave valid a session issued in the revocation's own second, before
    it (one stolen a moment before the revocation). A session issued after the revocation but in
    that second is denied too: its user signs in again."""
    return issue_time(since.replace(microsecond=0) + timedelta(seconds=1))


def sessions_issued_before(stamp: str) -> dict[str, Any]:
    """The condition that holds for the sessions issued before `stamp` (`revoked_before`)."""
    return {"DateLessThan": {ISSUE_TIME_CONDITION_KEY: stamp}}


def _deny_all(sid: str, condition: dict[str, Any]) -> Statement:
    return {"Sid": sid, "Effect": "Deny", "Action": "*", "Resource": "*", "Condition": condition}


def _is_revocation(statement: Mapping[str, Any]) -> bool:
    sid = str(statement.get("Sid", ""))
    return sid == DENY_SID or sid.startswith(ISSUED_BEFORE_SID)


# --- what admission checks ---------------------------------------------------------------------


#: The most an inline policy may render to, keeping room for session revocations.
INLINE_POLICY_BUDGET = limits.INLINE_POLICY_MAX_CHARACTERS - limits.REVOCATION_RESERVE_CHARACTERS


def problems(catalog: PermissionCatalog) -> list[str]:
    """Why Identity Center would refuse (or jitaccess could not revoke sessions of) the catalog's
    permission sets, each naming the entry and the limit; empty when it can be provisioned."""
    found: list[str] = []
    team = catalog.metadata.name
    longest = limits.PERMISSION_SET_NAME_MAX_LENGTH - len(permission_set_name("", "production"))
    if len(team) > longest:
        found.append(
            f"metadata.name {team!r} is {len(team)} characters: the permission sets are named "
            f"{permission_set_name(team, 'production')!r} and Identity Center allows "
            f"{limits.PERMISSION_SET_NAME_MAX_LENGTH} characters, so a team's catalog name has at most {longest}"
        )
    production = catalog.spec.production
    if production is not None and production.group_name == catalog.spec.baseline.group_name:
        found.append(
            f"spec.production.groupName {production.group_name!r} is the baseline group: the production "
            "permission set must go to the group of the team's Entitlement, which people hold only through a grant"
        )
    for tier in tiers(catalog):
        found += _tier_problems(catalog, tier)
    return found


def _tier_problems(catalog: PermissionCatalog, tier: Tier) -> list[str]:
    found = []
    _group, accounts, session = _tier_settings(catalog, tier)
    where = f"spec.{tier}.sessionDuration"
    try:
        hours = parse_duration(session, where).total_seconds() / 3600
    except InvalidInput as exc:
        found.append(str(exc))
    else:
        if not limits.SESSION_HOURS_MIN <= hours <= limits.SESSION_HOURS_MAX:
            found.append(
                f"{where} {session!r}: an AWS session lasts {limits.SESSION_HOURS_MIN}h to "
                f"{limits.SESSION_HOURS_MAX}h (the permission set's SessionDuration)"
            )
    allowed = permissions(catalog, tier)
    policies = sorted(set(allowed.managed_policies))
    if len(policies) > limits.MANAGED_POLICIES_MAX:
        counted = "spec.baseline.permissions.managedPolicies" + (
            " and spec.production.adds.managedPolicies" if tier == "production" else ""
        )
        found.append(
            f"the {tier} permission set would carry {len(policies)} managed policies ({counted}): Identity Center "
            f"attaches at most {limits.MANAGED_POLICIES_MAX} to a permission set"
        )
    if found:
        return found  # the session duration must parse before the tier renders
    size = len(render(catalog, tier).inline_policy_json)
    if size > INLINE_POLICY_BUDGET:
        parts = _parts(allowed, tuple(sorted(set(accounts))), catalog.spec.region)
        sizes = {name: len(policy_json(_document(part))) for name, part in parts.items() if part}
        largest = max(sizes, key=lambda name: sizes[name])
        source = f"spec.baseline.permissions.{largest}" + (
            f" and spec.production.adds.{largest}" if tier == "production" else ""
        )
        found.append(
            f"the {tier} permission set's inline policy renders to {size:,} characters: AWS takes "
            f"{limits.INLINE_POLICY_MAX_CHARACTERS:,} (not counting whitespace) and jitaccess keeps "
            f"{limits.REVOCATION_RESERVE_CHARACTERS:,} of them for session revocations, so at most "
            f"{INLINE_POLICY_BUDGET:,}: list fewer entries (the largest part is {source}, {sizes[largest]:,} "
            f"characters across {len(accounts)} account(s)), or move them to a managed policy"
        )
    return found


def warnings(catalog: PermissionCatalog) -> list[str]:
    """What admission lets through but says: more managed policies than an IAM role takes by default."""
    found = []
    for tier in tiers(catalog):
        count = len(set(permissions(catalog, tier).managed_policies))
        if limits.MANAGED_POLICIES_ROLE_DEFAULT < count <= limits.MANAGED_POLICIES_MAX:
            found.append(
                f"the {tier} permission set carries {count} managed policies: an IAM role takes "
                f"{limits.MANAGED_POLICIES_ROLE_DEFAULT} unless the IAM quota 'Managed policies attached to an "
                "IAM role' is raised in every account it is assigned in, or provisioning fails there"
            )
    return found


def review(
    operation: str,
    old: Obj | None,
    new: Obj | None,
    caller: Caller,
    *,
    operator: OperatorIdentity,
    catalogs: Iterable[Obj] = (),
    entitlements: Iterable[Obj] = (),
) -> Verdict:
    """A PermissionCatalog comes from GitOps (RBAC says who may write one): besides kopf's bookkeeping,
    a new or changed spec must render within AWS's limits (`problems`) and keep production held only
    through grants, given the other `catalogs` and the `entitlements` stored (`standing`), with no
    GroupId written as a tier's group name (`standing.ids_for_names`), all of them said at once."""
    refusal = review_bookkeeping(operation, old, new, caller, operator)
    if refusal is not None or new is None:
        return refusal or ALLOW
    if old is not None and wire.spec(old) == wire.spec(new):
        return ALLOW  # metadata only: a catalog stored before a limit changed is not held up by it
    try:
        catalog = PermissionCatalog.model_validate(new)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        return Refusal(f"{names.PERMISSION_CATALOG} {where}: {first['msg']}", INVALID)
    found = (
        problems(catalog) + standing.ids_for_names(new, old) + standing.catalog_problems(new, catalogs, entitlements)
    )
    if not found:
        return ALLOW
    name = catalog.metadata.name
    return Refusal(f"{names.PERMISSION_CATALOG} {name} cannot be provisioned: " + "; ".join(found), INVALID)

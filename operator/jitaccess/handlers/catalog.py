"""TeamOwnership and Entitlement handlers: report whether each is usable, scan for drift, and
let a deleted Entitlement go once no access it gave remains.

These objects come from a GitOps repo; the operator only writes their status (and, on
Entitlements, kopf's finalizer). An Entitlement is `Ready` once its owner team exists and its
Identity Center group resolves. The periodic scan also finds group members that no live grant
backs (someone added them by hand in AWS) and removes them, since rule 1 of the API says a user
is in the group only while a grant says so. A deleted Entitlement is kept, and its group
scanned, until its last grant has ended (`domain.releases` says why).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import kopf
from pydantic import ValidationError

from jitaccess import metrics
from jitaccess.api import names, wire
from jitaccess.api.models import Entitlement, TeamOwnership, TeamOwnershipSpec
from jitaccess.domain import admission, groupids, overlaps, reasons, releases, standing
from jitaccess.domain import assignments as assignment_rules
from jitaccess.domain import conditions as cond
from jitaccess.domain import requests as request_rules
from jitaccess.domain.grants import membership_key
from jitaccess.domain.teams import has_approvers, team_problems
from jitaccess.errors import NotFound, PermanentFailure, RetryLater
from jitaccess.handlers import archive, assignments, removals
from jitaccess.handlers.common import NO_INDEX, Index, conditions_after, first, now, status_change, ts
from jitaccess.handlers.holders import stored_holders
from jitaccess.handlers.indexes import expiring, holding
from jitaccess.handlers.recording import record
from jitaccess.handlers.runtime import Runtime, runtime_of
from jitaccess.logs import OncePer
from jitaccess.settings import load

log = logging.getLogger(__name__)
TEAM = (names.GROUP, names.VERSION, names.TEAMS)
ENT = (names.GROUP, names.VERSION, names.ENTITLEMENTS)
# Timer intervals are fixed when the handlers are registered, so they are read once here.
RESYNC_SECONDS = load().resync_seconds
#: How often a deleted Entitlement that still has active grants is looked at again (and its group
#: scanned): it goes within this long of its last grant's end.
RELEASE_CHECK_SECONDS = 10
#: A drift scan Identity Center refuses (a removal, or the scan's own calls) is said in an ERROR line
#: at most once a minute per member (per Entitlement for the scan): a deleted Entitlement's scan
#: runs every `RELEASE_CHECK_SECONDS`.
REFUSALS_LOGGED = OncePer(60)
#: ... and a removal refused in a `DriftNotRemoved` Warning Event at most every half hour per member:
#: the API server keeps Events an hour by default, and this one must stay in sight while it lasts.
REFUSALS_TOLD = OncePer(30 * 60)


class RemovalRefused(PermanentFailure):
    """Drift removals Identity Center refused in a scan of a group, each said already
    (`_not_removed`): raised once the scan has tried the group's other members. Its message names
    the member, the group and the IAM action."""


@kopf.on.resume(*TEAM)
@kopf.on.create(*TEAM)
@kopf.on.update(*TEAM, field="spec")
def check_team(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    rt = runtime_of(memo)
    team = TeamOwnership.model_validate(dict(body))
    problems = team_problems(team.spec)
    refused = None if problems else admission.stored_policy_refusal(dict(body), rt.settings.limits)
    ready = not problems and refused is None
    reason = names.VALID if ready else (names.INVALID if has_approvers(team.spec) else names.NO_APPROVERS)
    message = "; ".join(problems) or (
        f"{len(team.spec.members)} member(s), {len(team.spec.approvers)} approver(s), "
        f"{len(team.spec.backup_approvers)} backup approver(s)"
    )
    if refused is not None:
        reason, message = names.POLICY_REFUSED, refused
    _set_ready(rt, names.TEAMS, team, ready, reason, message)


@kopf.on.resume(*ENT)
@kopf.on.create(*ENT)
@kopf.on.update(*ENT, field="spec")
@kopf.timer(*ENT, interval=RESYNC_SECONDS, initial_delay=RESYNC_SECONDS)
async def check_entitlement(
    *, body: kopf.Body, memo: kopf.Memo, teams: Index = NO_INDEX, entitlements: Index = NO_INDEX, **_: Any
) -> None:
    rt = runtime_of(memo)
    # The indexes are the event loop's: read here; the check itself asks Identity Center, in a thread.
    # A missing owner team stops requests, not the watch over the groups: rule 1 (a member only while
    # a grant says so) holds whatever state the catalog is in, a team deleted or misspelled in Git too.
    team = first(teams, body.spec.get("owner"))
    name = body.metadata.name
    others = [e for key in list(entitlements) if key != name and (e := first(entitlements, key)) is not None]
    await rt.run_blocking(_check_entitlement, rt, dict(body), team, others)


def _check_entitlement(rt: Runtime, raw: dict[str, Any], team: Any, others: list[dict[str, Any]]) -> None:
    """`Ready` of an Entitlement, and the drift scan of its groups. `team`: its owner team's spec
    (None: there is none); `others`: the other Entitlements stored (`_group_policy`)."""
    entitlement = Entitlement.model_validate(raw)
    target = _group_of(entitlement) or ""
    assignment = entitlement.spec.identity_center.account_assignment
    if assignment is not None:
        refused, standing_ids = _group_policy(rt, raw, others, None)
        # No group to resolve: a permission set assigned to a user by hand is the PermissionCatalog
        # pass's to report (`handlers.permissionsets`), for catalog tiers. The groups its grants of
        # group mode are in (made before a switch to this mode) are still scanned (`_watch`).
        reference = assignment_rules.reference(assignment.permission_set)
        resolved = f"account-assignment mode: permission set {reference} in {', '.join(assignment.accounts)}"
        _set_ready(
            rt,
            names.ENTITLEMENTS,
            entitlement,
            *_verdict(
                entitlement,
                team,
                resolved,
                _missing_tier(rt, reference) or _groups_problem(rt, entitlement, resolved),
                refused=refused,
            ),
        )
        _watch_logged(rt, entitlement, None, standing_ids)
        return
    # Its own group is resolved first: what admission would refuse of it is judged of the group this
    # pass resolved (`_group_policy`).
    try:
        rt.forget("group", target)
        group_id = rt.cached("group", target, rt.identity_center.resolve_group)
    except NotFound:
        refused, standing_ids = _group_policy(rt, raw, others, None)
        missing = (
            f"Identity Center group {target!r} does not exist in store "
            f"{rt.identity_center.identity_store_id}: create it or fix spec.identityCenter"
        )
        _set_ready(
            rt,
            names.ENTITLEMENTS,
            entitlement,
            *_verdict(entitlement, team, "", (names.GROUP_NOT_FOUND, missing), refused=refused),
            groupId=None,  # a group gone has no id: none is left to be taken for the current group's
        )
        _watch_logged(rt, entitlement, None, standing_ids)
        return
    except (RetryLater, PermanentFailure) as exc:
        raise kopf.TemporaryError(f"cannot reach Identity Center: {exc}", delay=10) from exc
    refused, standing_ids = _group_policy(rt, raw, others, group_id)
    resolved = f"Identity Center group {target} resolved"
    problem = _groups_problem(rt, entitlement, resolved)
    _set_ready(
        rt,
        names.ENTITLEMENTS,
        entitlement,
        *_verdict(entitlement, team, resolved, problem, refused=refused),
        groupId=group_id,
    )
    _watch_logged(rt, entitlement, (target, group_id), standing_ids)


def _group_policy(
    rt: Runtime, raw: dict[str, Any], others: list[dict[str, Any]], own: str | None
) -> tuple[str | None, frozenset[str] | None]:
    """What admission would refuse now of an Entitlement (`admission.stored_policy_refusal`), and of
    the groups or the permission set it names (`admission.stored_group_refusal`: one stored before
    the rule, or naming by id a group admission knew by name only; said first when it gives away
    access, `standing.GIVES_AWAY`, which `Ready` must begin with to refuse its requests), and the GroupIds of the groups
    people hold standing, which no drift scan empties (`standing.standing_ids`): given every
    PermissionCatalog and the `others` Entitlements stored, each group name resolved as Identity
    Center has it (`_policy_ids`), and its own group the GroupId `own` this pass resolved it to
    (None: none), not the one the last pass left (`groupids.as_resolved`): trusted or not after the
    last pass's verdict, that one made a refusal come and go at every other resync. The standing
    ids are None when a name was not resolved (Identity Center not answering): `_watch` then asks
    again, and scans nothing this pass unless it gets them all. Nor is a stored refusal for access
    given away (`standing.refused_grants`) lifted by such a pass, which compares that name by name
    only and may miss what its id would find: it stands until a pass has every id, or its requests
    would be granted until the next resync."""
    judged = groupids.as_resolved(raw, own)
    catalogs, resolved, unanswered = _policy_ids(rt, [judged, *others])
    policy = admission.stored_policy_refusal(raw, rt.settings.limits)
    groups = admission.stored_group_refusal(judged, catalogs, others, resolved)
    refused = policy or groups
    if policy is not None and groups is not None and groups.startswith(standing.GIVES_AWAY):
        # What refuses every request of it first: read from `Ready`, it must not hide behind a duration.
        refused = f"{groups}. Besides, {policy}"
    if unanswered is not None:
        kept = standing.refused_grants(Entitlement.model_validate(raw))
        if kept is not None and not (refused or "").startswith(standing.GIVES_AWAY):
            refused = kept
        return refused, None
    return refused, frozenset(standing.standing_ids(catalogs, [judged, *others], resolved))


def _policy_ids(
    rt: Runtime, entitlements: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], dict[str, str], Exception | None]:
    """The stored PermissionCatalogs, and the GroupIds of the names of the groups people hold
    standing that they and `entitlements` name and no object records an id for
    (`standing.unresolved`; a name that is no group has none).
    Cached as every group lookup is (`Runtime.cached`), a name that is no group too: each
    Entitlement's own check resolves its own names anyway. A name Identity Center does not answer
    for is left without an id, matched by name only this once, and what it raised is returned:
    every Entitlement's check resolves every such name, and one group's lookup failing is not to
    stop each one's `Ready` (a `PolicyRefused` found by id waits for the next pass). It stops the
    drift scans of the pass (`_watch`): a group people hold standing that is not known as such
    would be emptied of them."""
    catalogs = rt.kube.list(names.CATALOGS)
    resolved: dict[str, str] = {}
    unanswered: Exception | None = None
    for group in sorted(standing.unresolved(catalogs, entitlements)):
        try:
            resolved[group] = rt.cached("group", group, rt.identity_center.resolve_group, no_group=True)
        except NotFound:
            continue  # no such group: nobody is in it
        except (RetryLater, PermanentFailure) as exc:
            log.warning("group %r not resolved (%s): compared by name only in this pass", group, exc)
            unanswered = unanswered or exc
    return catalogs, resolved, unanswered


def _groups_problem(rt: Runtime, entitlement: Entitlement, resolved: str) -> tuple[str, str] | None:
    """What is wrong with the Identity Center groups the Entitlement names besides its target."""
    return _eligibility_problem(rt, entitlement, resolved) or _on_call_problem(rt, entitlement, resolved)


def _missing_groups(rt: Runtime, groups: list[str]) -> list[str]:
    """Those of `groups` that do not exist in Identity Center."""
    missing = []
    for group in groups:
        try:
            rt.cached("group", group, rt.identity_center.resolve_group)
        except NotFound:
            missing.append(group)
        except (RetryLater, PermanentFailure) as exc:
            raise kopf.TemporaryError(f"cannot reach Identity Center: {exc}", delay=10) from exc
    return missing


def _eligibility_problem(rt: Runtime, entitlement: Entitlement, resolved: str) -> tuple[str, str] | None:
    """`EligibilityGroupNotFound` when spec.eligibility.identityCenterGroups names a group that does
    not exist: a typo of the catalog's, which refuses every request, and which the eligibility
    re-check does not hold against anyone's running grant (`handlers.lapses`)."""
    return _not_found(
        rt,
        names.ELIGIBILITY_GROUP_NOT_FOUND,
        "spec.eligibility.identityCenterGroups",
        entitlement.spec.eligibility.identity_center_groups,
        resolved,
        "Until then every request is refused; running grants are kept (nobody lapses over a group that does not exist)",
    )


def _on_call_problem(rt: Runtime, entitlement: Entitlement, resolved: str) -> tuple[str, str] | None:
    """`OnCallGroupNotFound` when spec.approval.autoApproveIdentityCenterGroups names a group that
    does not exist: nobody is ever on call in it (`oncall.on_call_group`), so the on-call engineer
    the catalog meant to let in at once waits for an approver, at the worst moment, with nothing
    else saying why."""
    return _not_found(
        rt,
        names.ON_CALL_GROUP_NOT_FOUND,
        "spec.approval.autoApproveIdentityCenterGroups",
        entitlement.spec.approval.auto_approve_identity_center_groups,
        resolved,
        "Until then nobody is on call through it: requests wait for the owner team's approvers",
    )


def _not_found(
    rt: Runtime, reason: str, field: str, groups: list[str], resolved: str, until: str
) -> tuple[str, str] | None:
    """(reason, message) naming those of `groups` (the Entitlement's `field`) that are no group in
    Identity Center, and the fix; None when all exist."""
    missing = _missing_groups(rt, groups)
    if not missing:
        return None
    return (
        reason,
        f"{resolved}, but {field} names {', '.join(map(repr, missing))}, which "
        f"{'is not a group' if len(missing) == 1 else 'are not groups'} in Identity Center store "
        f"{rt.identity_center.identity_store_id}: fix the name or create the group. {until}",
    )


def _verdict(
    entitlement: Entitlement,
    team: Any,
    resolved: str,
    problem: tuple[str, str] | None = None,
    *,
    refused: str | None = None,
) -> tuple[bool, str, str]:
    """`Ready` of an Entitlement: its owner team first (no request of it can be decided without
    one), then why admission would refuse its spec now (`refused`: stored before it did,
    `admission.stored_policy_refusal`), then what was found wrong with its target (`problem`:
    reason, message), then `_usable`."""
    if team is None:
        return (
            False,
            names.OWNER_NOT_FOUND,
            f"owner team {entitlement.spec.owner!r} does not exist: add its TeamOwnership (requests are refused "
            "until then; its group is still kept clear of members no grant backs)",
        )
    if refused is not None:
        return False, names.POLICY_REFUSED, refused
    if problem is not None:
        return False, *problem
    return _usable(entitlement, team, resolved)


def _missing_tier(rt: Runtime, reference: str) -> tuple[str, str] | None:
    """(reason, message) when a `catalog:` reference names a PermissionCatalog or tier that does not
    exist (`assignments.catalog_tier`, as a grant resolves it; a catalog being deleted counts as
    gone): requests of it were approved and their grants failed while the Entitlement read Ready.
    An ARN is not described here (the operator's IAM policy may only describe jitaccess's own
    permission sets); a grant of a wrong one fails, naming it."""
    try:
        assignments.catalog_tier(rt, reference, deleting_is_gone=True)
    except NotFound as exc:
        return (
            names.PERMISSION_SET_NOT_FOUND,
            f"spec.identityCenter.accountAssignment.permissionSet names {reference}, but {exc}: fix the reference, "
            "or add the catalog (until then every grant of this Entitlement fails, and nobody gets access)",
        )
    return None


def _watch_logged(
    rt: Runtime, entitlement: Entitlement, current: tuple[str, str] | None, standing_ids: frozenset[str] | None
) -> None:
    """`_watch` from the periodic check: Identity Center not answering costs a pass, not an error;
    Identity Center refusing (IAM) is one, which somebody must fix: until then a member no grant
    backs keeps the group's access, or none is even found."""
    try:
        _watch(rt, entitlement, current, standing_ids)
    except RetryLater as exc:
        # Nothing is wrong with the operator: the next pass scans again.
        log.info(
            "drift scan of %s: Identity Center not answering (%s); next pass in %ss",
            entitlement.metadata.name,
            exc,
            RESYNC_SECONDS,
        )
    except RemovalRefused:
        pass  # each said where it was refused (`_not_removed`), naming the member
    except PermanentFailure as exc:
        _scan_refused(entitlement, exc)


def _refusal(exc: PermanentFailure) -> str:
    """What Identity Center refused of a drift scan, and the IAM action to check."""
    action = removals.iam_action(exc.operation) or "the Identity Center calls the drift scan makes"
    return (
        f"Identity Center refuses it ({exc}): check that the operator's IAM role allows {action} "
        "for this group (docs/aws-iam.md)"
    )


def _scan_refused(entitlement: Entitlement, exc: PermanentFailure) -> None:
    """A drift scan Identity Center refused before any removal (listing the group, resolving a
    name): an error, counted and said once a minute; no member no grant backs is found meanwhile."""
    metrics.ERRORS.labels("handler").inc()
    name = entitlement.metadata.name
    if REFUSALS_LOGGED.due(("scan", _scan_key(entitlement)), exc.operation):
        log.error(
            "drift scan of %s: %s; members no grant backs are neither found nor removed until then; "
            "next pass in %ss (said again every minute while it lasts)",
            name,
            _refusal(exc),
            RESYNC_SECONDS,
        )


def _not_removed(entitlement: Entitlement, intent: dict[str, Any], exc: PermanentFailure) -> RemovalRefused:
    """A member no grant backs that Identity Center refused to remove (AccessDenied: the group is
    not in the operator's IAM policy yet, an SCP denies it): counted in `jitaccess_errors_total`,
    an ERROR line once a minute and a `DriftNotRemoved` Warning Event every half hour while it
    lasts, each naming the member, the group and the IAM action. The listed removal stays
    unconfirmed in `status.driftRemovals`, and every pass tries it again."""
    metrics.ERRORS.labels("handler").inc()
    user = str(intent.get("user") or intent.get("userId"))
    group = str(intent.get("groupName") or intent.get("groupId"))
    action = removals.iam_action(exc.operation) or "identitystore:DeleteGroupMembership"
    said = (
        f"{user} is in Identity Center group {group} with no active grant, and Identity Center refuses to "
        f"remove them ({exc}): check that the operator's IAM role allows {action} for this group "
        "(docs/aws-iam.md); they keep the group's access until then"
    )
    key = (_scan_key(entitlement), intent.get("membershipId"))
    if REFUSALS_LOGGED.due(key):
        log.error(
            "drift scan of %s: %s; tried again every pass (every %ss; said again every minute while it lasts)",
            entitlement.metadata.name,
            said,
            RESYNC_SECONDS,
        )
    if REFUSALS_TOLD.due(key):
        record(
            entitlement.wire(),
            names.DRIFT_NOT_REMOVED,
            f"{said}; the operator tries again at every pass",
            warning=True,
            who=user,
        )
    return RemovalRefused(said, operation=exc.operation, code=exc.code)


@kopf.on.delete(*ENT)
async def release_entitlement(*, body: kopf.Body, memo: kopf.Memo, retry: int = 0, **_: Any) -> None:
    """Let a deleted Entitlement go once no grant of it is left and its drift records are kept;
    until then, keep its group clear of anyone no grant backs, and say what it waits for. Then
    `Released` (written once), and, with an archive, the wait for its `released` record to be in
    it: the record of when jitaccess stopped watching the group.

    Waiting is kopf's retry of this handler (a `TemporaryError`), which `logs.WaitsAreNotErrors`
    keeps out of the error log and the Events: the `Deleting` condition says it once. Identity
    Center refusing its drift scan (IAM) is no wait but an error, retried at the pace of a live
    Entitlement's scan: `Deleting` names the refusal first, and kopf's ERROR line says it too."""
    rt = runtime_of(memo)
    released = await rt.run_blocking(_release, rt, dict(body))
    what = "released; its audit record is"
    archive.hold_until_archived(
        memo, names.ENTITLEMENTS, released, retry=retry, longest=RELEASE_CHECK_SECONDS, what=what
    )


def _release(rt: Runtime, raw: dict[str, Any]) -> dict[str, Any] | None:
    """The Entitlement as released (None: gone already), or `TemporaryError` while it must wait
    (a `waiting:` one) or Identity Center refuses its scan (not one)."""
    if wire.ready_reason(raw) == names.RELEASED:
        return rt.kube.get(names.ENTITLEMENTS, wire.name_of(raw))  # a retry that waits for the archive
    entitlement = Entitlement.model_validate(raw)
    name = entitlement.metadata.name
    target = _group_of(entitlement)
    # Grants name their Entitlement: listed by that field (`Kube.list`, selected wherever it can be).
    grants = [
        (str(g["metadata"]["name"]), expiring(g))
        for g in rt.kube.list(names.GRANTS, fields={"spec.entitlement": name})
        if holding(g) is not None
    ]
    # A request approved a moment before the deletion may not have its grant yet: it is waited
    # for, and its grant is made or the request fails (the Entitlement reads as gone), in seconds.
    granted = {grant for grant, _ in grants}
    grants += [
        (str(r["metadata"]["name"]), None)
        for r in rt.kube.list(names.REQUESTS, fields={"spec.entitlement": name})
        if _approved_ungranted(r) and r["metadata"]["name"] not in granted
    ]
    refused: str | None = None
    try:
        own = None
        if target is not None:
            try:
                # The id the group had while the Entitlement lived: its grants are in that group.
                own = (
                    target,
                    entitlement.status.group_id or rt.cached("group", target, rt.identity_center.resolve_group),
                )
            except NotFound:
                own = None  # the group is gone: nobody can be in it
        scanned = _watch(rt, entitlement, own)
    except RetryLater as exc:
        raise kopf.TemporaryError(
            f"{releases.WAITING} Identity Center not answering ({exc}): the group is scanned again first",
            delay=RELEASE_CHECK_SECONDS,
        ) from exc
    except RemovalRefused as exc:
        refused = str(exc)
    except PermanentFailure as exc:
        refused = f"the drift scan of its group failed: {_refusal(exc)}"
    current = rt.kube.get(names.ENTITLEMENTS, name)
    if current is None:
        return None
    if wire.ready_reason(current) == names.RELEASED:
        return current  # said once: its `released` record must not change (a retry waits for the archive)
    now_stored = Entitlement.model_validate(current)
    remaining = releases.Remaining(grants=grants, unkept_records=releases.unkept_drift(current))
    if refused is not None:
        # Not a wait (`logs.WaitsAreNotErrors` keeps those quiet): an error somebody must fix. The
        # cause first: what else it waits for is for later.
        then = releases.waiting(name, remaining, now(), scanned=True)
        message = f"deleted, and kept until its drift scan succeeds: {refused}" + (f"; {then}" if then else "")
        _set_ready(rt, names.ENTITLEMENTS, now_stored, False, names.DELETING, message, warning=True)
        raise kopf.TemporaryError(message, delay=RESYNC_SECONDS)
    if not remaining.done:
        message = releases.waiting(name, remaining, now(), scanned=bool(scanned))
        _set_ready(rt, names.ENTITLEMENTS, now_stored, False, names.DELETING, message, warning=False)
        raise kopf.TemporaryError(f"{releases.WAITING} {message}", delay=RELEASE_CHECK_SECONDS)
    others = [] if target is None else _granting(rt, now_stored)
    message = releases.released(target, others)
    _set_ready(
        rt,
        names.ENTITLEMENTS,
        now_stored,
        False,
        names.RELEASED,
        message,
        warning=not others and target is not None,
        releasedAt=ts(now()),
        releasedOwnerTeam=now_stored.spec.owner,
    )
    log.info("Entitlement %s released: %s", name, message)
    rt.scanned.forget(_scan_key(now_stored))
    return rt.kube.get(names.ENTITLEMENTS, name)


def _approved_ungranted(request: dict[str, Any]) -> bool:
    """Approved, its grant about to be made: `Approved` is a condition of its own, and `Ready`
    says `Pending` until the grant is Active (a scheduled one, whose start may be days away, is
    not waited for: at its start the Entitlement reads as gone and it fails)."""
    return wire.is_true(request, names.APPROVED) and wire.ready_reason(request) in (None, names.PENDING)


def _group_of(entitlement: Entitlement) -> str | None:
    """The group an Entitlement grants (its name or id as written), None in account-assignment mode."""
    ic = entitlement.spec.identity_center
    if ic.account_assignment is not None:
        return None
    return ic.group_id or ic.group_name or None


def _granting(rt: Runtime, entitlement: Entitlement) -> list[str]:
    """The other live Entitlements that grant its group (by name, by id, or by the id a name was
    resolved to: what `domain.overlaps` counts as the same group)."""
    mine = overlaps.keys(entitlement)
    found = []
    for raw in rt.kube.list(names.ENTITLEMENTS):
        if wire.deleting(raw) or wire.name_of(raw) == entitlement.metadata.name:
            continue
        try:
            other = Entitlement.model_validate(raw)
        except ValidationError:
            continue  # one the operator cannot read grants nothing it knows of
        if mine & overlaps.keys(other):
            found.append(other.metadata.name)
    return found


def _usable(entitlement: Entitlement, team: Any, resolved: str) -> tuple[bool, str, str]:
    """`Ready` of an Entitlement whose owner team exists and whose target resolved: False when its
    team can never give the approvals it needs (re-checked by the timer after a team changes), or
    when its reason policy cannot be checked (a pattern stored before admission refused such, as
    RE2 does what Python's `re` compiled: every request of it would be refused)."""
    short = request_rules.approvals_unreachable(entitlement, TeamOwnershipSpec.model_validate(team))
    if short is not None:
        return False, names.TOO_FEW_APPROVERS, f"{resolved}, but {short}"
    pattern = entitlement.spec.reason_pattern
    problem = reasons.pattern_problem(pattern) if pattern else None
    if problem is not None:
        return False, names.INVALID, f"{resolved}, but spec.reasonPattern {pattern!r} {problem}: fix the expression"
    return True, names.RESOLVED, resolved


def _set_ready(
    rt: Runtime,
    plural: str,
    obj: TeamOwnership | Entitlement,
    ready: bool,
    reason: str,
    message: str,
    warning: bool | None = None,
    **extra: Any,
) -> None:
    """Write `Ready` when it changed, with an Event when its reason did (a Warning when not ready,
    unless `warning` says otherwise)."""
    model = type(obj)

    def build(current: Any) -> dict[str, Any] | None:
        previous = cond.find(current.status.conditions, names.READY)
        if previous is not None and previous.reason == names.RELEASED:
            return None  # said once: its `released` record must not change
        if current.metadata.deletion_timestamp is not None and reason not in (names.DELETING, names.RELEASED):
            return None  # a check begun before the deletion, finishing after it: the deletion's word stands
        same = (
            previous is not None
            and previous.status == ("True" if ready else "False")
            and previous.reason == reason
            and previous.message == message
            and previous.observed_generation == current.metadata.generation
            and all(getattr(current.status, _snake(k), None) == v for k, v in extra.items())
        )
        if same:
            return None
        return {
            **extra,
            "conditions": conditions_after(
                current.status.conditions, [(names.READY, ready, reason, message)], current.metadata.generation
            ),
        }

    before = cond.find(obj.status.conditions, names.READY)
    updated = rt.kube.update_status(plural, obj.metadata.name, status_change(model, build), uid=obj.metadata.uid)
    if updated is not None and (before is None or before.reason != reason):
        record(updated, reason, message, warning=not ready if warning is None else warning)


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)


def _watch(
    rt: Runtime, entitlement: Entitlement, current: tuple[str, str] | None, standing_ids: frozenset[str] | None = None
) -> dict[str, str]:
    """Scan for drift every group the Entitlement gives access to: its own (`current`: its name as
    written and its id; None when it names none that resolves), and each group its Active grants are
    in (`status.groupId`) while the last of them runs, as the Entitlement may name another group
    now, or none (a GitOps edit, a typo, a switch to account-assignment mode), and those grants
    still hold access there. A group that stops being scanned is said (`ScanStopped`). The groups
    scanned, by id (none when removal of unbacked members is off); raises what Identity Center
    raised, a refusal rather than a failure to answer, once every group was tried.

    A group people hold standing (`standing_ids`; None: found now, `_standing_now`) is not scanned:
    an Entitlement stored before admission refused it may grant one (its `Ready` says so), and its
    members are the identity provider's, not the grants' (the removals it listed are settled)."""
    if not rt.settings.remove_unbacked_members:
        _settle_unscanned(rt, entitlement)
        return {}
    groups = _granted_groups(rt, entitlement, current)
    if current is not None:
        groups[current[1]] = current[0]
    if standing_ids is None and groups:
        standing_ids = _standing_now(rt)
    tried: set[str] = set()
    failed: Exception | None = None
    for group_id, group_name in groups.items():
        if standing_ids is not None and group_id in standing_ids:
            log.info(
                "drift scan of %s: %s is a group people hold standing, not scanned",
                entitlement.metadata.name,
                group_name,
            )
            continue
        # The current group is also spelled as the Entitlement gives its name beside a groupId.
        own = current is not None and group_id == current[1]
        also = {entitlement.spec.identity_center.group_name or group_name} if own else set()
        try:
            _scan_drift(rt, entitlement, group_name, group_id, rt.holders, also)
        except NotFound:
            continue  # the group is gone: nobody can be in it (its listed removals are settled below)
        except (RetryLater, PermanentFailure) as exc:
            # A refusal, which somebody must fix, is what is raised over a group not answered.
            if failed is None or (isinstance(exc, PermanentFailure) and not isinstance(failed, PermanentFailure)):
                failed = exc
            elif isinstance(exc, PermanentFailure) and not isinstance(exc, RemovalRefused):
                _scan_refused(entitlement, exc)  # not raised: said here (a refused removal was, where it was)
        tried.add(group_id)
    _settle_unscanned(rt, entitlement, tried)
    _report_unscanned(rt, entitlement, groups, current)
    if failed is not None:
        raise failed
    return {g: n for g, n in groups.items() if standing_ids is None or g not in standing_ids}


def _standing_now(rt: Runtime) -> frozenset[str]:
    """The GroupIds of the groups people hold standing (`standing.standing_ids`), from the catalogs
    and Entitlements stored now: for a deleted Entitlement's scan, which no check passes them to, and
    for a check whose own look-up was not answered. Raises what Identity Center raised when a name
    was not resolved: no group is scanned on a guess of which ones people hold standing."""
    entitlements = [e for e in rt.kube.list(names.ENTITLEMENTS) if not wire.deleting(e)]
    catalogs, resolved, unanswered = _policy_ids(rt, entitlements)
    if unanswered is not None:
        raise unanswered
    return frozenset(standing.standing_ids(catalogs, entitlements, resolved))


def _granted_groups(rt: Runtime, entitlement: Entitlement, current: tuple[str, str] | None) -> dict[str, str]:
    """The groups, by id (and a name a grant gives it), that Active grants of the Entitlement are in
    other than `current`: from the index of Active grants, which holds each one's group id (no API
    read: this runs at every pass, over every grant of the Entitlement). Whatever mode the
    Entitlement is in now: a grant keeps the target it was made with, so one switched to
    account-assignment mode still has its grants of group mode in their group until they end
    (a grant of account-assignment mode is in no group)."""
    spelled = set(current or ())
    found: dict[str, str] = {}
    for holder in rt.active.get(entitlement.metadata.name, ()):
        if holder.group_id is not None and holder.group_id not in spelled:
            found.setdefault(holder.group_id, holder.group_name or holder.group_id)
    return found


def _report_unscanned(
    rt: Runtime, entitlement: Entitlement, groups: dict[str, str], current: tuple[str, str] | None
) -> None:
    """A Warning Event (`ScanStopped`) for each group the last pass scanned and this one does not:
    no Entitlement of jitaccess may watch who is added to it now (a Normal one when another names it)."""
    before = rt.scanned.replace(_scan_key(entitlement), groups)
    for group_id, group_name in sorted(before.items()):
        if group_id in groups:
            continue
        others = _watching(rt, entitlement, group_id)
        if current is not None:
            now_names = f"names {current[0]} now"
        elif entitlement.spec.identity_center.account_assignment is not None:
            now_names = "is in account-assignment mode now"
        else:
            now_names = "names no group that resolves now"
        message = (
            f"no longer scans Identity Center group {group_name} (id {group_id}) for members no grant backs: "
            f"the Entitlement {now_names}, and no active grant of it is in that group any more"
        )
        if others:
            message += f"; the group is still watched through Entitlement(s) {', '.join(others)}"
        else:
            message += (
                ". The group keeps the permission sets assigned to it in AWS, and whoever is added to it gets them: "
                "remove those assignments or the group, or give it an Entitlement again"
            )
        record(entitlement.wire(), names.SCAN_STOPPED, message, warning=not others)


def _watching(rt: Runtime, entitlement: Entitlement, group_id: str) -> list[str]:
    """The other live Entitlements that name the group `group_id` now (`groupids.group_id`): by
    that id, or by a name resolved to it for their current spec. Not by a `status.groupId` left
    from before (a name changed since, a group not found, a switch to account-assignment mode all
    leave it there): such an Entitlement names that group no more, and scans it at most while its
    own grants there run."""
    return sorted(
        wire.name_of(raw)
        for raw in rt.kube.list(names.ENTITLEMENTS)
        if wire.name_of(raw) != entitlement.metadata.name
        and not wire.deleting(raw)
        and groupids.group_id(raw) == group_id
    )


def _scan_key(entitlement: Entitlement) -> str:
    """An Entitlement in `Runtime.scanned`: its uid (one deleted and applied again starts afresh)."""
    return str(entitlement.metadata.uid or entitlement.metadata.name)


def _scan_drift(
    rt: Runtime,
    entitlement: Entitlement,
    group_name: str,
    group_id: str,
    holders: Index,
    also: set[str] | frozenset[str] = frozenset(),
) -> None:
    """Remove members of the group whom no live grant backs (`also`: other names grants may give it).

    A member is removed in the pass that first lists it, so the listing's time is when jitaccess
    first saw it (`firstSeen`, the record's `startTime`). When the membership itself began is not
    known: the scan reads only who is a member, and keeps no history between passes (docs/audit.md).

    Each removal is listed in the Entitlement's status before it is made (an entry with no `time`
    yet) and confirmed after: an operator killed in between leaves the entry, which the next pass
    settles, so no removal goes unrecorded. One Identity Center refuses stays listed, and is said
    (`_not_removed`); the other members are tried all the same, then `RemovalRefused` is raised."""
    # One scan of a group at a time in a process: kopf runs an Entitlement's timer beside its change
    # handlers, and two scans would each settle the removal the other is making; and two
    # Entitlements may scan one group (a rename: both name it for a while; grants left in a group
    # another names now), where both would list a member and each record its one removal. The
    # second lists the group once the first is done with it.
    with rt.membership_lock(("drift scan", group_id)):
        ic = rt.identity_center
        members = ic.group_members(group_id)
        # Taken after the listing answered: a member it holds was in the group by then at the latest.
        seen = ts(now())
        # Removals listed in this group only: an Entitlement may scan several (`_watch`).
        unconfirmed = {m: r for m, r in _unconfirmed(rt, entitlement).items() if r.get("groupId") == group_id}
        listed = set(members.values())
        for membership_id, begun in list(unconfirmed.items()):
            if membership_id not in listed:
                _confirm_gone(rt, entitlement, begun, seen, group_name)
                del unconfirmed[membership_id]
        # The group as grants may name it: as the Entitlement (or a grant) names it (`group_name`), by
        # its id (every Active grant is filed under it too, whatever its spelling: `indexes.holdings`),
        # by the name the Entitlement also gives beside a groupId (`also`: one that had only the name
        # before), and by any name this process resolved to it (Provisioning grants of another Entitlement).
        spellings = {group_name, group_id, *also}
        spellings |= rt.group_names(group_id)

        def backers(user_id: str) -> set[str]:
            # The index alone: a listing of the group's grants at every pass would grow with the
            # records kept. A grant deleted while this replica's watch was cut may back a member
            # until the next listing of the indexes drops it (`indexes.reconcile`, 5 minutes); a
            # removal is confirmed by `stored_holders` first, so the index never removes anyone.
            held = {g for spelled in spellings for g in holders.get(membership_key(user_id, spelled), [])}
            return held - rt.recently_ended()

        # A removal refused does not stop the others (an IAM condition or SCP may spare some members).
        refused: RemovalRefused | None = None
        for user_id, membership_id in members.items():
            # Grants hold memberships by UserId: no name needs to be known to tell whether one is
            # backed. The lock is the grants' own (`grants.membership_of`: by the group's id).
            key = membership_key(user_id, group_id)
            intent = unconfirmed.get(membership_id)
            if backers(user_id):
                if intent is not None:
                    _take_back(rt, entitlement, intent, "a grant backs the member now")
                continue
            # For the record: the name as it is now (users can be renamed), not as it was once known.
            user = intent.get("user") if intent else _name_of(rt, user_id)
            with rt.membership_lock(key):
                # The index is kept by the admission part's watch, which can lag behind a grant the
                # controller has just provisioned or resumed: the API server is asked before a
                # member is removed as unbacked (one listing of the user's grants).
                if backers(user_id) or stored_holders(
                    rt, str(user or _name_of(rt, user_id)), {membership_key(user_id, s) for s in spellings}
                ):
                    if intent is not None:
                        _take_back(rt, entitlement, intent, "a grant backs the member now")
                    continue
                if intent is None:
                    intent = {
                        "membershipId": membership_id,
                        "userId": user_id,
                        "user": user,
                        "groupId": group_id,
                        "groupName": group_name,
                        "firstSeen": seen,
                        # The team its record names: the Entitlement may be handed to another before
                        # the record is archived (S3 down, a GitOps hand-over, a restart).
                        "ownerTeam": entitlement.spec.owner,
                    }
                    if not _list(rt, entitlement, intent):
                        # The Entitlement scanned was applied again under its name (or is gone,
                        # its finalizer taken off by hand: its deletion's own scan runs under this
                        # scan's lock): a removal made now would have no entry to record it. The
                        # new one's scan lists, removes and records the member.
                        log.warning(
                            "%s: the Entitlement scanned is gone or another now: %s, in Identity Center group %s "
                            "with no active grant, is left to the next scan of an Entitlement of that group",
                            entitlement.metadata.name,
                            user or user_id,
                            group_name,
                        )
                        return
                try:
                    removed = ic.remove_member(group_id, user_id, membership_id)
                except PermanentFailure as exc:
                    said = _not_removed(entitlement, intent, exc)  # each member refused is said
                    refused = refused or said
                    continue
            if not removed and (backers(user_id) or rt.ended_here(key)):
                # Gone already: a grant ended since the listing (its expiry took the member out).
                _take_back(rt, entitlement, intent, "a grant that ended meanwhile took the member out")
                continue
            message = f"{user} was in Identity Center group {group_name} with no active grant: removed"
            if not removed:
                # The delete found it gone, and no grant of ours took it out: an earlier attempt
                # did (its answer lost and retried, or sent by an operator killed since).
                message += " (an earlier attempt had taken it out when this one was confirmed)"
            if _confirm(rt, entitlement, intent, ts(now()), message, append=True):
                record(entitlement.wire(), names.DRIFT_FOUND, message, warning=True, who=user or "")
        if refused is not None:
            raise refused


def _settle_unscanned(rt: Runtime, entitlement: Entitlement, scanned: set[str] | frozenset[str] = frozenset()) -> None:
    """Settle removals a stopped operator began, where no scan will (removal of unbacked members
    is off now, the Entitlement has no group any more, or its group is gone; `scanned`: the groups
    a scan looks after): a membership still there is left alone and its entry taken back; one gone
    is confirmed as removed."""
    unconfirmed = _unconfirmed(rt, entitlement)
    for membership_id, intent in unconfirmed.items():
        group_id = str(intent.get("groupId") or "")
        if group_id in scanned:
            continue
        try:
            present = rt.identity_center.find_membership(group_id, str(intent.get("userId"))) if group_id else None
        except NotFound:
            present = None  # the group is gone: nobody is in it
        except (RetryLater, PermanentFailure) as exc:
            # The entry waits for the next pass (a deleted Entitlement counts it as a record to keep).
            log.info("%s: a drift removal left unconfirmed is settled later: %s", entitlement.metadata.name, exc)
            return
        if present == membership_id:
            _take_back(rt, entitlement, intent, "drift removal does not apply to this Entitlement now")
        else:
            _confirm_gone(rt, entitlement, intent, ts(now()), None)


def _unconfirmed(rt: Runtime, entitlement: Entitlement) -> dict[str, dict[str, Any]]:
    """The removals listed and not confirmed, by membership id, as stored: kopf's body may show
    one that was settled since (only when it shows any is the object read)."""
    if not any(r.time is None for r in entitlement.status.drift_removals or []):
        return {}
    stored = rt.kube.get(names.ENTITLEMENTS, entitlement.metadata.name)
    if stored is None:
        return {}
    removals = wire.status(stored).get("driftRemovals") or []
    # An entry without its group's id (written by hand, or damaged) is the Entitlement's own group's:
    # the one group its scan covered when only one was; scans now settle the entries of their group.
    own = str(wire.status(stored).get("groupId") or "")
    return {
        str(r["membershipId"]): ({**r, "groupId": own} if own and not r.get("groupId") else r)
        for r in removals
        if not r.get("time")
    }


def _confirm_gone(
    rt: Runtime, entitlement: Entitlement, intent: dict[str, Any], when: str, group_name: str | None
) -> None:
    """Confirm a removal begun and never confirmed whose member is gone now, and report it."""
    user = str(intent.get("user") or intent.get("userId") or "")
    group = intent.get("groupName") or group_name or intent.get("groupId")
    # Who took the member out last is not known (the removal under way, most likely); that the
    # member was in the group with no grant behind it when the scan listed it is: that is the record.
    message = (
        f"{user} was in Identity Center group {group} with no active grant: a removal was begun and not "
        "confirmed (the operator stopped, or could not write its status), and the member was gone when "
        "it was looked at again"
    )
    if _confirm(rt, entitlement, intent, when, message):
        record(entitlement.wire(), names.DRIFT_FOUND, message, warning=True, who=user)


def _name_of(rt: Runtime, user_id: str) -> str:
    """The user's name for a drift record; the id itself when Identity Center has no such user."""
    try:
        return rt.identity_center.user_name(user_id)
    except NotFound:
        return user_id


def _list(rt: Runtime, entitlement: Entitlement, intent: dict[str, Any]) -> bool:
    """List a removal about to be made (no `time`), unless the member's membership is listed
    already; whether the Entitlement scanned lists it now (False: it is gone, or another)."""
    there = False

    def build(current: Entitlement) -> dict[str, Any] | None:
        nonlocal there
        kept = [r.wire() for r in current.status.drift_removals or []]
        there = any(r["membershipId"] == intent["membershipId"] for r in kept)
        return None if there else {"driftRemovals": [*kept, intent]}

    return _drift_write(rt, entitlement, build) is not None or there


def _confirm(
    rt: Runtime, entitlement: Entitlement, intent: dict[str, Any], when: str, message: str, append: bool = False
) -> bool:
    """Confirm a listed removal (`time`, `message`): its record is then due (`archive`). Only an
    entry still unconfirmed is (a confirmed one never changes); with `append`, one missing is added
    (this process made the removal). True when this call wrote it: only then is it reported."""

    def build(current: Entitlement) -> dict[str, Any] | None:
        kept = [r.wire() for r in current.status.drift_removals or []]
        same = [r for r in kept if r["membershipId"] == intent["membershipId"]]
        if (same and same[0].get("time")) or (not same and not append):
            return None
        others = [r for r in kept if r["membershipId"] != intent["membershipId"]]
        # An entry listed by a version before `ownerTeam`: the owner now, at its confirmation.
        owner = intent.get("ownerTeam") or current.spec.owner
        return {"driftRemovals": [*others, {**intent, "time": when, "message": message, "ownerTeam": owner}]}

    return _drift_write(rt, entitlement, build) is not None


def _take_back(rt: Runtime, entitlement: Entitlement, intent: dict[str, Any], why: str) -> None:
    """Take back a removal listed but not made (or not ours to record): the entry goes, with no record."""
    membership_id = intent["membershipId"]

    def build(current: Entitlement) -> dict[str, Any] | None:
        kept = [r.wire() for r in current.status.drift_removals or []]
        left = [r for r in kept if not (r["membershipId"] == membership_id and not r.get("time"))]
        return None if len(left) == len(kept) else {"driftRemovals": left}

    if _drift_write(rt, entitlement, build) is not None:
        log.info("drift removal of membership %s (%s) not recorded: %s", membership_id, entitlement.metadata.name, why)


def _drift_write(
    rt: Runtime, entitlement: Entitlement, build: Callable[[Entitlement], dict[str, Any] | None]
) -> dict[str, Any] | None:
    """`status.driftRemovals` of the Entitlement scanned, never of another applied under its name since."""
    return rt.kube.update_status(
        names.ENTITLEMENTS, entitlement.metadata.name, status_change(Entitlement, build), uid=entitlement.metadata.uid
    )

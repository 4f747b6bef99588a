"""PermissionCatalog handlers: make IAM Identity Center hold each tier's permission set as rendered.

For each tier of a team's catalog (`domain.permissions.render`), one pass makes Identity Center
match: the permission set (created with tags marking it jitaccess's; description, session
duration, inline policy with the session-revocation deny statement, managed policies), its
assignment to the tier's group in each account (asynchronous: followed to the end), and a
provisioning when the content changed. What the catalog no longer lists goes: a tier's accounts
and a tier itself, with its permission set, but only permission sets carrying the
`managed-by=jitaccess` tag, and within them only what jitaccess put there. A user's assignment
that a live grant holds stays in an account no longer listed; a tier such grants hold is not
removed, nor the catalog deleted: admission refuses that (`domain.assignments`).

Provisioning happens on change only. A pass compares the digest of what it would provision
(`domain.revocations.digest`: the rendered spec and the deny statement) with the one recorded in
`status.<tier>.digest`: equal on a create/update/event pass, and nothing is called. The periodic
pass (`RESYNC_SECONDS`) and the pass at start-up read Identity Center instead, report what was
changed by hand (a `DriftFound` Warning Event) and repair it; the digest is also kept as a tag of
the permission set, written only after its provisioning succeeded, so a pass interrupted between
writing a policy and provisioning it (a crash) provisions it on the next pass even though the
policy already reads right.

Assignments made outside jitaccess (a user or group assigned a tier's permission set by hand, in an
account of the catalog or one it no longer lists) are removed, each with an audit record: the
removal is listed in `status.driftRemovals` before it is asked for and confirmed once it is made
(`domain.assignmentdrift`), and the archiver turns it into an `assignment-drift-removed` record.
What jitaccess removes of its own (the tier's group in an account no longer listed, the assignment
of a grant that ended) is no drift and leaves no such record.

Session revocation (`handlers.sessions`) adds entries to `status.<tier>.deniedUsers`; a watch-event
pass picks up every entry newer than the last pass (so concurrent revocations share one
provisioning), and a short timer drops entries whose time has come.

What Identity Center refuses stops no more than it must (attack 147). Each tier is provisioned
before its assignments are asked for, and each tier is a pass of its own: an account that cannot be
assigned (the operator's role not allowed there, a suspended account, a customer managed policy
missing there) is marked `Failed` in the tier's status with Identity Center's reason and reported
in `Ready` (`ProvisioningFailed`, naming the account and the fix), while the revocations reach
every account that holds the permission set, and the other tier is done all the same. A
provisioning to all those accounts that ends FAILED (one suspended, a customer managed policy
deleted in one) or is refused (the operator's role denied in one) is made again account by
account: the accounts where it fails are `Failed` too, and the digest tag waits for them. A drift
removal refused or FAILED is such an account's error, never said removed; one made is said and
confirmed whatever else failed in its account. A tier that fails itself (its policy refused)
keeps its previous status, and `Ready` says how many of its revocations are not provisioned; its
status write does not start the same failing pass again (`Runtime.denials_tried`, marked just
before it: a pass asked to retry marks nothing): the periodic pass tries again. A tier no longer
wanted goes (permission set and status) only in a pass that writes the status: not in one that
Identity Center leaves unfinished (`RetryLater`).

Passes over one catalog never overlap (a lock per catalog): kopf runs timers beside event handlers.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import kopf

from jitaccess import metrics
from jitaccess.adapters.ssoadmin import PermissionSetState, Request, SsoAdmin, policy_key
from jitaccess.api import names
from jitaccess.api.models import PermissionCatalog, PermissionSetRef, TierStatus
from jitaccess.domain import assignmentdrift as drift_rules
from jitaccess.domain import assignments as assignment_rules
from jitaccess.domain import conditions as cond
from jitaccess.domain import groupids, revocations
from jitaccess.domain import permissions as rules
from jitaccess.domain.grants import membership_key
from jitaccess.errors import InvalidInput, NotFound, NotLeading, PermanentFailure, RetryLater
from jitaccess.handlers import archive
from jitaccess.handlers.common import NO_INDEX, Index, conditions_after, first, now, status_change, ts
from jitaccess.handlers.recording import record
from jitaccess.handlers.runtime import Runtime, runtime_of
from jitaccess.settings import load

log = logging.getLogger(__name__)
CATALOG = (names.GROUP, names.VERSION, names.CATALOGS)
RESYNC_SECONDS = load().resync_seconds
#: How often the denials are checked for entries whose time has come (a check of the status only).
DENIAL_CHECK_SECONDS = min(5.0, RESYNC_SECONDS)
#: The tag holding the digest last provisioned (written after the provisioning succeeded).
DIGEST_TAG = "jitaccess.dev/digest"

_locks: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)
_locks_guard = threading.Lock()
_connect_guard = threading.Lock()


def sso_of(rt: Runtime) -> SsoAdmin:
    """The sso-admin adapter, connected on first use (a cluster without catalogs never needs it)."""
    with _connect_guard:
        if rt.sso_admin is None:
            settings = rt.settings
            sso = SsoAdmin.connect(
                settings.sso_instance_arn,
                region=settings.region,
                endpoint_url=settings.endpoint_url,
                rate_limit=settings.sso_rate_limit,
                max_attempts=settings.aws_max_attempts,
                queue=rt.identity_center.queue,
            )
            sso.may_write = lambda: rt.identity_center.may_write()
            rt.sso_admin = sso
        return rt.sso_admin


def _lock(name: str) -> threading.Lock:
    with _locks_guard:
        return _locks[name]


def _denials(status: TierStatus | None) -> list[revocations.Denial]:
    return [revocations.Denial(d.user_id, d.since, d.until) for d in (status.denied_users if status else None) or []]


def _revocation_pending(body: kopf.Body, memo: Any = None, **_: Any) -> bool:
    """A denial newer than the last pass over its tier (a revocation to provision), unless a pass
    took up these very denials already: one whose provisioning failed writes the status
    (`lastResult`), and that event must not start the same failing pass again, and again; the
    periodic pass tries again."""
    pending = unprovisioned(dict(body))
    if not pending:
        return False
    tried = runtime_of(memo).denials_tried.get(str(body.get("metadata", {}).get("uid", ""))) if memo else None
    return pending != tried


def _denial_expired(body: kopf.Body, **_: Any) -> bool:
    stamp = ts(now())
    status = body.get("status") or {}
    return any(
        str(d.get("until", "")) <= stamp
        for tier in rules.TIERS
        for d in (status.get(tier) or {}).get("deniedUsers") or []
    )


@kopf.on.resume(*CATALOG)
@kopf.on.create(*CATALOG)
@kopf.on.update(*CATALOG, field="spec")
@kopf.timer(*CATALOG, interval=RESYNC_SECONDS, initial_delay=RESYNC_SECONDS)
async def sync_catalog(
    *, body: kopf.Body, memo: kopf.Memo, reason: str = "", teams: Index = NO_INDEX, **_: Any
) -> None:
    rt = runtime_of(memo)
    # create/update change the digest anyway; resume and the timer read Identity Center (drift).
    verify = reason not in ("create", "update")
    await rt.run_blocking(_sync_or_retry, rt, body.metadata.name, teams, verify)


@kopf.on.event(*CATALOG, when=_revocation_pending)
@kopf.timer(*CATALOG, interval=DENIAL_CHECK_SECONDS, when=_denial_expired)
async def provision_denials(*, body: kopf.Body, memo: kopf.Memo, teams: Index = NO_INDEX, **_: Any) -> None:
    rt = runtime_of(memo)
    await rt.run_blocking(_sync_or_retry, rt, body.metadata.name, teams, False)


@kopf.on.event(*CATALOG)
def index_catalog(*, body: kopf.Body, memo: kopf.Memo, type: str, **_: Any) -> None:
    observe(runtime_of(memo), None if type == "DELETED" else dict(body), body.metadata.name)


#: Keys `observe` files a catalog under besides its tiers' groups: `UNRESOLVED` while a tier has
#: no GroupId recorded for its current `groupName`, and `(FOLDED, groupName.casefold())` for each
#: tier. They name the tiers whose group only Identity Center can match with a grant's when
#: neither its name nor its recorded id does (`sessions.deny`).
UNRESOLVED, FOLDED = ("unresolved",), "folded"


def observe(rt: Runtime, obj: dict[str, Any] | None, name: str) -> None:
    """File the catalog under its tiers' groups in `Runtime.catalog_groups` (None: it is gone):
    under each tier's `groupName`, and under the GroupId its status records for that name
    (`groupids.tier_group_ids`), as a grant of an Entitlement naming the group by `groupId` has
    the id for its `spec.groupName` (`sessions.deny`); and under `UNRESOLVED` and `FOLDED`."""
    groups = groupids.tier_groups(obj or {})
    ids = groupids.tier_group_ids(obj or {})
    for tier in rules.TIERS:
        group = groups.get(tier)
        keys: tuple[Any, ...] = tuple(key for key in (group, ids.get(tier)) if key)
        if group:
            keys += ((FOLDED, group.casefold()),) + (() if ids.get(tier) else (UNRESOLVED,))
        rt.catalog_groups.file(f"{name}/{tier}", keys, name)


@kopf.on.delete(*CATALOG)
async def remove_catalog(*, body: kopf.Body, memo: kopf.Memo, retry: int = 0, **_: Any) -> None:
    """The catalog is gone: so are its permission sets (only the tagged ones of its team). It goes
    once the records of its assignment drift removals are archived (kopf's finalizer holds it)."""
    rt = runtime_of(memo)
    await rt.run_blocking(_remove_or_retry, rt, body.metadata.name)
    rt.denials_tried.pop(str(body.metadata.uid), None)
    current = rt.kube.get(names.CATALOGS, body.metadata.name)
    what = "the record of an assignment drift removal is"
    archive.hold_until_archived(memo, names.CATALOGS, current, retry=retry, longest=5.0, what=what)


def _sync_or_retry(rt: Runtime, name: str, teams: Index, verify: bool) -> None:
    try:
        sync(rt, name, teams, verify=verify)
    except RetryLater as exc:
        raise kopf.TemporaryError(f"Identity Center is not answering ({exc}); will retry", delay=5) from exc


def _remove_or_retry(rt: Runtime, name: str) -> None:
    try:
        with _lock(name):
            sso = sso_of(rt)
            for arn, _tier in _owned(sso, name).items():
                _remove_permission_set(sso, arn)
            # Every assignment of its permission sets is gone with them: removals left under way are made.
            obj = rt.kube.get(names.CATALOGS, name)
            if obj is not None:
                _Drift.of(rt, PermissionCatalog.model_validate(obj), ts(now())).settle_rest(sso, set(), gone=True)
    except RetryLater as exc:
        raise kopf.TemporaryError(f"Identity Center is not answering ({exc}); will retry", delay=5) from exc


@dataclass
class _Pass:
    """What one pass found and did, for the status and the events."""

    drift: list[str] = field(default_factory=list)
    provisioned: bool = False
    tiers: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: What failed, one sentence each (a tier, the accounts of a tier): the `Ready` message.
    failures: list[str] = field(default_factory=list)
    #: The tiers whose permission set holds what the pass would provision (provisioned now or before),
    #: in every account that holds it but those the `Ready` message names as failed.
    in_effect: set[str] = field(default_factory=set)


@dataclass
class _Drift:
    """The assignment drift removals of one pass (module doc, `domain.assignmentdrift`): each listed
    in the status before its removal is asked for, confirmed once its tier's requests finished."""

    rt: Runtime
    name: str
    uid: str  # the catalog's: its removals are listed on it, never on another applied under its name
    seen: str
    #: Removals left unconfirmed by an earlier pass (or operator), as stored when this pass began.
    listed: dict[drift_rules.Key, drift_rules.Entry] = field(default_factory=dict)
    #: Removals this pass asked for, and whether the catalog still lists their account.
    begun: dict[drift_rules.Key, tuple[drift_rules.Entry, bool]] = field(default_factory=dict)
    #: Assignments the pass found and left (the tier's group, a granted user's).
    kept: set[drift_rules.Key] = field(default_factory=set)
    #: The permission sets whose assignments the pass read, every account of them.
    scanned: set[str] = field(default_factory=set)
    #: Messages of removals confirmed as gone (for the DriftFound Events).
    said: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, rt: Runtime, catalog: PermissionCatalog, seen: str) -> _Drift:
        entries = [r.wire() for r in catalog.status.drift_removals or []]
        return cls(rt, catalog.metadata.name, catalog.metadata.uid, seen, drift_rules.unconfirmed(entries))

    def begin(self, spec: rules.PermissionSetSpec, key: drift_rules.Key, wanted: bool) -> str | None:
        """List the removal of assignment `key` (unless an earlier pass did), before it is asked
        for; the message its Event and confirmation carry. None: it could not be listed (the
        catalog was deleted, or applied again under its name, during the pass), and the removal
        must not be made: one made unlisted would leave no record, and the new catalog's own pass
        lists and removes it."""
        entry = self.listed.get(key)
        if entry is None:
            user = self._user_name(key[3]) if key[2] == "USER" else None
            entry = drift_rules.intent(key, spec.name, user, self.seen)
            if not self._list(entry):
                log.info("%s: the catalog is gone or another now: drift of %s left to its next pass", self.name, key)
                return None
        self.begun[key] = (entry, wanted)
        return drift_rules.removed_message(entry, wanted)

    def not_removed(self, key: drift_rules.Key, why: str) -> str:
        """A removal begun that Identity Center refused or failed (an SCP denying the deletion, the
        operator's role not allowed in the account): an error, counted in `jitaccess_errors_total`
        and logged; what `Ready` says of it. Its entry stays unconfirmed, and every pass tries again."""
        metrics.ERRORS.labels("handler").inc()
        entry = self.begun[key][0]
        said = (
            f"{drift_rules.principal(entry)}, assigned {entry.get('permissionSetName')} outside jitaccess, is not "
            f"removed ({why}): it keeps that access until a pass removes it"
        )
        log.error("catalog %s: in %s, %s; tried again every pass", self.name, key[1], said)
        return said

    def _list(self, entry: drift_rules.Entry) -> bool:
        """Whether the catalog of this pass lists the removal of `entry` now (written here, or by a
        pass that listed it meanwhile)."""
        there = False

        def change(entries: list[drift_rules.Entry]) -> list[drift_rules.Entry] | None:
            nonlocal there
            added = drift_rules.listed(entries, entry)
            there = added is None
            return added

        return self._write(change) or there

    def settle(self, arn: str, made: Iterable[drift_rules.Key], skip: Iterable[str] = ()) -> None:
        """The requests of permission set `arn` finished: confirm the removals `made` (each asked
        for and succeeded), and settle the entries left under way that this pass did not ask for:
        the assignment gone, confirmed; still there and no drift now (a grant backs it), taken back.
        A removal refused or FAILED stays as it is, and so does every entry of the accounts `skip`
        (whose assignments could not be read); what else failed in an account (its provisioning, the
        group's assignment) does not keep its listing from telling what is there."""
        when = ts(now())
        skipped = set(skip)
        done = set(made)
        ours = [k for k in self.begun if k[0] == arn and k in done]
        confirmations = {key: (self.begun[key][0], when, drift_rules.removed_message(*self.begun[key])) for key in ours}
        back = []
        for key, entry in self.listed.items():
            if key[0] != arn or key in self.begun or key[1] in skipped:
                continue
            if key in self.kept:
                back.append(key)
            else:
                confirmations[key] = (entry, when, drift_rules.gone_message(entry))
        self._confirm(confirmations, made=ours)
        self._take_back(back)
        self.scanned.add(arn)

    def settle_rest(self, sso: SsoAdmin, owned: Iterable[str], *, gone: bool = False) -> None:
        """Settle the entries under way of permission sets the pass did not read (a tier no longer
        wanted, a permission set deleted, a catalog deleted: `gone`, every assignment of its
        permission sets removed with them): the assignment gone, confirmed; still there, taken back
        when the permission set is not this catalog's any more, else left to a pass that reads it."""
        when = ts(now())
        confirmations: dict[drift_rules.Key, tuple[drift_rules.Entry, str, str]] = {}
        back = []
        why = "" if not gone else " (the catalog was deleted, with its permission sets and their assignments)"
        for key, entry in self.listed.items():
            arn, account, principal_type, principal_id = key
            if arn in self.scanned:
                continue
            present = False
            if not gone:
                try:
                    present = (principal_type, principal_id) in sso.assignments(arn, account)
                except NotFound:
                    present = False  # the permission set is gone: nobody holds it
                except (RetryLater, PermanentFailure) as exc:
                    log.info("%s: a drift removal left under way is settled later: %s", self.name, exc)
                    continue
            if not present:
                confirmations[key] = (entry, when, drift_rules.gone_message(entry, why))
            elif arn not in owned:
                back.append(key)
        self._confirm(confirmations)
        self._take_back(back)

    def _user_name(self, user_id: str) -> str | None:
        """The user's name for the record (as it is now: users can be renamed); None when Identity
        Center has no such user or does not answer (the id is in the record all the same)."""
        try:
            return self.rt.identity_center.user_name(user_id)
        except (NotFound, RetryLater, PermanentFailure):
            return None

    def _confirm(
        self,
        confirmations: dict[drift_rules.Key, tuple[drift_rules.Entry, str, str]],
        made: Iterable[drift_rules.Key] = (),
    ) -> None:
        if not confirmations:
            return
        made = list(made)
        done: list[drift_rules.Key] = []

        def change(entries: list[drift_rules.Entry]) -> list[drift_rules.Entry] | None:
            result = drift_rules.confirmed(entries, confirmations, made=made)
            if result is None:
                return None
            done[:] = result[1]
            return result[0]

        if self._write(change):
            # Only the write that confirmed it reports a removal found gone (a removal made has its Event already).
            self.said += [confirmations[k][2] for k in done if k not in made]

    def _take_back(self, keys: list[drift_rules.Key]) -> None:
        if keys and self._write(lambda entries: drift_rules.taken_back(entries, keys)):
            log.info("%s: %d drift removal(s) left under way not made: no drift now", self.name, len(keys))

    def _write(self, change: Callable[[list[drift_rules.Entry]], list[drift_rules.Entry] | None]) -> bool:
        """Change `status.driftRemovals` as stored; whether it was written."""

        def build(current: PermissionCatalog) -> dict[str, Any] | None:
            entries = change([r.wire() for r in current.status.drift_removals or []])
            return None if entries is None else {"driftRemovals": entries}

        change_status = status_change(PermissionCatalog, build)
        return self.rt.kube.update_status(names.CATALOGS, self.name, change_status, uid=self.uid) is not None


def sync(rt: Runtime, name: str, teams: Index = NO_INDEX, *, verify: bool) -> None:
    """One pass over catalog `name` (module doc). `verify` reads Identity Center even when the
    recorded digest says nothing changed."""
    with _lock(name):
        obj = rt.kube.get(names.CATALOGS, name)
        observe(rt, obj, name)
        if obj is None:
            return
        catalog = PermissionCatalog.model_validate(obj)
        if teams is not NO_INDEX and first(teams, name) is None:
            _finish(
                rt, catalog, None, False, names.TEAM_NOT_FOUND, f"no TeamOwnership named {name}: nothing provisioned"
            )
            return
        started = now()
        done = _Pass()
        drift = _Drift.of(rt, catalog, ts(started))
        wanted: dict[str, tuple[rules.PermissionSetSpec, revocations.Effective, str]] = {}
        group_ids = groupids.tier_group_ids(obj)
        for tier in rules.tiers(catalog):
            spec = rules.render(catalog, tier)
            # The group by its id: an Active grant is filed under the id only (`indexes.holdings`), and
            # a tier no pass has recorded one for yet has it resolved (cached; the pass resolves it anyway).
            group_id = group_ids.get(tier) or group_of(rt, spec)
            denials = _in_force(rt, spec, _denials(getattr(catalog.status, tier)), started, group_id)
            effective = revocations.effective_policy(spec.inline_policy, denials)
            wanted[tier] = (spec, effective, revocations.digest(spec.digest, effective))
        unchanged = all(
            (getattr(catalog.status, tier) or TierStatus()).digest == digest and not _stale_accounts(catalog, tier)
            for tier, (_spec, _eff, digest) in wanted.items()
        )
        gone = [t for t in rules.TIERS if t not in wanted and getattr(catalog.status, t) is not None]
        if unchanged and not verify and not gone:
            _finish(rt, catalog, done, True, names.PROVISIONED, _summary(wanted), started=started, calls=0)
            return
        sso = sso_of(rt)
        before = sso.calls_made()
        retry: RetryLater | None = None
        try:
            owned = _owned(sso, name)
        except PermanentFailure as exc:
            _tried(rt, catalog, obj)
            _finish(
                rt,
                catalog,
                done,
                False,
                names.PROVISIONING_FAILED,
                str(exc),
                started=started,
                calls=sso.calls_made() - before,
            )
            return
        # Each tier on its own: one that fails (an account refused, a policy refused) neither stops
        # the other nor hides the revocations it could provision (attack 147).
        for spec, effective, digest in wanted.values():
            recorded = getattr(catalog.status, spec.tier) or TierStatus()
            if not verify and recorded.digest == digest and not _stale_accounts(catalog, spec.tier):
                done.in_effect.add(spec.tier)
                continue  # this tier is as provisioned: only the other one changed
            try:
                done.tiers[spec.tier] = _sync_tier(rt, sso, catalog, spec, effective, digest, owned, done, drift)
            except (PermanentFailure, InvalidInput) as exc:
                done.failures.append(f"{spec.name}: {exc}")
            except RetryLater as exc:
                retry = retry or exc
        if retry is not None:
            # Nothing written: the pass is tried again (`_sync_or_retry`). Nor removed: a tier's
            # permission set goes in the pass that writes its status away, else the status of a
            # tier no longer there would stay for ever.
            raise retry
        # A tier no longer wanted whose permission set is gone already (removed by a pass that
        # could not write the status): its status goes.
        for tier in gone:
            if (getattr(catalog.status, tier) or TierStatus()).permission_set_arn not in owned:
                done.tiers[tier] = {}
        try:
            for arn, owned_tier in owned.items():
                if owned_tier not in wanted:
                    _remove_permission_set(sso, arn)
                    done.tiers[owned_tier] = {}
            if verify or gone:
                drift.settle_rest(sso, [arn for arn, tier in owned.items() if tier in wanted])
        except PermanentFailure as exc:
            done.failures.append(str(exc))
        done.drift += drift.said
        for what in done.drift:
            record(catalog.wire(), names.DRIFT_FOUND, what, warning=True)
        calls = sso.calls_made() - before
        if done.failures:
            _tried(rt, catalog, obj)
            message = _failed(done, wanted, obj)
            _finish(rt, catalog, done, False, names.PROVISIONING_FAILED, message, started=started, calls=calls)
        else:
            _finish(rt, catalog, done, True, names.PROVISIONED, _summary(wanted), started=started, calls=calls)


def _tried(rt: Runtime, catalog: PermissionCatalog, obj: dict[str, Any]) -> None:
    """Mark the revocations the pass took up (`obj`: the catalog as the pass read it) as tried, just
    before it writes that it failed: that status write must not start the same failing pass again
    (`_revocation_pending`). Only then: a pass asked to retry (`RetryLater`) writes nothing, and the
    next event of the catalog takes its revocations up again."""
    rt.denials_tried[catalog.metadata.uid] = unprovisioned(obj)


def unprovisioned(obj: dict[str, Any]) -> frozenset[tuple[str, str, str]]:
    """The catalog's revocations no pass has provisioned yet: (tier, UserId, since) of each
    `deniedUsers` entry whose `since` is at or after its tier's `provisionedTime`."""
    status = obj.get("status") or {}
    found = set()
    for tier in rules.TIERS:
        tier_status = status.get(tier) or {}
        since_pass = str(tier_status.get("provisionedTime") or "")
        for d in tier_status.get("deniedUsers") or []:
            if str(d.get("since", "")) >= since_pass:
                found.add((tier, str(d.get("userId", "")), str(d.get("since", ""))))
    return frozenset(found)


def _failed(
    done: _Pass, wanted: dict[str, tuple[rules.PermissionSetSpec, revocations.Effective, str]], obj: dict[str, Any]
) -> str:
    """The `Ready` message of a pass where something failed: each failure, and the revocations of
    a tier it could not provision, which leave revoked users' sessions working meanwhile."""
    parts = list(done.failures)
    pending = unprovisioned(obj)
    for tier, (spec, _effective, _digest) in wanted.items():
        count = sum(1 for t, _user, _since in pending if t == tier)
        if count and tier not in done.in_effect:
            parts.append(
                f"{count} session revocation(s) of {spec.name} not provisioned: the revoked users' sessions "
                "still work until a pass provisions it"
            )
    return "; ".join(parts)


def _in_force(
    rt: Runtime,
    spec: rules.PermissionSetSpec,
    denials: Iterable[revocations.Denial],
    at: datetime,
    group_id: str | None = None,
) -> list[revocations.Denial]:
    """The denials to provision: those whose time has not come, a user who holds the group again
    through a live grant marked `held` (denied only the sessions issued before their revocation:
    they are entitled to the new grant's sessions, never to one from before it). `group_id`: the
    GroupId the catalog records for the tier's group (`groupids.tier_group_ids`), else Identity
    Center's, None when there is no such group."""
    return [
        replace(denial, held=_held(rt, spec, denial.user_id, group_id=group_id))
        for denial in revocations.current(denials, at)
    ]


def _held(rt: Runtime, spec: rules.PermissionSetSpec, user_id: str, arn: str = "", group_id: str | None = None) -> bool:
    """Whether a live grant gives the user this permission set: a membership of the tier's group,
    or a direct assignment (account-assignment mode, by catalog tier or by ARN). The group is known
    by its id `group_id` too, when known: a grant of an Entitlement naming it by `groupId` is filed
    under that id, an Active grant of any spelling under the id only (`indexes.holdings`), a
    Provisioning one under its own spelling, which may be another name this process resolved to the id."""
    groups = {spec.group_name, assignment_rules.reference(PermissionSetRef(catalog=spec.team, tier=spec.tier))}
    if group_id:
        groups |= {group_id} | rt.group_names(group_id)
    if arn:
        groups.add(arn)
    return any(set(rt.holders.get(membership_key(user_id, g), ())) - rt.recently_ended() for g in groups)


def _ended_here(rt: Runtime, spec: rules.PermissionSetSpec, user_id: str, arn: str) -> bool:
    """Whether this process ended a grant of the user's assignment of this permission set lately:
    its end takes the assignment out, and one the pass finds meanwhile is jitaccess's, no drift."""
    groups = [assignment_rules.reference(PermissionSetRef(catalog=spec.team, tier=spec.tier)), arn]
    return any(rt.ended_here(membership_key(user_id, g)) for g in groups)


def _stale_accounts(catalog: PermissionCatalog, tier: str) -> bool:
    status = getattr(catalog.status, tier)
    return status is None or any(a.state != "Provisioned" for a in status.accounts or [])


def _summary(wanted: dict[str, tuple[rules.PermissionSetSpec, revocations.Effective, str]]) -> str:
    parts = [f"{spec.name} in {len(spec.accounts)} account(s)" for spec, _e, _d in wanted.values()]
    overflow = [spec.name for spec, effective, _d in wanted.values() if effective.overflow]
    text = "Identity Center holds " + ", ".join(parts)
    if overflow:
        text += (
            f"; revoked sessions overflow the inline policy of {', '.join(overflow)}: every session issued "
            "before the latest revocation is denied"
        )
    return text


def _owned(sso: SsoAdmin, team: str) -> dict[str, str]:
    """The permission sets jitaccess created for this team: ARN -> tier (by their tags)."""
    found: dict[str, str] = {}
    for arn in sso.permission_set_arns():
        tags = _identity_tags(sso, arn)
        if tags is not None and tags[0] == team:
            found[arn] = tags[1]
    return found


# ARN -> (team, tier) of a jitaccess permission set, or None for one that is not; these tags are
# written at creation and never changed, so each ARN is asked about once per process.
_identity: dict[str, tuple[str, str] | None] = {}


def _identity_tags(sso: SsoAdmin, arn: str) -> tuple[str, str] | None:
    if arn not in _identity:
        try:
            tags = sso.tags(arn)
        except NotFound:
            return None
        managed = tags.get(rules.MANAGED_BY_TAG) == rules.MANAGED_BY
        _identity[arn] = (tags.get(rules.TEAM_TAG, ""), tags.get(rules.TIER_TAG, "")) if managed else None
    return _identity[arn]


def _sync_tier(
    rt: Runtime,
    sso: SsoAdmin,
    catalog: PermissionCatalog,
    spec: rules.PermissionSetSpec,
    effective: revocations.Effective,
    digest: str,
    owned: dict[str, str],
    done: _Pass,
    drift: _Drift,
) -> dict[str, Any]:
    status = getattr(catalog.status, spec.tier) or TierStatus()
    arn = next((a for a, tier in owned.items() if tier == spec.tier), None)
    missing = arn is None
    state: PermissionSetState | None = None
    if arn is not None:
        try:
            state = sso.read(arn)
        except NotFound:
            _identity.pop(arn, None)
            arn = None
    # Created by this pass: nothing provisioned yet, nothing changed by hand. One found made already
    # (`_create` adopting it) is not: it may hold accounts, and they must get what the pass writes.
    created = False
    if state is None:
        arn, state, adopted = _create(sso, spec)
        created = not adopted
    assert arn is not None
    if missing and status.permission_set_arn and status.permission_set_arn != arn:
        done.drift.append(
            f"permission set {spec.name} ({status.permission_set_arn}) was deleted outside jitaccess: created again"
        )
    changed = _content(sso, spec, effective, state, done, created, digest)
    # Provisioned before any assignment is asked for: an account that cannot be assigned (refused,
    # suspended, a customer managed policy missing there) must not keep a revocation's deny from
    # the accounts that hold the permission set (attack 147). A new assignment provisions what the
    # permission set holds when it is asked for, so the order costs nothing.
    held = [] if created else sso.assigned_accounts(arn)
    failed: dict[str, str] = {}
    if (changed or state.tags.get(DIGEST_TAG) != digest) and held:
        behind = {a.account for a in status.accounts or [] if a.state != "Provisioned"}
        failed = _provision(sso, arn, held, behind)
        done.provisioned = True
    # The digest tag says every account holds what it describes: not while one failed.
    if state.tags.get(DIGEST_TAG) != digest and not failed:
        sso.tag(arn, {DIGEST_TAG: digest})
    if len(failed) < len(held) or not held:
        done.in_effect.add(spec.tier)  # the accounts that failed are named in Ready
    group_id = _group(rt, spec)
    removals: dict[str, tuple[drift_rules.Key, str]] = {}
    unread: set[str] = set()
    accounts, requests = _assignments(
        sso,
        spec,
        arn,
        group_id,
        status,
        done,
        lambda user: _held(rt, spec, user, arn, group_id),
        drift,
        lambda user: _ended_here(rt, spec, user, arn),
        held=held,
        failed=failed,
        removals=removals,
        unread=unread,
    )
    finished = {}
    for account, request in zip([a for a, _r in requests], sso.finished([r for _a, r in requests]), strict=True):
        finished[request.request_id] = request
        if request.status != "FAILED":
            continue
        why = request.failure or "Identity Center gave no reason"
        if request.request_id in removals:
            _add(failed, account, drift.not_removed(removals[request.request_id][0], f"the removal failed: {why}"))
        elif account not in failed:
            failed[account] = (
                f"{'assigning it' if request.kind == 'create' else 'removing an assignment'} failed: {why}"
            )
    # A drift removal is said once made, as `drift.settle` confirms it, whatever else failed in its account.
    made = {rid: (key, said) for rid, (key, said) in removals.items() if finished[rid].status != "FAILED"}
    done.drift += [said for _key, said in made.values()]
    # An account whose assignments could not be read is left to a later pass (its entries neither confirmed nor taken back).
    drift.settle(arn, [key for key, _said in made.values()], skip=unread)
    if failed:
        done.failures.append(_accounts_failed(spec, failed))
    stamp = ts(now())
    return {
        "permissionSetName": spec.name,
        "permissionSetArn": arn,
        "groupName": spec.group_name,
        "groupId": group_id,
        "digest": digest,
        "accounts": [
            {"account": acc, "state": "Failed", "time": stamp, "message": failed[acc]}
            if acc in failed
            else {
                "account": acc,
                "state": "Provisioned",
                "time": stamp,
                **(
                    {"requestId": rid}
                    if (rid := accounts.get(acc)) and rid in finished and finished[rid].status != "FAILED"
                    else {}
                ),
            }
            for acc in spec.accounts
        ]
        # An account the tier no longer lists that still holds its permission set, where something
        # failed (a removal, its provisioning): in the status too, so that the next pass reads
        # Identity Center again (`_stale_accounts`) and `Ready` stays False until it is done.
        + [
            {"account": acc, "state": "Failed", "time": stamp, "message": f"no longer listed in the tier: {why}"}
            for acc, why in sorted(failed.items())
            if acc not in spec.accounts
        ],
    }


def _provision(sso: SsoAdmin, arn: str, held: list[str], behind: Iterable[str] = ()) -> dict[str, str]:
    """Provision the permission set to every account that holds it; the accounts where it failed
    (account -> why). One request for them all first; if it ends FAILED (one account suspended, a
    customer managed policy deleted in one) or is refused (the operator's role not allowed in one)
    each account is provisioned on its own, so that one account neither keeps a revocation's deny
    from the others nor goes unnamed (attack 147). The accounts `behind` (where an earlier pass
    failed) are asked first, and one whose request Identity Center does not answer (throttled) is
    left to a later pass, `Failed`, while the others are asked all the same: the same account
    order again at each pass must not starve the accounts after the one throttled."""
    try:
        (request,) = sso.finished([sso.provision(arn)])
        if request.status != "FAILED":
            return {}
        why = request.failure
    except PermanentFailure as exc:
        # Refused outright (AccessDenied: the operator's role not allowed in one account holding it):
        # no account got it, and each is asked on its own all the same.
        why = str(exc)
    log.info("%s: provisioning to all its accounts failed (%s): provisioned account by account", arn, why)
    failed: dict[str, str] = {}
    requests: list[tuple[str, Request]] = []
    first = set(behind)
    for account in sorted(held, key=lambda a: a not in first):
        try:
            requests.append((account, sso.provision(arn, account)))
        except PermanentFailure as exc:
            failed[account] = _not_provisioned(str(exc))
        except NotLeading:
            raise  # no call was made: the new leader's pass does it, and this replica writes nothing
        except RetryLater as exc:
            failed[account] = _not_provisioned(f"Identity Center did not answer: {exc}; tried again by a later pass")
    for (account, _r), each in zip(requests, sso.finished([r for _a, r in requests]), strict=True):
        if each.status == "FAILED":
            failed[account] = _not_provisioned(each.failure or "Identity Center gave no reason")
    return failed


def _not_provisioned(why: str) -> str:
    """What an account's status says when provisioning failed there."""
    return (
        f"provisioning failed ({why}): there the permission set is as last provisioned, "
        "without later session revocations"
    )


def _create(sso: SsoAdmin, spec: rules.PermissionSetSpec) -> tuple[str, PermissionSetState, bool]:
    """Create the tier's permission set, tagged jitaccess's; its ARN, what it holds, and whether
    it was found made already (adopted). A name taken (`ConflictException`) may be our own
    creation: applied, its answer lost (a 5xx, a timeout) and the SDK's retry refused; or one
    the pass's listing missed. The permission sets are listed again, and one tagged as this tier's
    is taken, as it is (it may be provisioned to accounts already: the caller provisions it as any
    other); only a permission set jitaccess did not create is refused."""
    try:
        arn = sso.create(spec.name, spec.description, spec.session_duration, spec.tags)
    except PermanentFailure as exc:
        if exc.code != "ConflictException":
            raise
        ours = next((a for a, tier in _owned(sso, spec.team).items() if tier == spec.tier), None)
        if ours is None:
            raise PermanentFailure(
                f"a permission set named {spec.name} exists that jitaccess did not create (it lacks the tag "
                f"{rules.MANAGED_BY_TAG}={rules.MANAGED_BY}): rename or delete it, jitaccess never changes it",
                operation="CreatePermissionSet",
                code=exc.code,
            ) from exc
        log.info("%s: created by an earlier attempt whose answer was lost (%s)", spec.name, ours)
        return ours, sso.read(ours), True
    _identity[arn] = (spec.team, spec.tier)
    return (
        arn,
        PermissionSetState(arn, spec.name, spec.description, spec.session_duration, "", (), dict(spec.tags)),
        False,
    )


def _accounts_failed(spec: rules.PermissionSetSpec, failed: dict[str, str]) -> str:
    """What the Ready condition says of the accounts where a tier's assignments failed, and the fix."""
    each = "; ".join(f"in {account}: {why}" for account, why in sorted(failed.items()))
    return (
        f"{spec.name} for group {spec.group_name} failed {each}. Check that each such account is active in "
        "the organization, that the operator's role may act in it (docs/aws-iam.md) and that it holds every "
        f"customer managed policy the tier attaches; {spec.name} is provisioned in its other accounts, "
        "session revocations included"
    )


def _content(
    sso: SsoAdmin,
    spec: rules.PermissionSetSpec,
    effective: revocations.Effective,
    state: PermissionSetState,
    done: _Pass,
    created: bool,
    digest: str,
) -> bool:
    """Bring the permission set's content to `spec`; whether anything had to change."""
    changes: list[str] = []
    if (state.description, state.session_duration) != (spec.description, spec.session_duration):
        sso.update(state.arn, spec.description, spec.session_duration)
        changes.append("description or session duration")
    if _parsed(state.inline_policy) != _parsed(effective.json):
        sso.put_inline_policy(state.arn, effective.json)
        changes.append("inline policy")
    want = {policy_key(a) for a in spec.managed_policy_arns}
    have = set(state.managed_policies)
    for key in sorted(want - have):
        sso.attach(state.arn, key)
    for key in sorted(have - want):
        sso.detach(state.arn, key)
    if want != have:
        changes.append("managed policies")
    # Provisioned by jitaccess as wanted now (the digest tag), yet different: changed by hand.
    if changes and not created and state.tags.get(DIGEST_TAG) == digest:
        done.drift.append(f"permission set {spec.name}: {', '.join(changes)} changed outside jitaccess: repaired")
    return bool(changes)


def _parsed(policy: str) -> Any:
    try:
        return json.loads(policy) if policy else {}
    except ValueError:
        return policy


def _group(rt: Runtime, spec: rules.PermissionSetSpec) -> str:
    group_id = group_of(rt, spec)
    if group_id is None:
        raise PermanentFailure(
            f"Identity Center group {spec.group_name!r} (spec.{spec.tier}.groupName) does not exist: create it",
            operation="GetGroupId",
        )
    return group_id


def group_of(rt: Runtime, spec: rules.PermissionSetSpec) -> str | None:
    """The GroupId of the tier's group (its `groupName` resolved by Identity Center, cached), or
    None when there is no such group; `RetryLater` or `PermanentFailure` when Identity Center does
    not answer or refuses."""
    try:
        return rt.cached("group", spec.group_name, rt.identity_center.resolve_group)
    except NotFound:
        return None


def _assignments(
    sso: SsoAdmin,
    spec: rules.PermissionSetSpec,
    arn: str,
    group_id: str,
    status: TierStatus,
    done: _Pass,
    granted: Callable[[str], bool],
    drift: _Drift,
    ended: Callable[[str], bool],
    *,
    held: list[str] | None = None,
    failed: dict[str, str] | None = None,
    removals: dict[str, tuple[drift_rules.Key, str]] | None = None,
    unread: set[str] | None = None,
) -> tuple[dict[str, str], list[tuple[str, Request]]]:
    """Assign the group in each account of the spec and nowhere else; (account -> request id of the
    assignments started, every request started with its account). A user's own assignment stays
    while a live grant gives them the permission set (`granted`: account-assignment mode). Any
    other assignment is drift, listed (`drift`) before its removal; but not the tier's group in an
    account no longer wanted, nor the assignment of a grant that ended here lately (`ended`):
    jitaccess's own, which it removes without a drift record. `held`: the accounts the permission
    set is provisioned to, when read already. An account Identity Center refuses (its listing or a
    request) goes into `failed` (account -> why) and the others are done all the same. `removals`:
    the drift removals asked for, request id -> (assignment, its `DriftFound` message), said by the
    caller once the request succeeded; a drift removal refused at once is in `failed` instead.
    `unread`: the accounts whose assignments could not be listed (each in `failed` too); a request
    refused in an account does not stop the scan of its assignments."""
    started: dict[str, str] = {}
    requests: list[tuple[str, Request]] = []
    failed = {} if failed is None else failed
    removals = {} if removals is None else removals
    unread = set() if unread is None else unread

    def ask(account: str, request: Callable[[], Request]) -> Request | None:
        # Refused at once: an error of the account; its other assignments are scanned all the same.
        try:
            made = request()
        except PermanentFailure as exc:
            _add(failed, account, str(exc))
            return None
        requests.append((account, made))
        return made

    known = {a.account for a in status.accounts or [] if a.state == "Provisioned"}  # a Failed one was never assigned

    def wanted(account: str) -> None:
        principals = sso.assignments(arn, account)
        if ("GROUP", group_id) not in principals:
            if account in known:
                done.drift.append(
                    f"{spec.name}: the assignment to {spec.group_name} in {account} was removed outside jitaccess: assigned again"
                )
            request = ask(account, lambda: sso.assign(arn, account, group_id))
            if request is not None:
                started[account] = request.request_id
        for principal_type, principal in principals:
            key = (arn, account, principal_type, principal)
            if (principal_type == "USER" and granted(principal)) or (principal_type, principal) == ("GROUP", group_id):
                drift.kept.add(key)
                continue
            if principal_type == "USER" and ended(principal):
                ask(account, partial(sso.unassign, arn, account, principal, principal_type))
                continue
            remove_drift(key, wanted=True)

    def unwanted(account: str) -> None:
        for principal_type, principal in sso.assignments(arn, account):
            key = (arn, account, principal_type, principal)
            if principal_type == "USER" and granted(principal):
                drift.kept.add(key)
                continue
            if (principal_type, principal) == ("GROUP", group_id) or (principal_type == "USER" and ended(principal)):
                ask(account, partial(sso.unassign, arn, account, principal, principal_type))
                continue
            remove_drift(key, wanted=False)

    def remove_drift(key: drift_rules.Key, *, wanted: bool) -> None:
        # Said ("...: removed") only once made (`_sync_tier`); one refused is an error of its account.
        said = drift.begin(spec, key, wanted=wanted)
        if said is None:
            return
        _arn, account, principal_type, principal = key
        try:
            request = sso.unassign(arn, account, principal, principal_type)
        except PermanentFailure as exc:
            _add(failed, account, drift.not_removed(key, str(exc)))
            return
        requests.append((account, request))
        removals[request.request_id] = (key, said)

    held = sso.assigned_accounts(arn) if held is None else held
    for step, account in [(wanted, a) for a in spec.accounts] + [
        (unwanted, a) for a in sorted(set(held) - set(spec.accounts))
    ]:
        try:
            step(account)
        except PermanentFailure as exc:  # the listing: requests refused are `ask`'s
            _add(failed, account, str(exc))
            unread.add(account)
    return started, requests


def _add(failed: dict[str, str], account: str, why: str) -> None:
    """Add what failed in `account`: every failure is said, not only the first."""
    failed[account] = f"{failed[account]}; {why}" if account in failed else why


def _remove_permission_set(sso: SsoAdmin, arn: str) -> None:
    """Every assignment of a jitaccess permission set, then the permission set."""
    requests = [
        sso.unassign(arn, account, principal, principal_type)
        for account in sso.assigned_accounts(arn)
        for principal_type, principal in sso.assignments(arn, account)
    ]
    sso.wait(requests)
    sso.delete(arn)
    _identity.pop(arn, None)


def _finish(
    rt: Runtime,
    catalog: PermissionCatalog,
    done: _Pass | None,
    ready: bool,
    reason: str,
    message: str,
    *,
    started: datetime | None = None,
    calls: int | None = None,
) -> None:
    """Record the pass in the catalog's status: the tiers, the result, `Ready`."""

    def build(current: PermissionCatalog) -> dict[str, Any] | None:
        fields: dict[str, Any] = {}
        stamp = started or now()
        for tier, values in (done.tiers if done else {}).items():
            if not values:
                fields[tier] = None
                continue
            kept = [
                d.wire() for d in (getattr(current.status, tier) or TierStatus()).denied_users or [] if d.until > stamp
            ]
            fields[tier] = {**values, "deniedUsers": kept, "provisionedTime": ts(stamp)}
        if done is not None and (done.tiers or calls):
            fields["lastResult"] = {
                "time": ts(now()),
                "outcome": "Succeeded" if ready else "Failed",
                "message": message,
                "calls": calls,
            }
        previous = cond.find(current.status.conditions, names.READY)
        same = (
            previous is not None
            and previous.status == ("True" if ready else "False")
            and previous.reason == reason
            and previous.message == message
            and previous.observed_generation == current.metadata.generation
        )
        if same and not fields:
            return None
        fields["conditions"] = conditions_after(
            current.status.conditions, [(names.READY, ready, reason, message)], current.metadata.generation
        )
        fields["observedGeneration"] = current.metadata.generation
        return fields

    before = cond.find(catalog.status.conditions, names.READY)
    updated = rt.kube.update_status(
        names.CATALOGS, catalog.metadata.name, status_change(PermissionCatalog, build), uid=catalog.metadata.uid
    )
    if updated is not None and (before is None or before.reason != reason):
        record(updated, reason, message, warning=not ready)
    if done is not None and done.provisioned:
        log.info("catalog %s provisioned: %s", catalog.metadata.name, message)


def hold(rt: Runtime, session_duration: str) -> timedelta:
    """How long a revoked user's sessions are denied: the permission set's session duration, or
    `JITACCESS_REVOCATION_HOLD_SECONDS` when set (tests)."""
    if rt.settings.revocation_hold_seconds is not None:
        return timedelta(seconds=rt.settings.revocation_hold_seconds)
    return timedelta(seconds=_iso_seconds(session_duration))


def _iso_seconds(iso: str) -> int:
    total, number = 0, ""
    for ch in iso.removeprefix("PT"):
        if ch.isdigit():
            number += ch
        else:
            total += int(number or 0) * {"H": 3600, "M": 60, "S": 1}.get(ch, 0)
            number = ""
    return total

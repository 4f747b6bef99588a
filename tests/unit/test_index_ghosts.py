"""Grants and requests deleted while a replica's watch was cut: kopf lists again and shows only what
exists, so nothing says they are gone, and they stay filed in the replica's indexes (`indexes`).

Such a ghost keeps no access: at the end of a grant, another grant the index names keeps the
membership only when it is stored, live and holding it (`grants._others_holding`,
`holders.stored_among`). And a periodic listing drops the ghosts from the indexes, keeping what
was filed after it began (`indexes.reconcile`): the drift scan, which takes the index's word for
who backs a member, then removes a member only a ghost backed."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any, cast

import pytest

from jitaccess.adapters.identitycenter import IdentityCenter
from jitaccess.adapters.kube import BY_NAME, Kube
from jitaccess.api import names
from jitaccess.domain.grants import membership_key
from jitaccess.domain.requests import Waiting
from jitaccess.handlers import filings, grants, indexes
from jitaccess.handlers.indexes import holdings
from jitaccess.handlers.recording import DEFERRED, Deferred
from jitaccess.handlers.runtime import Runtime
from jitaccess.settings import Settings
from tests.unit import test_drift_settling as drift
from tests.unit import test_grant_spellings as spellings
from tests.unit.test_grant_spellings import _grant

# --- a ghost keeps no membership ---------------------------------------------------------------------


#: The grants' handlers with a stand-in API server and Identity Center (alice, `u-1`, a member of `g-123`).
system = spellings.system


def test_a_ghost_in_the_index_does_not_keep_the_membership_at_a_grants_end(system: Any) -> None:
    """alice's g1 was revoked and deleted while this replica's watch was cut: it is still filed as a
    holder. Her g2, for the same group, ends: the membership goes with it."""
    rt, kube, ic = system
    ghost, live = _grant("g1", "Admins", active=True), _grant("g2", "Admins", active=True)
    rt.holders.file("g1", holdings(ghost), "g1")  # never stored since
    kube.put(names.GRANTS, live)
    rt.holders.file("g2", holdings(live), "g2")
    grants.end_grant(rt, "g2", names.EXPIRED, rt.holders, uid=BY_NAME)
    assert ic.members == {}
    assert kube.get(names.GRANTS, "g2")["status"]["conditions"][-1]["reason"] == names.EXPIRED


def test_a_grant_the_index_names_keeps_the_membership_only_while_it_holds_it(system: Any) -> None:
    """g1 is stored, but finished (the index has not seen its end yet): it holds nothing."""
    rt, kube, ic = system
    other, mine = _grant("g1", "Admins", active=True), _grant("g2", "Admins", active=True)
    for obj in (other, mine):
        kube.put(names.GRANTS, obj)
        rt.holders.file(wire_name(obj), holdings(obj), wire_name(obj))
    ended = dict(
        other, status={**other["status"], "conditions": [{"type": "Ready", "status": "False", "reason": "Revoked"}]}
    )
    kube.put(names.GRANTS, ended)
    grants.end_grant(rt, "g2", names.EXPIRED, rt.holders, uid=BY_NAME)
    assert ic.members == {}


def test_a_live_grant_the_index_names_keeps_the_membership(system: Any) -> None:
    rt, kube, ic = system
    for obj in (_grant("g1", "Admins", active=True), _grant("g2", "Admins", active=True)):
        kube.put(names.GRANTS, obj)
        rt.holders.file(wire_name(obj), holdings(obj), wire_name(obj))
    grants.end_grant(rt, "g2", names.EXPIRED, rt.holders, uid=BY_NAME)
    assert ic.members == {("g-123", "u-1"): "m-1"}


def wire_name(obj: dict[str, Any]) -> str:
    return str(obj["metadata"]["name"])


@pytest.fixture
def events() -> Any:
    deferred = Deferred()
    token = DEFERRED.set(deferred)
    yield deferred
    DEFERRED.reset(token)


def test_a_ghost_dropped_by_the_listing_backs_no_member_in_the_drift_scan(events: Deferred) -> None:
    """The drift scan finds alice and bob in the group. The index named alice's grant g1, deleted
    unseen, until the listing dropped it: she is removed as unbacked. Bob's grant, stored and Active
    there, keeps him."""
    store = drift.Store(**{"m-1": "alice", "m-2": "bob"})
    cluster, rt = drift.setup(store)
    cluster.add(names.GRANTS, drift.active_grant("g-bob", "bob"))
    for name, user in (("g1", "alice"), ("g-bob", "bob")):
        rt.holders.file(name, (membership_key(user, drift.GROUP_ID),), name)
    indexes.drop_gone_grants(rt, {"g-bob"}, filings.stamp())
    keys = [membership_key(user, drift.GROUP_ID) for user in ("alice", "bob")]
    index = {key: sorted(rt.holders.get(key, ())) for key in keys}
    assert index == {keys[0]: [], keys[1]: ["g-bob"]}
    drift.scan(cluster, rt, holders=index)
    assert store.members == {"m-2": "bob"}
    assert list(drift.removals(cluster)) == ["m-1"]


# --- the indexes set right by a listing ----------------------------------------------------------------


class _Listing:
    """The API server's paged listing of metadata, as `Runtime.kube.each_metadata`; `during` runs
    while it is under way (what the watch files meanwhile)."""

    def __init__(self, during: Any = None, **stored: list[str]) -> None:
        self.stored, self.during = stored, during

    def each_metadata(self, plural: str) -> list[dict[str, Any]]:
        if self.during is not None:
            self.during(plural)
        return [{"metadata": {"name": name}} for name in self.stored.get(plural, [])]


def _request(name: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "uid": f"uid-{name}", "creationTimestamp": "2026-11-23T12:00:00Z"},
        "spec": {"entitlement": "prod-eng-ledger", "requester": "bob@example.com"},
        "status": {"conditions": [{"type": "Ready", "status": "False", "reason": "Pending"}]},
    }


def test_the_listing_drops_a_ghost_and_keeps_what_was_filed_after_it_began() -> None:
    grant_ghost, grant_live = _grant("g1", "Admins", active=True), _grant("g2", "Admins", active=True)
    born = _grant("g3", "Admins", active=True)
    rt = Runtime(Settings(), cast(IdentityCenter, None), cast(Kube, None))
    rt.grant_names.listed([])  # the start-up listing is done: a name not seen is free
    loop_observe = [(grant_ghost, "g1"), (grant_live, "g2")]

    def observe_grant(obj: dict[str, Any]) -> None:
        name = wire_name(obj)
        rt.holders.file(name, holdings(obj), name)
        rt.active.observe(name, ("e", name))
        rt.expirations.observe(name, ("e", name))
        rt.grant_names.observe(name, True)

    for obj, _ in loop_observe:
        observe_grant(obj)
    rt.revocations_seen["g1"] = rt.revocations_seen["g2"] = datetime.now(UTC)
    for name in ("r-ghost", "r-live"):
        indexes.file_undecided(rt, name, _request(name))
        rt.requests.observe(name, f"uid-{name}")

    def meanwhile(plural: str) -> None:
        # Created after the listing was served: filed by the watch while the listing is under way.
        if plural == names.GRANTS:
            observe_grant(born)
        else:
            indexes.file_undecided(rt, "r-born", _request("r-born"))

    rt.kube = cast(Kube, _Listing(meanwhile, accessgrants=["g2"], accessrequests=["r-live"]))
    asyncio.run(indexes.reconcile(rt))

    key = membership_key("u-1", "g-123")
    assert sorted(rt.holders[key]) == ["g2", "g3"]
    assert rt.active.key_of("g1") is None and rt.expirations.key_of("g1") is None
    assert rt.active.key_of("g3") is not None
    assert not rt.grant_names.may_hold("g1") and rt.grant_names.may_hold("g2") and rt.grant_names.may_hold("g3")
    assert set(rt.revocations_seen) == {"g2"}
    assert [p.name for p in rt.pending["prod-eng-ledger"]] == ["r-live", "r-born"]
    assert [w.name for w in rt.waiting.of("bob@example.com")] == ["r-live", "r-born"]
    assert rt.requests.known("r-ghost") is None and rt.requests.known("r-live") == "uid-r-live"


def test_a_request_withdrawn_unseen_waits_no_more_once_listed() -> None:
    """Before the listing, bob is refused "already waits" for a request that does not exist."""
    rt = Runtime(Settings(), cast(IdentityCenter, None), cast(Kube, _Listing(accessrequests=[])))
    indexes.file_undecided(rt, "r-ghost", _request("r-ghost"))
    since = filings.stamp()
    assert indexes.drop_gone_requests(rt, set(), since) == ["r-ghost"]
    assert rt.waiting.of("bob@example.com") == []
    assert rt.waiting.admit("bob@example.com", Waiting("r2", "prod-eng-ledger"), lambda others: None) is None
    assert rt.pending.get("prod-eng-ledger", ()) == ()


class _ChangedWhileWalked(dict[str, datetime]):
    """`revocations_seen` as the controller's thread changes it: a revocation seen while the
    listing's pass walks the dict (`asked_to_end` files it from that thread)."""

    def __iter__(self) -> Any:
        walked = super().__iter__()
        first = next(walked)
        self["g-revoked-meanwhile"] = datetime.now(UTC)
        yield first
        yield from walked


def test_a_revocation_seen_meanwhile_does_not_abort_the_listings_pass() -> None:
    """The pass walked the dict the controller's thread changes, and failed ("dictionary changed size
    during iteration") after the grants were dropped, so the requests' part was never done. Only
    the ghosts' entries go; the one filed meanwhile stays."""
    rt = Runtime(Settings(), cast(IdentityCenter, None), cast(Kube, _Listing(accessgrants=["g2"], accessrequests=[])))
    for name in ("g1", "g2"):
        rt.expirations.observe(name, ("e", datetime.now(UTC)))
        rt.grant_names.observe(name, True)
    rt.revocations_seen = _ChangedWhileWalked(g1=datetime.now(UTC), g2=datetime.now(UTC))
    indexes.file_undecided(rt, "r-ghost", _request("r-ghost"))
    asyncio.run(indexes.reconcile(rt))
    assert set(rt.revocations_seen.keys()) == {"g2"}
    assert rt.waiting.of("bob@example.com") == [], "the requests' part ran"


def test_the_first_listing_comes_a_minute_after_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """A request withdrawn between start-up's listing and the watch's first one is filed by the one
    and never shown deleted by the other: the first pass drops it after a minute, not five."""
    pauses: list[float] = []
    passes: list[Runtime] = []

    async def sleep(seconds: float) -> None:
        pauses.append(seconds)
        if len(pauses) > 3:
            raise asyncio.CancelledError

    async def reconcile(rt: Runtime) -> None:
        passes.append(rt)

    monkeypatch.setattr(indexes.asyncio, "sleep", sleep)
    monkeypatch.setattr(indexes, "reconcile", reconcile)
    monkeypatch.setattr(indexes, "runtime_of", lambda memo: memo)
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(indexes._keep_reconciling(cast(Any, "rt")))
    assert pauses == [indexes.FIRST_RECONCILE_SECONDS] + 3 * [indexes.RECONCILE_SECONDS]
    assert indexes.FIRST_RECONCILE_SECONDS == 60 and len(passes) == 3

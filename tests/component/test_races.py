"""Races between the controller's handlers and the admission part's watch, and between an expiry
and an extension: the handler functions driven directly, in the interleavings that took access
away (or said it ran on when it had ended), against the real API server and the strict emulator.

`Runtime.holders` is filled by the admission part's watch (`indexes.observe_grant`), in another
event loop than the controller's handlers: here it is left as that watch would have it a moment
after a grant's handler added the member, i.e. without that grant.
"""

from __future__ import annotations

import asyncio
import contextvars
import datetime as dt
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import kopf
import pytest

from devenv.controlplane import ControlPlane
from devenv.emulator import IdentityCenterEmulator
from devenv.paths import EXAMPLES
from jitaccess.adapters.identitycenter import IdentityCenter
from jitaccess.adapters.kube import BY_NAME, Kube, load_client_config
from jitaccess.api import names, wire
from jitaccess.api.models import AccessExtension, AccessGrant, Entitlement
from jitaccess.domain import extensions as extension_rules
from jitaccess.handlers import catalog, expiry, extensions, grants
from jitaccess.handlers.common import NO_INDEX
from jitaccess.handlers.indexes import holdings
from jitaccess.handlers.recording import DEFERRED, Deferred
from jitaccess.handlers.runtime import Runtime
from jitaccess.settings import load
from tests.component.test_handlers import prepare

ALICE = "alice@example.com"
GROUP = "prod-eng-payments"
STAMP = "%Y-%m-%dT%H:%M:%SZ"


@dataclass
class World:
    cluster: ControlPlane
    ic: IdentityCenterEmulator
    kube: Kube

    def runtime(self) -> Runtime:
        env = self.ic.env()
        identity_center = IdentityCenter.connect(
            env["JITACCESS_IDENTITY_STORE_ID"],
            region=env["AWS_DEFAULT_REGION"],
            endpoint_url=env["AWS_ENDPOINT_URL"],
            rate_limit=0,
            max_attempts=1,
        )
        return Runtime(settings=load(), kube=Kube(), identity_center=identity_center)

    def grant(self, name: str) -> AccessGrant:
        body = {
            "apiVersion": names.API_VERSION,
            "kind": names.ACCESS_GRANT,
            "metadata": {"name": name, "labels": {names.LABEL_ENTITLEMENT: GROUP}},
            "spec": {"user": ALICE, "userId": self.ic.user_id(ALICE), "entitlement": GROUP, "groupName": GROUP,
                     "request": name, "duration": "1h", "ownerTeam": "payments", "reason": "INC-1 race"},
        }  # fmt: skip
        self.cluster.kubectl("apply", "-f", "-", input=json.dumps(body))
        return self.stored(name)

    def stored(self, name: str) -> AccessGrant:
        return AccessGrant.model_validate(self.kube.get(names.GRANTS, name))

    def reason(self, name: str) -> str:
        obj = self.kube.get(names.GRANTS, name) or {}
        return next(c["reason"] for c in obj["status"]["conditions"] if c["type"] == names.READY)

    def watched(self, rt: Runtime, name: str) -> None:
        """File the grant as the admission part's watch does (`indexes.observe_grant`)."""
        rt.holders.file(name, holdings(self.kube.get(names.GRANTS, name) or {}), name)

    def entitlement(self) -> Entitlement:
        return Entitlement.model_validate(self.kube.get(names.ENTITLEMENTS, GROUP))

    def drift_removals(self) -> list[Any]:
        obj = self.kube.get(names.ENTITLEMENTS, GROUP) or {}
        return list(obj.get("status", {}).get("driftRemovals") or [])


@pytest.fixture
def world(control_plane: ControlPlane) -> Iterator[World]:
    with pytest.MonkeyPatch.context() as patcher:
        emulator = prepare(control_plane, patcher)
        control_plane.kubectl(
            "apply", "-f", str(EXAMPLES / "01-teams.yaml"), "-f", str(EXAMPLES / "02-entitlements.yaml")
        )
        load_client_config()
        # No kopf watch here to post Events through; reset after, or the tests that follow in this
        # process (the same context) would defer Events that must fail loudly elsewhere.
        deferring = DEFERRED.set(Deferred())
        try:
            yield World(control_plane, emulator, Kube())
        finally:
            for kind in ("accessgrants", "accessextensions"):
                listed = control_plane.kubectl("get", kind, "-o", "name", check=False).stdout.split()
                for item in listed:
                    patch = '[{"op":"remove","path":"/metadata/finalizers"}]'
                    control_plane.kubectl("patch", item, "--type=json", "-p", patch, check=False)
                if listed:
                    control_plane.kubectl("delete", *listed, "--wait=false", check=False)
            control_plane.kubectl("delete", "entitlements,teamownerships", "--all", "--wait=false", check=False)
            emulator.stop()
            DEFERRED.reset(deferring)


# --- a drift scan right after a grant's own handler added the member ---------------------------


def test_a_drift_scan_keeps_the_member_a_grant_handler_has_just_added(world: World) -> None:
    """A scheduled start, a resumed grant, a burst's grant: its own handler adds the member, and a
    drift scan lists the group before the watch has filed the grant. The handler filed it itself,
    under the membership lock, before the add: the member is backed."""
    rt = world.runtime()
    grants.activate(rt, world.grant("race-drift"))
    assert rt.holders.key_of("race-drift") is not None, "not filed as a holder by its own handler"
    catalog._scan_drift(rt, world.entitlement(), GROUP, world.ic.group_id(GROUP), rt.holders)
    assert world.reason("race-drift") == names.ACTIVE
    assert world.ic.members_of(GROUP) == {ALICE}, "the scan took out the member the grant had just added"
    assert world.drift_removals() == []


def test_a_drift_scan_asks_the_api_server_before_removing_a_member_its_index_does_not_back(world: World) -> None:
    """The watch-fed index is not the only evidence for a removal: with an index that shows no
    grant at all, the scan finds the Active grant the API server stores, and removes nothing."""
    rt = world.runtime()
    grants.activate(rt, world.grant("race-unindexed"))
    catalog._scan_drift(rt, world.entitlement(), GROUP, world.ic.group_id(GROUP), {})
    assert world.reason("race-unindexed") == names.ACTIVE
    assert world.ic.members_of(GROUP) == {ALICE}
    assert world.drift_removals() == []


# --- an Entitlement deleted and applied again while a check of the first is under way -----------


def test_a_check_of_an_entitlement_writes_nothing_on_another_applied_under_its_name(world: World) -> None:
    """The check of the Entitlement as kopf showed it (no owner team known: not Ready) finishes
    after it was deleted and applied again: the new one is another object (attacks 130-134,
    docs/security.md), and its `Ready` is its own check's to write, not the first one's."""
    rt = world.runtime()
    first = world.kube.get(names.ENTITLEMENTS, GROUP) or {}
    again = {k: v for k, v in first.items() if k != "status"}
    again["metadata"] = {"name": GROUP, "labels": wire.metadata(first).get("labels") or {}}
    world.cluster.kubectl("delete", names.ENTITLEMENTS, GROUP)
    world.cluster.kubectl("create", "-f", "-", input=json.dumps(again))
    second = world.kube.get(names.ENTITLEMENTS, GROUP) or {}
    assert wire.uid_of(second) not in ("", wire.uid_of(first))
    memo = {"runtime": rt}
    asyncio.run(catalog.check_entitlement(body=kopf.Body(first), memo=memo, teams=NO_INDEX))
    stored = world.kube.get(names.ENTITLEMENTS, GROUP)
    assert wire.status(stored).get("conditions") is None, "the first one's check wrote Ready on the second"
    asyncio.run(catalog.check_entitlement(body=kopf.Body(second), memo=memo, teams=NO_INDEX))
    assert wire.condition(world.kube.get(names.ENTITLEMENTS, GROUP), names.READY) is not None, "its own check"


# --- two grants of one membership: the older ends as the newer takes it over ----------------------


def test_the_end_of_an_older_grant_keeps_the_membership_a_newer_one_took_over(world: World) -> None:
    rt = world.runtime()
    old = world.grant("race-old")
    world.watched(rt, "race-old")
    grants.activate(rt, old)
    world.watched(rt, "race-old")
    grants.activate(rt, world.grant("race-new"))  # a member already: Active; the watch has not shown it
    grants.end_grant(rt, "race-old", names.EXPIRED, rt.holders, uid=BY_NAME)
    assert (world.reason("race-old"), world.reason("race-new")) == (names.EXPIRED, names.ACTIVE)
    assert world.ic.members_of(GROUP) == {ALICE}, "the old grant's end took the new grant's access"


def test_an_end_asks_the_api_server_before_removing_a_membership_its_index_says_nobody_else_holds(
    world: World,
) -> None:
    rt = world.runtime()
    grants.activate(rt, world.grant("race-first"))
    grants.activate(rt, world.grant("race-second"))
    grants.end_grant(rt, "race-first", names.EXPIRED, {}, uid=BY_NAME)  # the index, as the watch has it: nobody
    assert (world.reason("race-first"), world.reason("race-second")) == (names.EXPIRED, names.ACTIVE)
    assert world.ic.members_of(GROUP) == {ALICE}
    grants.end_grant(rt, "race-second", names.REVOKED, {}, why="the last one", uid=BY_NAME)
    assert world.ic.members_of(GROUP) == set(), "the last holder's end keeps nothing"


# --- an extension applied while the expiry removes the membership -------------------------------


def _extension_lands_during_the_expiry(world: World, rt: Runtime, name: str) -> dt.datetime | None:
    """The extension's write is computed while the grant still has more than `MARGIN` left and
    commits (on the resourceVersion it read) only once the expiry, which read the grant after its
    time had come, has removed the membership. What `expire_now` returned."""
    grants.activate(rt, world.grant(name))
    world.watched(rt, name)
    due = dt.datetime.now(dt.UTC).replace(microsecond=0) + extension_rules.MARGIN + dt.timedelta(seconds=2)
    uid = world.stored(name).metadata.uid
    rt.kube.update_status(names.GRANTS, name, lambda _: {"expirationTime": due.strftime(STAMP)}, uid=uid)
    extension = {
        "apiVersion": names.API_VERSION,
        "kind": "AccessExtension",
        "metadata": {"name": f"{name}-1"},
        "spec": {"grant": name, "duration": "1h", "reason": "INC-1 more", "requester": ALICE},
    }
    world.cluster.kubectl("apply", "-f", "-", input=json.dumps(extension))
    built, go = threading.Event(), threading.Event()

    class HeldKube(Kube):
        """The extension's grant write: computed now, sent when the test says."""

        def update_status(self, plural: str, name_: str, change: Any, current: Any = None, **only: Any) -> Any:
            if plural != names.GRANTS:
                return super().update_status(plural, name_, change, current, **only)

            def held(obj: dict[str, Any]) -> Any:
                fields = change(obj)
                built.set()
                assert go.wait(30)
                return fields

            return super().update_status(plural, name_, held, current, **only)

    applying = Runtime(settings=rt.settings, kube=HeldKube(), identity_center=rt.identity_center)
    step = extension_rules.Next(extension_rules.Step.APPLY, who="paula@example.com")
    args = (
        applying,
        AccessExtension.model_validate(world.kube.get(names.EXTENSIONS, f"{name}-1")),
        world.stored(name),
        world.entitlement(),
        step,
    )
    thread = threading.Thread(target=contextvars.copy_context().run, args=(extensions._apply, *args))
    thread.start()
    assert built.wait(30)
    while dt.datetime.now(dt.UTC) <= due:
        time.sleep(0.05)
    remove = rt.identity_center.remove_member

    def removing(*args: Any, **kwargs: Any) -> bool:
        removed = remove(*args, **kwargs)
        go.set()  # the extension's write commits now, before the end's
        thread.join(30)
        return removed

    rt.identity_center.remove_member = removing  # type: ignore[method-assign]
    try:
        return expiry.expire_now(rt, name)
    finally:
        go.set()
        thread.join(30)


def test_an_extension_applied_while_the_expiry_removes_the_membership_keeps_the_access(world: World) -> None:
    rt = world.runtime()
    again = _extension_lands_during_the_expiry(world, rt, "race-ext")
    grant = world.stored("race-ext")
    assert world.reason("race-ext") == names.ACTIVE, "written Expired at the extension's time"
    assert grant.status.expiration_time is not None
    assert grant.status.expiration_time > dt.datetime.now(dt.UTC) + dt.timedelta(minutes=50)
    assert again == grant.status.expiration_time, "the expiry scheduler is given the new time"
    assert world.ic.members_of(GROUP) == {ALICE}, "the extended grant has no access"
    assert "race-ext" not in rt.recently_ended()


def test_an_extension_gives_nothing_back_to_a_grantee_disabled_since(world: World) -> None:
    """alice is disabled in Identity Center (she has left) while her grant expires and an extension
    of it lands: the access her expiry removed is not added again (the eligibility re-check would
    only have taken it out minutes later). The grant ends Expired when its access ended, saying why."""
    rt = world.runtime()
    remove = rt.identity_center.remove_member

    def disabled_meanwhile(*args: Any, **kwargs: Any) -> bool:
        world.ic.set_user_enabled(ALICE, False)
        return remove(*args, **kwargs)

    rt.identity_center.remove_member = disabled_meanwhile  # type: ignore[method-assign]
    try:
        again = _extension_lands_during_the_expiry(world, rt, "race-ext-leaver")
    finally:
        world.ic.set_user_enabled(ALICE, True)
    assert again is None
    assert world.reason("race-ext-leaver") == names.EXPIRED
    assert world.ic.members_of(GROUP) == set(), "given back to a disabled user"
    ready = next(c for c in world.stored("race-ext-leaver").status.conditions if c.type == names.READY)
    assert "was not given back: alice@example.com's Identity Center account" in ready.message, ready.message
    assert "is disabled" in ready.message, ready.message


def test_an_extension_whose_access_cannot_be_given_back_ends_the_grant_when_its_access_ended(world: World) -> None:
    """Giving the access back fails (Identity Center refuses): the grant ends Expired at the
    moment its membership was removed, not at the time the extension gave it."""
    rt = world.runtime()
    # The grant's own add comes first: let it through, then refuse the one that gives it back.
    group_add = rt.identity_center.ensure_member
    calls = []

    def refusing_the_second(*args: Any, **kwargs: Any) -> tuple[str, bool]:
        calls.append(args)
        if len(calls) > 1:
            world.ic.faults.fail("CreateGroupMembership", times=1, error="AccessDeniedException")
        return group_add(*args, **kwargs)

    rt.identity_center.ensure_member = refusing_the_second  # type: ignore[method-assign]
    before = dt.datetime.now(dt.UTC)
    again = _extension_lands_during_the_expiry(world, rt, "race-ext-refused")
    after = dt.datetime.now(dt.UTC)
    grant = world.stored("race-ext-refused")
    assert again is None
    assert world.reason("race-ext-refused") == names.EXPIRED
    ended = grant.status.expiration_time
    assert ended is not None and before - dt.timedelta(seconds=1) <= ended <= after, ended
    assert world.ic.members_of(GROUP) == set()
    ready = next(c for c in grant.status.conditions if c.type == names.READY)
    assert "could not be given back" in ready.message

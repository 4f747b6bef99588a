"""`kubectl jit review NAME` of a break-glass request, `kubectl jit approve|deny NAME`, and `kubectl jit
revoke NAME --uid UID`: the review, decision or revocation lands on the object read, never on
another created under its name since (its patch carries the uid, and the resourceVersion, read)."""

from __future__ import annotations

import io
from typing import Any

import pytest

from jitaccess.api import names
from jitaccess.cli import breakglass, decisions, main, parser
from jitaccess.cli import objects as o
from jitaccess.cli.errors import REFUSED, USAGE, NotFound, Refused
from jitaccess.cli.kube import ApiError
from jitaccess.cli.objects import Identity
from jitaccess.cli.session import Session
from tests.unit.test_cli_commands import FakeApi, cond, err, extension, grant, out, req, session

PATH = o.path(names.REQUESTS, "r")


class StoringApi(FakeApi):
    """A patch is applied to the stored object as the API server applies it: refused (409) when it
    carries another resourceVersion than the stored one, (422) another uid; `between` runs after
    each read, as something else's write between the plugin's read and its patch."""

    def __init__(self) -> None:
        super().__init__()
        self.between: list[dict[str, Any]] = []
        self.between_at = PATH

    def get(self, path: str, **query: Any) -> dict[str, Any]:
        read = super().get(path, **query)
        if path == self.between_at and self.between:
            self.objects[path] = self.between.pop(0)
        return read

    def merge_patch(self, path: str, patch: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(("patch", (path, patch)))
        stored, asked = self.objects[path], patch["metadata"]
        if asked.get("resourceVersion", stored["metadata"]["resourceVersion"]) != stored["metadata"]["resourceVersion"]:
            raise ApiError(
                409, "Conflict", "the object has been modified; please apply your changes to the latest version"
            )
        if asked.get("uid", stored["metadata"]["uid"]) != stored["metadata"]["uid"]:
            raise ApiError(422, "Invalid", "metadata.uid: Invalid value: field is immutable")
        notes = {**stored["metadata"]["annotations"], **asked.get("annotations", {})}
        self.objects[path] = {
            **stored,
            "metadata": {**stored["metadata"], "annotations": notes, "resourceVersion": "99"},
        }
        return self.objects[path]


def glass(uid: str, requester: str = "carol@example.com", version: str = "9") -> dict[str, Any]:
    base = req()
    return {
        **base,
        "metadata": {**base["metadata"], "name": "r", "uid": uid, "resourceVersion": version},
        "spec": {**base["spec"], "requester": requester, "breakGlass": True, "reason": f"INC-1 {uid}"},
    }


@pytest.fixture
def api() -> StoringApi:
    return StoringApi()


def test_the_review_carries_the_uid_and_resource_version_read(api: StoringApi) -> None:
    api.objects[PATH] = glass("u-1")
    s = session(api)
    read = breakglass.break_glass_request(s, "r")
    assert read is not None and breakglass.review(s, read) == 0
    [patch] = [c[1][1] for c in api.calls if c[0] == "patch"]
    assert patch["metadata"] == {
        "uid": "u-1",
        "resourceVersion": "9",
        "annotations": {names.ANNOTATION_REVIEWED: "true"},
    }
    assert out(s) == "reviewed break-glass accessrequest r (carol@example.com, prod-eng-payments): INC-1 u-1\n"


def test_a_request_created_again_under_the_name_meanwhile_is_not_reviewed(api: StoringApi) -> None:
    """Deleted and created again (by mallory) between the read and the patch: nothing is reviewed,
    and the reviewer is told to look again; the new request keeps no review."""
    api.objects[PATH] = glass("u-1")
    api.between = [glass("u-2", requester="mallory@example.com", version="12")]
    s = session(api)
    read = breakglass.break_glass_request(s, "r")
    assert read is not None
    with pytest.raises(Refused, match=r"accessrequest r is no longer the one read \(uid u-1\): it was deleted, and "
                       r"mallory@example.com created another .* Nothing was reviewed; look at it with "
                       r"`kubectl jit status r` first"):  # fmt: skip
        breakglass.review(s, read)
    assert names.ANNOTATION_REVIEWED not in api.objects[PATH]["metadata"]["annotations"]
    assert len([c for c in api.calls if c[0] == "patch"]) == 1
    assert out(s) == ""


def test_a_change_to_the_same_request_is_read_and_reviewed(api: StoringApi) -> None:
    """The operator's status write between the read and the patch: the same request (its uid), read
    again, checked again, reviewed at its new resourceVersion."""
    api.objects[PATH] = glass("u-1")
    api.between = [glass("u-1", version="10")]
    s = session(api)
    read = breakglass.break_glass_request(s, "r")
    assert read is not None and breakglass.review(s, read) == 0
    patches = [c[1][1]["metadata"] for c in api.calls if c[0] == "patch"]
    assert [(p["uid"], p["resourceVersion"]) for p in patches] == [("u-1", "9"), ("u-1", "10")]
    assert api.objects[PATH]["metadata"]["annotations"][names.ANNOTATION_REVIEWED] == "true"


def test_a_request_reviewed_meanwhile_is_refused_as_reviewed(api: StoringApi) -> None:
    api.objects[PATH] = glass("u-1")
    reviewed = glass("u-1", version="10")
    reviewed["metadata"]["annotations"] = {names.ANNOTATION_REVIEWED_BY: "lena@example.com"}
    api.between = [reviewed]
    s = session(api)
    read = breakglass.break_glass_request(s, "r")
    assert read is not None
    with pytest.raises(Refused, match=r"accessrequest r was already reviewed by lena@example\.com"):
        breakglass.review(s, read)


def test_review_from_the_command_line_reviews_the_request_it_looked_up(
    api: StoringApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`review request/NAME` looks the name up once: the request found break-glass is the one reviewed."""
    api.objects[PATH] = glass("u-1")
    api.between = [glass("u-2", requester="mallory@example.com", version="12")]
    paula = session(api)
    monkeypatch.setattr("jitaccess.cli.session.Session", lambda *_: paula)
    assert main.run(["review", "request/r"], io.StringIO(), paula.out, paula.err) == REFUSED
    assert "accessrequest r is no longer the one read (uid u-1)" in err(paula)
    assert [c[0] for c in api.calls if c[1] == PATH or c[0] == "patch"] == ["get", "patch", "get"]


def review_as_paula(api: StoringApi, monkeypatch: pytest.MonkeyPatch, *argv: str) -> tuple[int, Any]:
    paula = session(api)
    monkeypatch.setattr("jitaccess.cli.session.Session", lambda *_: paula)
    return main.run(["review", *argv], io.StringIO(), paula.out, paula.err), paula


def test_review_with_uid_reviews_that_request(api: StoringApi, monkeypatch: pytest.MonkeyPatch) -> None:
    """`--uid` (from the alert's Warning Event, or a message) pins the request meant."""
    api.objects[PATH] = glass("u-1")
    code, paula = review_as_paula(api, monkeypatch, "r", "--uid", "u-1")
    assert code == 0, err(paula)
    [patch] = [c[1][1] for c in api.calls if c[0] == "patch"]
    assert (patch["metadata"]["uid"], patch["metadata"]["resourceVersion"]) == ("u-1", "9")
    assert out(paula).startswith("reviewed break-glass accessrequest r (carol@example.com")


def test_review_with_uid_refuses_another_request_of_the_name(api: StoringApi, monkeypatch: pytest.MonkeyPatch) -> None:
    """The request meant was deleted, and mallory's took its name before the review: nothing is
    reviewed, whether the name was taken before the plugin read it or between its read and its patch."""
    api.objects[PATH] = glass("u-2", requester="mallory@example.com", version="12")
    code, paula = review_as_paula(api, monkeypatch, "r", "--uid", "u-1")
    assert code == REFUSED
    assert (
        "accessrequest r is not the one you meant (uid u-1): it was deleted, and mallory@example.com created "
        "another under the same name. Nothing was reviewed; look at it with `kubectl jit status r` first"
    ) in err(paula)
    assert not [c for c in api.calls if c[0] == "patch"]

    api.objects[PATH] = glass("u-1")
    api.between = [glass("u-2", requester="mallory@example.com", version="12")]
    code, paula = review_as_paula(api, monkeypatch, "r", "--uid", "u-1")
    assert code == REFUSED and "accessrequest r is not the one you meant (uid u-1)" in err(paula)
    assert names.ANNOTATION_REVIEWED not in api.objects[PATH]["metadata"]["annotations"]


def test_review_with_uid_of_no_break_glass_request_says_so(api: StoringApi, monkeypatch: pytest.MonkeyPatch) -> None:
    """Gone, or not break-glass: refused, naming what `--uid` is for; never an Entitlement's
    access review of that name instead."""
    code, paula = review_as_paula(api, monkeypatch, "r", "--uid", "u-1")
    assert code == REFUSED
    assert "there is no accessrequest r (uid u-1) any more: nothing was reviewed" in err(paula)
    assert "--uid names a break-glass AccessRequest" in err(paula)
    assert [c[0] for c in api.calls] == ["get"]

    api.objects[PATH] = {**glass("u-1"), "spec": {**glass("u-1")["spec"], "breakGlass": False}}
    code, paula = review_as_paula(api, monkeypatch, "r", "--uid", "u-1")
    assert code == REFUSED
    assert "accessrequest r is not a break-glass request: only those are reviewed" in err(paula)
    assert not [c for c in api.calls if c[0] == "patch"]


def test_a_name_both_an_entitlement_and_a_break_glass_request_is_refused_bare(
    api: StoringApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    """mallory names her break-glass request after the Entitlement: paula's routine access review of
    the Entitlement (`review prod-eng-payments`) recorded a review of mallory's request instead."""
    monkeypatch.delenv(parser.ARCHIVE_ENV, raising=False)
    taken = o.path(names.REQUESTS, "prod-eng-payments")
    api.objects[taken] = {**glass("u-m", requester="mallory@example.com"), "metadata": {
        **glass("u-m")["metadata"], "name": "prod-eng-payments"}}  # fmt: skip
    code, paula = review_as_paula(api, monkeypatch, "prod-eng-payments")
    assert code == REFUSED
    assert (
        "prod-eng-payments is both an Entitlement and a break-glass AccessRequest (mallory@example.com, "
        "prod-eng-payments): say which, `kubectl jit review entitlement/prod-eng-payments`"
    ) in err(paula)
    assert not [c for c in api.calls if c[0] == "patch"]

    code, paula = review_as_paula(api, monkeypatch, "entitlement/prod-eng-payments")
    assert code == 0, err(paula)
    assert "Used in the last 30 days" in out(paula) and not [c for c in api.calls if c[0] == "patch"]

    code, paula = review_as_paula(api, monkeypatch, "request/prod-eng-payments")
    assert code == 0, err(paula)
    assert [c[1][0] for c in api.calls if c[0] == "patch"] == [taken]
    assert out(paula).startswith("reviewed break-glass accessrequest prod-eng-payments (mallory@example.com")

    code, paula = review_as_paula(api, monkeypatch, "grant/prod-eng-payments")
    assert code == REFUSED and "the kind before / is entitlement or request" in err(paula)


def test_a_bare_name_never_records_a_review(api: StoringApi, monkeypatch: pytest.MonkeyPatch) -> None:
    """No Entitlement of the name (renamed in Git, a typo): a bare name that is a break-glass request
    still only reads; the review, which is final, is recorded by `request/NAME` or `--uid`."""
    api.objects[PATH] = glass("u-1")
    code, paula = review_as_paula(api, monkeypatch, "r")
    assert code == REFUSED
    assert (
        "r is a break-glass AccessRequest (carol@example.com, prod-eng-payments), not an Entitlement: to record your "
        "review of it, run `kubectl jit review request/r` (or `kubectl jit review r --uid u-1`). Nothing was reviewed"
    ) in err(paula)
    assert not [c for c in api.calls if c[0] == "patch"]
    code, paula = review_as_paula(api, monkeypatch, "r", "--uid", "u-1")
    assert code == 0 and out(paula).startswith("reviewed break-glass accessrequest r"), err(paula)


# --- approve / deny ------------------------------------------------------------------------------


def pending(uid: str, requester: str = "alice@example.com", version: str = "9") -> dict[str, Any]:
    base = req(cond("Ready", "False", "Pending"))
    return {
        **base,
        "metadata": {**base["metadata"], "name": "r", "uid": uid, "resourceVersion": version},
        "spec": {**base["spec"], "requester": requester},
    }


def paula(api: StoringApi) -> Session:
    made = session(api)
    made.__dict__["me"] = Identity("paula@example.com", frozenset())
    return made


def patches(api: StoringApi) -> list[dict[str, Any]]:
    return [c[1][1]["metadata"] for c in api.calls if c[0] == "patch"]


FLAGS = pytest.mark.parametrize(
    ("approve", "flag"), [(True, names.ANNOTATION_APPROVED), (False, names.ANNOTATION_DENIED)], ids=["approve", "deny"]
)


@FLAGS
def test_a_decision_carries_the_uid_and_resource_version_read(api: StoringApi, approve: bool, flag: str) -> None:
    api.objects[PATH] = pending("u-1")
    assert decisions.decide(paula(api), "r", approve=approve, reason="INC-1 fine") == 0
    assert patches(api) == [
        {
            "uid": "u-1",
            "resourceVersion": "9",
            "annotations": {flag: "true", names.ANNOTATION_DECISION_REASON: "INC-1 fine"},
        }
    ]


@FLAGS
def test_a_request_withdrawn_and_created_again_meanwhile_is_not_decided(
    api: StoringApi, approve: bool, flag: str
) -> None:
    """alice's request was withdrawn between the plugin's read and its patch, and mallory created hers
    under the name: the conflict's second read found mallory's, and decided it."""
    api.objects[PATH] = pending("u-1")
    api.between = [pending("u-2", requester="mallory@example.com", version="12")]
    s = paula(api)
    with pytest.raises(Refused, match=r"accessrequest r is no longer the one read \(uid u-1\): it was withdrawn, and "
                       r"mallory@example\.com created another under the same name\. Nothing was decided; look at it "
                       r"with `kubectl jit status r` first"):  # fmt: skip
        decisions.decide(s, "r", approve=approve, reason=None)
    assert flag not in api.objects[PATH]["metadata"]["annotations"]
    assert len(patches(api)) == 1 and out(s) == ""


def test_a_change_to_the_same_request_is_read_and_decided(api: StoringApi) -> None:
    """The operator's status write between the read and the patch: the same request, read again,
    checked again, decided at its new resourceVersion."""
    api.objects[PATH] = pending("u-1")
    api.between = [pending("u-1", version="10")]
    assert decisions.decide(paula(api), "r", approve=True, reason=None) == 0
    assert [(p["uid"], p["resourceVersion"]) for p in patches(api)] == [("u-1", "9"), ("u-1", "10")]
    assert api.objects[PATH]["metadata"]["annotations"][names.ANNOTATION_APPROVED] == "true"


def test_approve_with_uid_is_refused_by_the_api_server_on_another_object(api: StoringApi) -> None:
    """Another request under the name at the patch, at the resourceVersion read (only the uid tells
    them apart): the API server refuses it (422 on metadata.uid), and the plugin, reading again,
    says it is not the one meant; the uid had been checked on the plugin's read only."""
    api.objects[PATH] = pending("u-1")
    api.between = [pending("u-2", requester="mallory@example.com")]
    with pytest.raises(Refused, match=r"accessrequest r is not the one you meant \(uid u-1\): it was withdrawn"):
        decisions.decide(paula(api), "r", approve=True, reason=None, uid="u-1")
    assert names.ANNOTATION_APPROVED not in api.objects[PATH]["metadata"]["annotations"]
    assert [p["uid"] for p in patches(api)] == ["u-1"]


def test_an_extensions_decision_carries_its_uid_and_resource_version(api: StoringApi) -> None:
    ext = extension("x", "g-bob", "bob@example.com")
    ext["metadata"]["uid"] = "x-1"
    api.objects[o.path(names.EXTENSIONS, "x")] = ext
    assert decisions.decide(paula(api), "extension/x", approve=True, reason=None, uid="x-1") == 0
    assert patches(api) == [{"uid": "x-1", "resourceVersion": "9", "annotations": {names.ANNOTATION_APPROVED: "true"}}]


def test_an_extension_changed_meanwhile_is_read_again_and_another_under_its_name_refused(api: StoringApi) -> None:
    """The operator's status write between the plugin's read and its patch (409): read again, the
    same extension, and approved. Withdrawn and asked again by mallory under the name meanwhile:
    refused, nothing approved (it was the API server's "object has been modified" before)."""

    def ext(uid: str, version: str, requester: str = "bob@example.com") -> dict[str, Any]:
        made = extension("x", "g-bob", requester)
        made["metadata"].update(uid=uid, resourceVersion=version)
        return made

    path = o.path(names.EXTENSIONS, "x")
    api.between_at = path
    api.objects[path], api.between = ext("x-1", "9"), [ext("x-1", "10")]
    assert decisions.decide(paula(api), "extension/x", approve=True, reason=None) == 0
    assert [(p["uid"], p["resourceVersion"]) for p in patches(api)] == [("x-1", "9"), ("x-1", "10")]

    api.calls.clear()
    api.objects[path], api.between = ext("x-1", "9"), [ext("x-2", "12", requester="mallory@example.com")]
    with pytest.raises(Refused, match=r"accessextension x is no longer the one read \(uid x-1\): it was withdrawn"):
        decisions.decide(paula(api), "extension/x", approve=True, reason=None)
    assert names.ANNOTATION_APPROVED not in api.objects[path]["metadata"]["annotations"]


def test_a_bare_name_that_is_only_an_extension_is_decided_only_with_its_uid(api: StoringApi) -> None:
    """lena was told `kubectl jit approve x` of alice's request; alice withdrew it and asked for more
    time on her grant under its name: the bare name no longer decides (it moved the grant's end)."""
    made = extension("x", "g-alice", "alice@example.com")
    made["metadata"].update(uid="x-1")
    api.objects[o.path(names.EXTENSIONS, "x")] = made
    for verb in (True, False):
        with pytest.raises(Refused) as refused:
            decisions.decide(paula(api), "x", approve=verb, reason="INC-1 no")
        assert refused.value.message == (
            "x is not an AccessRequest but an AccessExtension (alice@example.com, +30m on accessgrant g-alice): "
            "deciding on it moves that grant's end, so say so: `kubectl jit approve extension/x --uid x-1` (or deny). "
            "Nothing was decided"
        )
    assert patches(api) == []
    with pytest.raises(Refused, match=r"x \(uid x-other\) is gone: nothing was decided. The name is now an "):
        decisions.decide(paula(api), "x", approve=True, reason=None, uid="x-other")
    assert decisions.decide(paula(api), "x", approve=True, reason=None, uid="x-1") == 0
    assert [p["uid"] for p in patches(api)] == ["x-1"]


@pytest.mark.parametrize("approve", [True, False], ids=["approve", "deny"])
def test_a_uid_decides_its_own_object_when_the_name_is_both_kinds(api: StoringApi, approve: bool) -> None:
    """lena holds `kubectl jit approve r --uid u-1` of alice's request; alice withdrew it, and the
    name is now both an AccessExtension and mallory's AccessRequest. The uid is neither: refused as
    gone, never a prompt to say `request/r` (which would decide mallory's request, dropping the pin).
    A uid that is one of them decides that one."""
    squatter = pending("u-2", requester="mallory@example.com")
    made = extension("r", "g-alice", "alice@example.com")
    made["metadata"].update(uid="x-1", resourceVersion="4")
    api.objects[o.path(names.REQUESTS, "r")], api.objects[o.path(names.EXTENSIONS, "r")] = squatter, made
    with pytest.raises(Refused) as refused:
        decisions.decide(paula(api), "r", approve=approve, reason="INC-1 why", uid="u-1")
    assert refused.value.message.startswith(
        "r (uid u-1) is gone: nothing was decided. The name is now an AccessRequest (mallory@example.com, "
        "prod-eng-payments) and an AccessExtension (alice@example.com, of accessgrant g-alice); look at it first"
    )
    assert "request/" not in refused.value.message and patches(api) == []
    # Without a uid, both are named with theirs.
    with pytest.raises(Refused) as refused:
        decisions.decide(paula(api), "r", approve=approve, reason="INC-1 why")
    assert (
        "say which, `kubectl jit approve request/r --uid u-2` or `kubectl jit approve extension/r --uid x-1`"
        in refused.value.message
    )
    assert patches(api) == []
    assert decisions.decide(paula(api), "r", approve=approve, reason="INC-1 why", uid="x-1") == 0
    decided = [(c[1][0], c[1][1]["metadata"]["uid"]) for c in api.calls if c[0] == "patch"]
    assert decided == [(o.path(names.EXTENSIONS, "r"), "x-1")]


# --- revoke --uid ---------------------------------------------------------------------------------

GRANT_PATH = o.path(names.GRANTS, "g")


def live(uid: str, user: str = "alice@example.com") -> dict[str, Any]:
    made = grant("g", "prod-eng-payments", entitlement="prod-eng-payments")
    made["metadata"].update(uid=uid, resourceVersion="9", annotations={})
    made["spec"]["user"] = user
    return made


def revoked(obj: dict[str, Any]) -> bool:
    return names.ANNOTATION_REVOKED in obj["metadata"]["annotations"]


def refused_revoke(api: StoringApi, uid: str) -> str:
    """The refusal of `kubectl jit revoke g --uid UID`, as paula."""
    with pytest.raises(Refused) as refused:
        decisions.revoke(paula(api), "g", reason=None, wait=False, timeout=None, uid=uid)
    return refused.value.message


def test_revoke_with_uid_revokes_that_grant_its_patch_carrying_the_uid(
    api: StoringApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    """alice's "access is active" message says `kubectl jit revoke g --uid g-1`: the patch carries the
    uid, so that the API server writes it on that grant only."""
    api.objects[GRANT_PATH] = live("g-1")
    s = paula(api)
    monkeypatch.setattr("jitaccess.cli.session.Session", lambda *_: s)
    argv = ["revoke", "g", "--uid", "g-1", "--reason", "INC-1 done", "--no-wait"]
    assert main.run(argv, io.StringIO(), s.out, s.err) == 0, err(s)
    assert patches(api) == [
        {"uid": "g-1", "annotations": {names.ANNOTATION_REVOKED: "true", names.ANNOTATION_REVOKE_REASON: "INC-1 done"}}
    ]
    assert out(s) == "revoking accessgrant g (alice@example.com in prod-eng-payments)\n"


def test_revoke_with_uid_of_a_grant_gone_names_what_holds_the_name_now(api: StoringApi) -> None:
    """paula's grant g (uid g-1) ended and was deleted, and mallory was granted under its name since:
    paula, running the command her message gave her, revokes nothing, and is told what is there. No
    command that would end mallory's access is offered: paula meant her own, and as an approver she
    may end anyone's. Her own grant under the name is offered, pinned."""
    api.objects[GRANT_PATH] = live("g-2", user="mallory@example.com")
    assert refused_revoke(api, "g-1") == (
        "g (uid g-1) is gone: nothing was revoked. The name is now an AccessGrant (mallory@example.com in "
        "Identity Center group prod-eng-payments, Active); look at it first (`kubectl jit status g`): it is not yours"
    )
    assert patches(api) == [] and not revoked(api.objects[GRANT_PATH])
    api.objects[GRANT_PATH] = live("g-3", user="paula@example.com")
    assert refused_revoke(api, "g-1").endswith(
        "look at it first (`kubectl jit status g`); to revoke it, `kubectl jit revoke g --uid g-3`"
    )
    # Nothing under the name at all: not found, nothing revoked.
    del api.objects[GRANT_PATH]
    with pytest.raises(NotFound, match=r"g \(uid g-1\) is gone: nothing was revoked, and no AccessGrant or "):
        decisions.revoke(paula(api), "g", reason=None, wait=False, timeout=None, uid="g-1")


def test_a_grant_created_again_between_the_read_and_the_write_is_not_revoked(api: StoringApi) -> None:
    """The uid is checked on the plugin's read, and again by the API server on the write: another
    grant under the name by then (only the uid tells them apart) is refused and named."""
    api.objects[GRANT_PATH] = live("g-1")
    api.between_at, api.between = GRANT_PATH, [live("g-2", user="mallory@example.com")]
    with pytest.raises(Refused, match=r"g \(uid g-1\) is gone: nothing was revoked. The name is now an AccessGrant "
                       r"\(mallory@example\.com in .*: it is not yours$"):  # fmt: skip
        decisions.revoke(paula(api), "g", reason=None, wait=False, timeout=None, uid="g-1")
    assert [p["uid"] for p in patches(api)] == ["g-1"]
    assert not revoked(api.objects[GRANT_PATH])


def scheduled(uid: str, requester: str = "bob@example.com") -> dict[str, Any]:
    made = pending(uid, requester)
    made["metadata"]["name"] = "g"
    made["status"]["conditions"] = [cond("Ready", "False", "Scheduled"), cond("Approved", "True", "Approved")]
    return made


def test_revoke_with_uid_revokes_a_scheduled_request_of_that_uid_only(api: StoringApi) -> None:
    """Before its grant exists, the uid is the Scheduled request's: it is revoked as read; another
    request under the name is named (with its own uid to revoke it only when it is the user's own)."""
    request_path = o.path(names.REQUESTS, "g")
    api.objects[request_path] = scheduled("r-1")
    assert decisions.revoke(paula(api), "g", reason="INC-1 no", wait=False, timeout=None, uid="r-1") == 0
    assert [(p["uid"], p["resourceVersion"]) for p in patches(api)] == [("r-1", "9")]

    api.calls.clear()
    api.objects[request_path] = scheduled("r-2", requester="mallory@example.com")
    assert refused_revoke(api, "r-1").endswith(
        "The name is now an AccessRequest (mallory@example.com, prod-eng-payments, Scheduled); look at it first "
        "(`kubectl jit status g`): it is not yours"
    )
    api.objects[request_path] = scheduled("r-3", requester="paula@example.com")
    assert refused_revoke(api, "r-1").endswith(
        "look at it first (`kubectl jit status g`); to revoke it before it starts, `kubectl jit revoke g --uid r-3`"
    )
    assert patches(api) == []


def test_revoke_with_the_uid_of_a_granted_request_points_to_its_grant(api: StoringApi) -> None:
    """The uid names the request, whose access is its grant: nothing is revoked on a guess, and the
    grant's own pinned command is given."""
    request_ = scheduled("r-1")
    request_["status"]["conditions"] = [cond("Ready", "True", "Granted")]
    api.objects[o.path(names.REQUESTS, "g")], api.objects[GRANT_PATH] = request_, live("g-1")
    assert refused_revoke(api, "r-1") == (
        "accessrequest g (uid r-1) is Granted: revoke ends an AccessGrant, or a request approved for a later start "
        "(Scheduled) before it starts; its access is accessgrant g, `kubectl jit revoke g --uid g-1`. "
        "Nothing was revoked"
    )
    assert patches(api) == []


def test_revoke_with_the_uid_of_a_granted_request_revokes_the_grant_made_for_it(api: StoringApi) -> None:
    """A webhook refusal about a request whose access runs ("end the access first") gives
    `kubectl jit revoke REQUEST --uid UID`, the request's uid (it cannot know its grant's): the grant
    the operator made for that request, labelled with the uid, is revoked, pinned, also under another
    name (`status.grant`). One labelled for another request is not taken for it."""
    request_ = scheduled("r-1")
    request_["status"] |= {"conditions": [cond("Ready", "True", "Granted")], "grant": "g-2"}
    made = live("g-7")
    made["metadata"] |= {"name": "g-2", "labels": {names.LABEL_REQUEST: "r-1"}}
    other = live("g-1")
    other["metadata"]["labels"] = {names.LABEL_REQUEST: "r-0"}  # an earlier request's, under the request's name
    api.objects[o.path(names.REQUESTS, "g")], api.objects[GRANT_PATH] = request_, other
    api.objects[o.path(names.GRANTS, "g-2")] = made
    assert decisions.revoke(paula(api), "g", reason="INC-1 done", wait=False, timeout=None, uid="r-1") == 0
    assert [p["uid"] for p in patches(api)] == ["g-7"]
    assert revoked(api.objects[o.path(names.GRANTS, "g-2")]) and not revoked(api.objects[GRANT_PATH])

    api.calls.clear()
    made["metadata"]["labels"] = {names.LABEL_REQUEST: "r-0"}
    api.objects[o.path(names.GRANTS, "g-2")] = made | {"metadata": {**made["metadata"], "annotations": {}}}
    assert refused_revoke(api, "r-1").endswith("Nothing was revoked")
    assert patches(api) == []


def test_revoke_uid_does_not_go_with_all(capsys: pytest.CaptureFixture[str]) -> None:
    assert main.main(["revoke", "--all", "--uid", "g-1", "--reason", "INC-1"]) == USAGE
    assert "--uid pins one GRANT: it does not go with --all" in capsys.readouterr().err


def test_revoke_with_the_uid_of_ones_own_pending_request_points_to_withdraw(api: StoringApi) -> None:
    """A requester may not decide on their own request (the webhook refuses): revoking one's own
    pending request by its uid points to `withdraw`; anyone else's, to a pinned `deny`."""
    request_ = pending("r-1", requester="paula@example.com")
    request_["metadata"]["name"] = "g"
    api.objects[o.path(names.REQUESTS, "g")] = request_
    assert refused_revoke(api, "r-1").endswith(
        "your own request waiting for a decision is withdrawn, `kubectl jit withdraw g`. Nothing was revoked"
    )
    request_["spec"]["requester"] = "alice@example.com"
    assert refused_revoke(api, "r-1").endswith(
        'one waiting for a decision is denied, `kubectl jit deny g --uid r-1 --reason "..."`. Nothing was revoked'
    )
    assert patches(api) == []


def test_one_approval_of_several_on_an_extension_says_how_many_more(api: StoringApi) -> None:
    """approvalsRequired 2: the webhook lists paula's approval and takes the flag out again, for the
    next approver. The plugin said "approved accessextension x", and paula left it at that."""
    ext = extension("x", "g-bob", "bob@example.com")
    ext["metadata"]["uid"] = "x-1"
    ext["status"].update(approvalSummary="0/2", ownerTeam="payments")
    path = o.path(names.EXTENSIONS, "x")
    api.objects[path] = ext
    api.objects[o.path(names.TEAMS, "payments")] = {
        "metadata": {"name": "payments"},
        "spec": {"approvers": ["paula@example.com", "lena@example.com"]},
    }
    real_patch = api.merge_patch

    def merge_patch(at: str, patch: dict[str, Any]) -> dict[str, Any]:
        stored = real_patch(at, patch)
        notes = stored["metadata"]["annotations"]
        notes.pop(names.ANNOTATION_APPROVED)  # as the mutating webhook does until the last approval
        notes[names.ANNOTATION_APPROVALS] = '[{"by":"paula@example.com","groups":[]}]'
        return stored

    api.merge_patch = merge_patch  # type: ignore[method-assign]
    s = paula(api)
    assert decisions.decide(s, "extension/x", approve=True, reason=None) == 0
    assert out(s) == (
        "recorded your approval of accessextension x: approved so far by paula@example.com; 1 more needed, by "
        "another approver of team payments (lena@example.com)\n"
    )

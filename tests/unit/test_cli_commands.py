"""The plugin's commands against a fake API: what is sent, what is said, which exit code."""

from __future__ import annotations

import argparse
import io
import json
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from jitaccess.api import names, wire
from jitaccess.cli import decisions, errors, main, parser, request, views
from jitaccess.cli import objects as o
from jitaccess.cli.errors import EXIT_CODES, PENDING, USAGE, Refused, StillPending, UsageError
from jitaccess.cli.kube import ApiError
from jitaccess.cli.objects import Identity
from jitaccess.cli.session import ClusterFlags, Session

ALICE = Identity("alice@example.com", frozenset({"team-payments", "system:authenticated"}))
ENTITLEMENT = {
    "metadata": {"name": "prod-eng-payments"},
    "spec": {
        "owner": "payments",
        "identityCenter": {"groupName": "prod-eng-payments"},
        "defaultDuration": "1h",
        "maxDuration": "4h",
        "reasonPattern": "^[A-Z]+-[0-9]+",
    },
}
TEAM = {
    "metadata": {"name": "payments"},
    "spec": {
        "members": ["alice@example.com"],
        "approvers": ["paula@example.com"],
        "backupApprovers": ["carol@example.com"],
    },
}


def cond(type_: str, status: str, reason: str, message: str = "") -> dict[str, str]:
    return {"type": type_, "status": status, "reason": reason, "message": message}


def req(*conditions: dict[str, str], name: str = "alice-prod-eng-payments-abcde", **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "resourceVersion": "9", "annotations": {}},
        "spec": {"entitlement": "prod-eng-payments", "requester": "alice@example.com", "reason": "INC-1 x"},
        "status": {**status, "conditions": list(conditions)},
    }


class FakeApi:
    """The API server the plugin talks to, as one answers: a listing `fieldSelector` selects by its
    fields, or, with `selects_fields` False (before Kubernetes 1.31), is refused as a real server
    refuses it."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {
            o.path(names.ENTITLEMENTS, "prod-eng-payments"): ENTITLEMENT,
            o.path(names.TEAMS, "payments"): TEAM,
        }
        #: Each watch's events, in turn; an exception in their place is the watch failing with it.
        self.watches: list[list[dict[str, Any]] | Exception] = []
        self.calls: list[tuple[str, Any]] = []
        self.refuse_create: ApiError | None = None
        self.patch_errors: list[ApiError] = []
        self.selects_fields = True

    def get(self, path: str, **query: Any) -> dict[str, Any]:
        self.calls.append(("get", path))
        if path in self.objects:
            return self.objects[path]
        if path.count("/") == 4:
            selector = str(query.get("fieldSelector") or "")
            if selector and not self.selects_fields:
                field = selector.partition("=")[0]
                raise ApiError(400, "BadRequest", f"{names.FIELD_LABEL_UNSUPPORTED}: {field}")
            fields = dict(term.split("=", 1) for term in selector.split(",")) if selector else {}
            items = [
                obj for key, obj in self.objects.items() if key.startswith(path + "/") and wire.selected_by(obj, fields)
            ]
            return {"items": items, "metadata": {"resourceVersion": "1"}}
        raise ApiError(404, "NotFound", f"{path} not found", {"name": path.rsplit("/", 1)[1]})

    def create(self, path: str, body: dict[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
        self.calls.append(("dry-run" if dry_run else "create", body))
        if self.refuse_create is not None:
            raise self.refuse_create
        return {**body, "metadata": {"name": body["metadata"]["generateName"] + "abcde", "resourceVersion": "5"}}

    def merge_patch(self, path: str, patch: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(("patch", (path, patch)))
        if self.patch_errors:
            raise self.patch_errors.pop(0)
        return {**self.objects.get(path, {}), "metadata": {"name": path.rsplit("/", 1)[1], "resourceVersion": "11"}}

    def delete(self, path: str, preconditions: dict[str, str]) -> dict[str, Any]:
        self.calls.append(("delete", (path, preconditions)))
        if self.patch_errors:
            raise self.patch_errors.pop(0)
        return dict(self.objects.pop(path, {}))

    def watch(
        self, path: str, *, resource_version: str, timeout_seconds: int, **query: Any
    ) -> Iterator[dict[str, Any]]:
        self.calls.append(("watch", (resource_version, timeout_seconds, query)))
        events = self.watches.pop(0) if self.watches else []
        if isinstance(events, Exception):
            raise events
        yield from events

    def close(self) -> None:
        pass


@pytest.fixture
def api() -> FakeApi:
    return FakeApi()


def session(api: FakeApi, *, stdin: str = "", tty: bool = False) -> Session:
    class Input(io.StringIO):
        def isatty(self) -> bool:
            return tty

    made = Session(ClusterFlags(), Input(stdin), io.StringIO(), io.StringIO())
    made.__dict__["api"] = api
    made.__dict__["me"] = ALICE
    return made


def out(s: Session) -> str:
    return s.out.getvalue()  # type: ignore[attr-defined, no-any-return]


def err(s: Session) -> str:
    return s.err.getvalue()  # type: ignore[attr-defined, no-any-return]


def options(**changes: Any) -> request.RequestOptions:
    base: dict[str, Any] = {
        "entitlement": "prod-eng-payments",
        "duration": "1m",
        "reason": "INC-1 x",
        "wait": True,
        "timeout": None,
    }
    return request.RequestOptions(**{**base, **changes})


GRANTED = req(
    cond("Approved", "True", "AutoApproved"), cond("Ready", "True", "Granted"), expirationTime="2030-01-01T10:00:00Z"
)


def test_request_dry_runs_creates_and_watches_until_granted(api: FakeApi) -> None:
    provisioning = req(cond("Approved", "True", "AutoApproved"), cond("Ready", "False", "Pending", "provisioning"))
    api.watches = [[{"type": "MODIFIED", "object": provisioning}, {"type": "MODIFIED", "object": GRANTED}]]
    s = session(api)
    assert request.run(s, options()) == 0
    verbs = [verb for verb, _ in api.calls]
    assert verbs == ["get", "get", "dry-run", "create", "watch"]
    assert api.calls[1][1] == o.path(names.GRANTS)  # what I hold already
    created = api.calls[3][1]
    assert created["metadata"] == {"generateName": "alice-prod-eng-payments-"}
    assert created["spec"] == {
        "entitlement": "prod-eng-payments",
        "reason": "INC-1 x",
        "requester": "alice@example.com",
        "duration": "1m",
    }
    assert api.calls[4][1][0] == "5" and api.calls[4][1][2] == {
        "fieldSelector": "metadata.name=alice-prod-eng-payments-abcde"
    }
    lines = out(s).splitlines()
    assert (
        lines[0]
        == "requested prod-eng-payments for 1m as alice@example.com: accessrequest alice-prod-eng-payments-abcde"
    )
    assert lines[1].startswith("obtained prod-eng-payments until ")
    assert lines[2] == request.NEXT_STEP
    assert err(s) == ""


def test_a_refused_dry_run_creates_nothing(api: FakeApi) -> None:
    api.refuse_create = ApiError(403, "Forbidden", "eve is not in the Identity Center group(s) prod-eligible")
    with pytest.raises(Refused, match="nothing was created: eve is not in"):
        request.run(session(api), options())
    assert [verb for verb, _ in api.calls] == ["get", "get", "dry-run"]


def held_grant(name: str, user: str, reason: str, expires: str = "2030-01-01T10:00:00Z") -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {"user": user, "entitlement": "prod-eng-payments", "request": name},
        "status": {
            "conditions": [cond("Ready", "True" if reason == "Active" else "False", reason)],
            "expirationTime": expires,
        },
    }


def test_a_held_entitlement_is_said_with_how_to_lengthen_it_and_a_script_goes_on(api: FakeApi) -> None:
    api.objects[o.path(names.GRANTS, "alice-old")] = held_grant("alice-old", "alice@example.com", "Active")
    api.objects[o.path(names.GRANTS, "alice-ended")] = held_grant("alice-ended", "alice@example.com", "Expired")
    api.watches = [[{"type": "MODIFIED", "object": GRANTED}]]
    s = session(api)
    assert request.run(s, options()) == 0
    assert "You hold prod-eng-payments already until " in err(s)
    assert "(accessgrant alice-old); to lengthen it: `kubectl jit extend alice-old --by 1h" in err(s)
    assert "alice-ended" not in err(s)
    assert "create" in [verb for verb, _ in api.calls]


def test_on_a_terminal_a_held_entitlement_is_asked_again_and_no_creates_nothing(api: FakeApi) -> None:
    api.objects[o.path(names.GRANTS, "alice-old")] = held_grant("alice-old", "alice@example.com", "Active")
    s = session(api, stdin="\n", tty=True)  # the default is no
    assert request.run(s, options()) == 0
    assert "Request another grant anyway? [y/N]" in err(s)
    assert out(s) == "nothing requested: you hold prod-eng-payments already\n"
    assert [verb for verb, _ in api.calls] == ["get", "get"]


@pytest.mark.parametrize("selects_fields", [True, False], ids=["selecting", "not-selecting"])
def test_someone_elses_grant_or_an_ended_one_is_not_mine(api: FakeApi, selects_fields: bool) -> None:
    # The server may not select by field (before Kubernetes 1.31): `list_all` filters what it lists.
    api.selects_fields = selects_fields
    api.objects[o.path(names.GRANTS, "bob-x")] = held_grant("bob-x", "bob@example.com", "Active")
    api.objects[o.path(names.GRANTS, "alice-gone")] = held_grant("alice-gone", "alice@example.com", "Revoked")
    api.watches = [[{"type": "MODIFIED", "object": GRANTED}]]
    s = session(api, stdin="", tty=False)
    assert request.run(s, options()) == 0
    assert "hold" not in err(s)


@pytest.mark.parametrize("selects_fields", [True, False], ids=["selecting", "not-selecting"])
def test_a_listing_by_field_answers_the_objects_selected_either_way(api: FakeApi, selects_fields: bool) -> None:
    """A server that cannot select by field (before Kubernetes 1.31) refuses the selector: every
    object is listed instead, and `list_all` keeps those selected, as the server would have."""
    api.selects_fields = selects_fields
    for grant in (
        held_grant("alice-old", "alice@example.com", "Active"),
        held_grant("bob-x", "bob@example.com", "Active"),
        {**held_grant("alice-ledger", "alice@example.com", "Active"), "spec": {"user": "alice@example.com"}},
    ):
        api.objects[o.path(names.GRANTS, grant["metadata"]["name"])] = grant
    fields = {"spec.user": "alice@example.com", "spec.entitlement": "prod-eng-payments"}
    items, version = o.list_all(api, names.GRANTS, fields=fields)
    assert [wire.name_of(g) for g in items] == ["alice-old"] and version == "1"
    everything, _ = o.list_all(api, names.GRANTS)
    assert len(everything) == 3
    listings = [path for verb, path in api.calls if verb == "get"]
    assert len(listings) == (2 if selects_fields else 3), "refused by field: every grant listed instead"


def test_who_has_reads_only_the_grants_own_request(api: FakeApi) -> None:
    """A holder's reason is the grant's own, and its approver is read from its request only when the
    request is the one the grant was made for (its uid is the grant's label): a request created
    under the name of a withdrawn one must not lend the holder its reason or its approval."""

    def holder(name: str, made_for: str, reason: str | None) -> dict[str, Any]:
        grant = held_grant(name, "alice@example.com", "Active")
        grant["metadata"]["labels"] = {names.LABEL_REQUEST: made_for}
        if reason is not None:
            grant["spec"]["reason"] = reason
        return grant

    def request(name: str, uid: str, reason: str, approver: str) -> dict[str, Any]:
        made = req(cond("Approved", "True", "Approved"), name=name, approvedBy=approver)
        made["metadata"]["uid"] = uid
        made["spec"]["reason"] = reason
        return made

    for grant, made in (
        (holder("alice-a", "uid-a", "INC-1 the grant's own"), request("alice-a", "uid-a", "INC-1 as asked", "paula")),
        (holder("alice-b", "uid-b", "INC-2 what was approved"), request("alice-b", "uid-b2", "INC-9 lent", "carol")),
        (holder("alice-c", "uid-c", None), request("alice-c", "uid-c", "INC-3 from its request", "paula")),
        (holder("alice-d", "uid-d", None), request("alice-d", "uid-d2", "INC-9 lent", "carol")),
    ):
        api.objects[o.path(names.GRANTS, wire.name_of(grant))] = grant
        api.objects[o.path(names.REQUESTS, wire.name_of(made))] = made
    s = session(api)
    assert views.who_has(s, "prod-eng-payments", output="json") == 0
    held = {h["grant"]: (h["reason"], h["approvedBy"]) for h in json.loads(out(s))["items"]}
    assert held == {
        "alice-a": ("INC-1 the grant's own", "paula"),
        "alice-b": ("INC-2 what was approved", "-"),
        "alice-c": ("INC-3 from its request", "paula"),
        "alice-d": ("", "-"),
    }


@pytest.mark.parametrize("selects_fields", [True, False], ids=["selecting", "not-selecting"])
def test_list_mine_shows_only_my_requests_either_way(api: FakeApi, selects_fields: bool) -> None:
    api.selects_fields = selects_fields
    for name, requester in (("alice-1", "alice@example.com"), ("bob-1", "bob@example.com")):
        made = req(name=name)
        made["spec"]["requester"] = requester
        api.objects[o.path(names.REQUESTS, name)] = made
    s = session(api)
    assert views.list_requests(s, pending=False, mine=True, team=None, output="json") == 0
    assert [wire.name_of(r) for r in json.loads(out(s))["items"]] == ["alice-1"]


def test_pending_with_no_wait_names_the_approvers(api: FakeApi) -> None:
    api.watches = [[{"type": "MODIFIED", "object": req(cond("Ready", "False", "Pending", "waiting"))}]]
    s = session(api)
    with pytest.raises(StillPending, match="waits for an approval") as raised:
        request.run(s, options(wait=False))
    assert raised.value.code == PENDING
    assert "waiting for approval by team payments: paula@example.com (after escalation also carol@example.com)" in out(
        s
    )
    assert "kubectl jit approve alice-prod-eng-payments-abcde" in out(s)
    # --no-wait bounds the wait for the operator's first word.
    [watch] = [call for call in api.calls if call[0] == "watch"]
    assert watch[1][1] <= request.QUIET_HINT_SECONDS


def test_waiting_says_when_the_operator_is_silent(api: FakeApi) -> None:
    api.watches = [[], [{"type": "MODIFIED", "object": GRANTED}]]
    s = session(api)
    assert request.run(s, options()) == 0
    assert "no word from the jitaccess operator on alice-prod-eng-payments-abcde yet" in err(s)
    first, second = (call[1][1] for call in api.calls if call[0] == "watch")
    assert first <= request.QUIET_HINT_SECONDS < second


def test_watch_expired_lists_again(api: FakeApi) -> None:
    api.watches = [[{"type": "ERROR", "object": {"code": 410, "message": "too old"}}]]
    api.objects[o.path(names.REQUESTS, "alice-prod-eng-payments-abcde")] = GRANTED
    assert request.run(session(api), options()) == 0


@pytest.mark.parametrize(
    ("event", "words"),
    [
        (
            {"type": "MODIFIED", "object": req(cond("Ready", "False", "NotEligible", "not in pci"))},
            "alice-prod-eng-payments-abcde NotEligible: not in pci",
        ),
        (
            {
                "type": "MODIFIED",
                "object": req(cond("Denied", "True", "Denied"), cond("Ready", "False", "Denied", "no")),
            },
            "Denied: no",
        ),
        ({"type": "DELETED", "object": req()}, "was deleted while waiting"),
    ],
)
def test_refusals_while_waiting(api: FakeApi, event: dict[str, Any], words: str) -> None:
    api.watches = [[event]]
    with pytest.raises(Refused, match=words):
        request.run(session(api), options())


def test_timeout_while_pending(api: FakeApi) -> None:
    api.watches = [[{"type": "MODIFIED", "object": req(cond("Ready", "False", "Pending"))}]]
    with pytest.raises(StillPending, match="still pending after"):
        request.run(session(api), options(timeout=timedelta(seconds=0.2)))


def test_prompts_only_on_a_terminal(api: FakeApi) -> None:
    with pytest.raises(UsageError, match="--reason is required"):
        request.run(session(api), options(reason=None))
    with pytest.raises(UsageError, match=r"name the entitlement to request \(your team's: prod-eng-payments\)"):
        request.run(session(api), options(entitlement=None))
    api.watches = [[{"type": "MODIFIED", "object": GRANTED}]]
    s = session(api, stdin="\n\n\nwhy\nINC-9 why\n", tty=True)
    assert request.run(s, options(entitlement=None, duration=None, reason=None)) == 0
    assert "Request prod-eng-payments (team payments, yours: 1h by default, at most 4h, granted at once)? [Y/n]" in err(
        s
    )
    assert "does not match prod-eng-payments's reasonPattern '^[A-Z]+-[0-9]+': cite a ticket" in err(s)
    created = next(body for verb, body in api.calls if verb == "create")
    assert created["spec"]["duration"] == "1h" and created["spec"]["reason"] == "INC-9 why"


def test_the_pick_list_says_how_each_is_approved_and_who_is_not_eligible(api: FakeApi) -> None:
    def entitlement(name: str, owner: str, eligible: list[str] | None, count: int | None = None) -> None:
        made: dict[str, Any] = {
            "metadata": {"name": name},
            "spec": {"owner": owner, "identityCenter": {"groupName": name}, "approval": {"approvalsRequired": 2}},
        }
        if eligible is not None:
            made["spec"]["eligibility"] = {"identityCenterGroups": ["prod-eligible", "pci-trained"]}
            made["status"] = {
                "eligibleUsers": [{"userId": f"id-{u}", "username": u} for u in eligible],
                "eligibleUserCount": len(eligible) if count is None else count,
            }
        api.objects[o.path(names.ENTITLEMENTS, name)] = made

    entitlement("prod-pci", "pci", ["bob@example.com"])
    entitlement("prod-pci-cut", "pci", ["bob@example.com"], count=1001)  # cut short: not known
    entitlement("prod-pci-me", "pci", ["Alice@Example.com"])  # user names compare without case
    api.watches = [[{"type": "MODIFIED", "object": GRANTED}]]
    s = session(api, stdin="n\n1\n\nINC-9 why\n", tty=True)
    assert request.run(s, options(entitlement=None, duration=None, reason=None)) == 0
    listed = {line.split()[1]: line for line in err(s).splitlines() if line.startswith("   ")}
    assert listed["prod-eng-payments"].endswith("team payments, yours: 1h by default, at most 4h, granted at once")
    assert listed["prod-pci"].endswith(
        "needs 2 approvers of team pci, not among its eligible users at its last check (enabled, and in every one "
        "of: prod-eligible, pci-trained)"
    )
    assert listed["prod-pci-cut"].endswith("needs 2 approvers of team pci")
    assert listed["prod-pci-me"].endswith("needs 2 approvers of team pci")


def test_bad_input_is_a_usage_error(api: FakeApi) -> None:
    for changes, words in (
        ({"duration": "5h"}, "above prod-eng-payments's maximum of 4h"),
        ({"duration": "1d"}, "is not a duration"),
        ({"reason": "because"}, "reasonPattern"),
    ):
        with pytest.raises(UsageError, match=words):
            request.run(session(api), options(**changes))
    assert not [verb for verb, _ in api.calls if verb in ("dry-run", "create")]


@pytest.mark.parametrize(
    ("username", "name"),
    [
        ("alice@example.com", "alice-prod-"),
        ("Bob.Smith+x@example.com", "bob-smith-x-prod-"),
        ("system:serviceaccount:ns:sa", "system-serviceaccount-ns-sa-prod-"),
        ("@", "user-prod-"),
    ],
)
def test_generated_names(username: str, name: str) -> None:
    assert request.generate_name(Identity(username, frozenset()), "prod") == name
    long = request.generate_name(Identity("a" * 80, frozenset()), "prod")
    assert len(long) <= 58 and long.endswith("-")


# --- decisions -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("obj", "words"),
    [
        (req(cond("Approved", "True", "AutoApproved")), r"already approved \(auto \(owner team\)\)"),
        (req(cond("Denied", "True", "Denied"), deniedBy="paula"), "already denied by paula"),
        (
            {
                **req(),
                "metadata": {
                    "name": "n",
                    "annotations": {names.ANNOTATION_APPROVED: "true", names.ANNOTATION_APPROVED_BY: "lena"},
                },
            },
            "already carries an approval by lena",
        ),
        (req(cond("Ready", "False", "TimedOut", "nobody decided")), "is TimedOut: there is nothing left to decide"),
    ],
)
def test_no_second_decision(obj: dict[str, Any], words: str) -> None:
    with pytest.raises(Refused, match=words):
        decisions.check_undecided(obj)


def test_approve_checks_who_and_retries_on_conflict(api: FakeApi) -> None:
    pending = req(cond("Ready", "False", "Pending"))
    api.objects[o.path(names.REQUESTS, "r")] = {**pending, "metadata": {**pending["metadata"], "name": "r"}}
    with pytest.raises(Refused, match=r"alice@example\.com requested this access and cannot decide on it"):
        decisions.decide(session(api), "r", approve=True, reason=None)
    assert not [c for c in api.calls if c[0] == "patch"]

    paula = session(api)
    paula.__dict__["me"] = Identity("paula@example.com", frozenset())
    api.patch_errors = [ApiError(409, "Conflict", "the object has been modified")]
    assert decisions.decide(paula, "r", approve=True, reason="INC-1 fine") == 0
    patches = [c[1][1] for c in api.calls if c[0] == "patch"]
    assert len(patches) == 2
    assert patches[-1] == {
        "metadata": {
            "resourceVersion": "9",
            "annotations": {names.ANNOTATION_APPROVED: "true", names.ANNOTATION_DECISION_REASON: "INC-1 fine"},
        }
    }
    assert out(paula).startswith("approved accessrequest r (alice@example.com, prod-eng-payments")


# --- the command line ------------------------------------------------------------------------------


def test_help_documents_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main.main(["--help"])
    assert exited.value.code == 0
    text = capsys.readouterr().out
    assert "exit codes:" in text and "3  still pending" in text and "5  cannot reach the cluster" in text
    for command in main.COMMANDS:
        assert command in text
    for code, meaning in EXIT_CODES.items():
        assert f"{code}  {meaning}" in text


def test_every_error_exits_with_a_code_of_the_table() -> None:
    classes = [errors.CliError, *errors.CliError.__subclasses__()]
    assert {cls.code for cls in classes} | {errors.OK} == set(EXIT_CODES)


def test_every_command_help_ends_with_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    for command in set(main.COMMANDS) - {"completion"}:  # its help ends with how to load the script
        with pytest.raises(SystemExit):
            main.main([command, "--help"])
        assert capsys.readouterr().out.endswith(errors.EXIT_CODES_HELP), command


def test_cluster_flags_before_or_after_the_command() -> None:
    built = parser.build_parser()
    before = built.parse_args(["--context", "c", "--as", "u", "list"])
    after = built.parse_args(["list", "--context", "c", "--as", "u", "--as-group", "g", "--as-group", "h"])
    assert (before.context, before.impersonate) == ("c", "u")
    assert (after.context, after.impersonate, after.impersonate_groups) == ("c", "u", ["g", "h"])


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["request", "--timeout", "forever"], ["deny", "x"], ["list", "-o", "xml"], ["nope"]):
        with pytest.raises(SystemExit) as exited:
            main.main(argv)
        assert exited.value.code == USAGE, argv
    capsys.readouterr()


def test_errors_are_one_line_on_stderr(capsys: pytest.CaptureFixture[str], tmp_path: Any) -> None:
    assert main.main(["--kubeconfig", str(tmp_path / "none"), "list"]) == 5
    captured = capsys.readouterr()
    assert captured.out == ""
    assert (
        captured.err == f"error: kubeconfig {tmp_path / 'none'} does not exist: pass an existing file to --kubeconfig\n"
    )


def grant(name: str, group: str, reason: str = "Active", **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {"user": "alice@example.com", "groupName": group, **spec},
        "status": {"conditions": [cond("Ready", "True", reason)], "expirationTime": "2030-01-01T10:00:00Z"},
    }


CATALOG = {"metadata": {"name": "payments"}, "spec": {"production": {"groupName": "prod-eng-payments"}}}


@pytest.mark.parametrize(
    ("ended", "others", "catalogs", "said"),
    [
        # The same group still held through another grant: the membership stays, nothing is denied.
        (
            grant("g1", "prod-eng-payments", "Revoked"),
            [grant("g2", "prod-eng-payments")],
            [CATALOG],
            "note: alice@example.com still holds Identity Center group prod-eng-payments through accessgrant g2 "
            "(until 2030-01-01T10:00:00Z): ending g1 removed none of that access",
        ),
        (grant("g1", "prod-eng-payments", "Revoked"), [], [CATALOG], decisions.SESSIONS_REVOKED_NOTE),
        (grant("g1", "prod-eng-payments", "Revoked"), [], [], decisions.AWS_SESSIONS_NOTE),
        # Account-assignment of a catalog tier: the tier's permission set denies the sessions too.
        (
            grant("g1", "catalog:payments/production", "Revoked", accountAssignment={"accounts": ["444455556666"]}),
            [grant("g2", "prod-eng-payments")],
            [CATALOG],
            decisions.SESSIONS_REVOKED_NOTE,
        ),
    ],
)
def test_the_sessions_note_says_what_ending_a_grant_did(
    api: FakeApi, ended: dict[str, Any], others: list[dict[str, Any]], catalogs: list[dict[str, Any]], said: str
) -> None:
    for obj in [ended, *others]:
        api.objects[o.path(names.GRANTS, obj["metadata"]["name"])] = obj
    for catalog in catalogs:
        api.objects[o.path(names.CATALOGS, catalog["metadata"]["name"])] = catalog
    assert decisions._sessions_note(session(api), [ended]) == said
    assert o.holding(ended["spec"]).startswith(
        "permission set catalog:" if "accountAssignment" in ended["spec"] else "Identity Center group"
    )


def test_the_readme_names_every_command() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    line = next(line for line in readme.splitlines() if line.startswith("- `kubectl jit --help`"))
    assert {c for c in main.COMMANDS if f"`{c}`" not in line} == set()


def commands_misspelt(text: str) -> list[str]:
    """Each `kubectl jit COMMAND --flag ...` of `text` (up to the end of its code span, comment or
    table cell) whose command or flag the plugin does not have."""
    built = parser.build_parser()
    (commands,) = [a for a in built._actions if isinstance(a, argparse._SubParsersAction)]
    problems = []
    for found in re.finditer(r"kubectl[ -]jit +([a-z][a-z-]*)([^`|#\n]*)", text):
        command, rest = found.groups()
        if command not in commands.choices:
            problems.append(f"kubectl jit {command}: no such command")
            continue
        flags = {f for action in commands.choices[command]._actions for f in action.option_strings}
        problems += [
            f"kubectl jit {command}: no {flag}"
            for flag in re.findall(r"(?<![\w-])(--?[a-z][a-z-]*)", rest)
            if flag not in flags
        ]
    return problems


def test_the_docs_use_commands_and_flags_the_plugin_has() -> None:
    repo = Path(__file__).parents[2]
    for document in [repo / "README.md", *sorted((repo / "docs").glob("*.md"))]:
        assert commands_misspelt(document.read_text()) == [], document.name
    assert commands_misspelt("`kubectl jit request E --for 1h --wiat`, kubectl jit grant E") == [
        "kubectl jit request: no --wiat",
        "kubectl jit grant: no such command",
    ]


def test_approve_with_uid_decides_only_that_object(api: FakeApi) -> None:
    pending = req(cond("Ready", "False", "Pending"))
    api.objects[o.path(names.REQUESTS, "r")] = {
        **pending,
        "metadata": {**pending["metadata"], "name": "r", "uid": "u-2"},
    }
    paula = session(api)
    paula.__dict__["me"] = Identity("paula@example.com", frozenset())
    # The Slack message named the first request of that name; this one was created after it was withdrawn.
    with pytest.raises(Refused, match=r"accessrequest r is not the one you meant \(uid u-1\): it was withdrawn"):
        decisions.decide(paula, "r", approve=True, reason=None, uid="u-1")
    assert not [c for c in api.calls if c[0] == "patch"]
    assert decisions.decide(paula, "r", approve=True, reason=None, uid="u-2") == 0


# --- revoke --all ----------------------------------------------------------------------------------


def stored(api: FakeApi, plural: str, obj: dict[str, Any]) -> dict[str, Any]:
    obj["metadata"].setdefault("uid", f"uid-{obj['metadata']['name']}")
    api.objects[o.path(plural, obj["metadata"]["name"])] = obj
    return obj


def incident(api: FakeApi) -> None:
    stored(
        api, names.GRANTS, grant("g-alice", "prod-eng-payments", entitlement="prod-eng-payments", ownerTeam="payments")
    )
    bobs = grant("g-bob", "prod-eng-ledger", entitlement="prod-eng-ledger", ownerTeam="ledger")
    bobs["spec"]["user"] = "bob@example.com"
    stored(api, names.GRANTS, bobs)
    stored(api, names.GRANTS, grant("g-old", "prod-eng-payments", "Expired", entitlement="prod-eng-payments"))
    for name, requester, reason in (
        ("r-bob", "bob@example.com", "Pending"),
        ("r-mine", "alice@example.com", "Pending"),
        ("r-later", "bob@example.com", "Scheduled"),
        ("r-done", "bob@example.com", "Denied"),
    ):
        request_ = req(cond("Ready", "False", reason), name=name)
        request_["spec"]["requester"] = requester
        if reason == "Scheduled":
            request_["status"]["conditions"].append(cond("Approved", "True", "Approved"))
        stored(api, names.REQUESTS, request_)
    for name, of, requester, reason in (
        ("x-bob", "g-bob", "bob@example.com", "Pending"),
        ("x-mine", "g-alice", "alice@example.com", "Pending"),
        ("x-done", "g-bob", "bob@example.com", "Extended"),
    ):
        stored(api, names.EXTENSIONS, extension(name, of, requester, reason))


def extension(name: str, grant_name: str, requester: str, reason: str = "Pending") -> dict[str, Any]:
    return {
        "metadata": {"name": name, "resourceVersion": "9", "annotations": {}},
        "spec": {"grant": grant_name, "duration": "30m", "reason": "INC-1 more", "requester": requester},
        "status": {"conditions": [cond("Ready", str(reason == "Extended"), reason)]},
    }


def test_revoke_all_ends_grants_and_requests_and_sums_up(api: FakeApi) -> None:
    incident(api)
    s = session(api)
    assert decisions.revoke_all(s, decisions.Scope(), reason="INC-9 leak", wait=False, timeout=None) == 0
    lines = out(s).splitlines()
    assert "revoked AccessGrant g-alice (alice@example.com in Identity Center group prod-eng-payments)" in lines
    assert "revoked AccessGrant g-bob (bob@example.com in Identity Center group prod-eng-ledger)" in lines
    assert "denied AccessRequest r-bob (bob@example.com, prod-eng-payments)" in lines
    assert "withdrew AccessRequest r-mine (alice@example.com, prod-eng-payments)" in lines, "one's own: withdrawn"
    assert "revoked AccessRequest r-later (bob@example.com, prod-eng-payments, Scheduled)" in lines, (
        "named, not deleted"
    )
    assert "denied AccessExtension x-bob (bob@example.com, +30m on AccessGrant g-bob)" in lines
    assert "withdrew AccessExtension x-mine (alice@example.com, +30m on AccessGrant g-alice)" in lines
    assert lines.index("denied AccessExtension x-bob (bob@example.com, +30m on AccessGrant g-bob)") < lines.index(
        "revoked AccessGrant g-bob (bob@example.com in Identity Center group prod-eng-ledger)"
    ), "denied before its grant's revocation could fail it"
    assert lines[-1] == (
        "2 grants revoked, 1 request denied, 1 request withdrawn, 1 Scheduled request revoked, 1 extension denied, "
        "1 extension withdrawn"
    )
    assert not any(w in line for line in lines for w in ("g-old", "r-done", "x-done")), "finished ones are left alone"
    patches = {
        path: body for verb, (path, body) in [c for c in api.calls if c[0] in ("patch", "delete")] if verb == "patch"
    }
    revoked = patches[o.path(names.GRANTS, "g-bob")]["metadata"]["annotations"]
    assert revoked == {names.ANNOTATION_REVOKED: "true", names.ANNOTATION_REVOKE_REASON: "INC-9 leak"}
    denied = patches[o.path(names.REQUESTS, "r-bob")]["metadata"]
    assert denied["annotations"] == {names.ANNOTATION_DENIED: "true", names.ANNOTATION_DECISION_REASON: "INC-9 leak"}
    assert (denied["uid"], denied["resourceVersion"]) == ("uid-r-bob", "9"), "conditional on the request as read"
    extended = patches[o.path(names.EXTENSIONS, "x-bob")]["metadata"]
    assert extended == {**denied, "uid": "uid-x-bob"}, "an extension is denied as a request is"
    deletes = [body for verb, body in api.calls if verb == "delete"]
    assert not [path for path, _ in deletes if path == o.path(names.REQUESTS, "r-later")], "revoked, not deleted"
    later = patches[o.path(names.REQUESTS, "r-later")]["metadata"]
    assert later["annotations"] == {names.ANNOTATION_REVOKED: "true", names.ANNOTATION_REVOKE_REASON: "INC-9 leak"}
    assert (later["uid"], later["resourceVersion"]) == ("uid-r-later", "9"), "a revocation is conditional on it as read"
    assert (o.path(names.EXTENSIONS, "x-mine"), {"uid": "uid-x-mine", "resourceVersion": "9"}) in deletes


def test_revoke_names_a_scheduled_request_before_its_grant_exists(api: FakeApi) -> None:
    """Approved for a later start, it has no grant yet: revoked by annotation (stamped with who, the
    reason kept), never deleted (attack 124)."""
    incident(api)
    s = session(api)
    assert decisions.revoke(s, "r-later", reason="INC-9 leak", wait=True, timeout=None) == 0
    assert out(s).startswith("revoked accessrequest r-later (bob@example.com, ")
    assert out(s).rstrip().endswith("): it will not start")
    patched = [body for verb, (path, body) in [c for c in api.calls if c[0] == "patch"] if path.endswith("/r-later")]
    assert patched == [
        {
            "metadata": {
                "uid": "uid-r-later",
                "resourceVersion": "9",
                "annotations": {names.ANNOTATION_REVOKED: "true", names.ANNOTATION_REVOKE_REASON: "INC-9 leak"},
            }
        }
    ]
    assert not [c for c in api.calls if c[0] == "delete"]
    # A pending request has no grant: refused, pointing to its denial (test_cli_access_under_way.py).
    with pytest.raises(Refused, match="accessrequest r-bob is Pending: it has no grant"):
        decisions.revoke(session(api), "r-bob", reason="INC-9", wait=False, timeout=None)


def test_a_request_named_like_an_earlier_grant_is_shown_and_revoked_as_itself(api: FakeApi) -> None:
    """Attack 130's second line, for requests stored before admission refused the name: the ended
    grant of another request under the same name is neither shown as the request's nor taken for
    it, so a Scheduled request under that name is revoked, not refused as "already ended"."""
    incident(api)
    old = grant("r-later", "prod-eng-ledger", "Revoked", entitlement="prod-eng-ledger")
    old["metadata"]["labels"] = {names.LABEL_REQUEST: "uid-of-an-earlier-request"}
    stored(api, names.GRANTS, old)
    api.objects[o.path(names.REQUESTS, "r-later")]["metadata"]["uid"] = "uid-r-later"
    s = session(api)
    assert views.status(s, "r-later", output="table") == 0
    assert "prod-eng-ledger" not in out(s), "the earlier request's grant is not this request's"
    s = session(api)
    assert decisions.revoke(s, "r-later", reason="INC-9 leak", wait=False, timeout=None) == 0
    assert out(s).rstrip().endswith("): it will not start")
    # Its own grant, labelled with its uid, is shown.
    old["metadata"]["labels"] = {names.LABEL_REQUEST: "uid-r-later"}
    s = session(api)
    assert views.status(s, "r-later", output="table") == 0
    assert "prod-eng-ledger" in out(s)


def test_revoke_all_in_a_scope_and_grants_only(api: FakeApi) -> None:
    incident(api)
    s = session(api)
    scope = decisions.Scope(team="ledger", grants_only=True)
    assert decisions.revoke_all(s, scope, reason="INC-9", wait=False, timeout=None) == 0
    assert out(s).splitlines() == [
        "revoked AccessGrant g-bob (bob@example.com in Identity Center group prod-eng-ledger)",
        "1 grant revoked, 0 requests denied, 0 requests withdrawn, 0 extensions denied (in team ledger)",
    ]
    assert not [c for c in api.calls if c == ("get", o.path(names.EXTENSIONS))], "--grants-only: not even read"
    s = session(api)
    scope = decisions.Scope(entitlement="nothing-here")
    assert decisions.revoke_all(s, scope, reason="INC-9", wait=False, timeout=None) == 0
    assert out(s) == "nothing to revoke: no active grants, requests or extensions (in entitlement nothing-here)\n"


def test_revoke_all_denies_the_extensions_in_scope_by_their_grant(api: FakeApi) -> None:
    incident(api)
    # Its grant is gone: the entitlement the operator recorded on it scopes it.
    orphan = extension("x-orphan", "g-gone", "carol@example.com")
    orphan["status"]["entitlement"] = "prod-eng-payments"
    stored(api, names.EXTENSIONS, orphan)
    s = session(api)
    assert decisions.revoke_all(s, decisions.Scope(team="ledger"), reason="INC-9", wait=False, timeout=None) == 0
    lines = out(s).splitlines()
    assert "denied AccessExtension x-bob (bob@example.com, +30m on AccessGrant g-bob)" in lines
    assert not any("x-mine" in line or "x-orphan" in line for line in lines), "payments' are out of scope"
    s = session(api)
    scope = decisions.Scope(entitlement="prod-eng-payments")
    assert decisions.revoke_all(s, scope, reason="INC-9", wait=False, timeout=None) == 0
    assert "denied AccessExtension x-orphan (carol@example.com, +30m on AccessGrant g-gone)" in out(s)


def test_revoke_all_leaves_an_extension_finished_meanwhile_alone(api: FakeApi) -> None:
    """Its grant ended under it (the operator failed it): the denial's refusal is no refusal of yours."""
    api.objects.clear()
    stored(api, names.EXTENSIONS, extension("x-bob", "g-bob", "bob@example.com"))

    def merge_patch(path: str, patch: dict[str, Any]) -> dict[str, Any]:
        api.objects[path]["status"]["conditions"] = [cond("Ready", "False", "Failed")]
        raise ApiError(403, "Forbidden", "this request is already finished (Failed)")

    api.merge_patch = merge_patch  # type: ignore[method-assign]
    s = session(api)
    assert decisions.revoke_all(s, decisions.Scope(), reason="INC-9", wait=False, timeout=None) == 0
    assert err(s) == ""


def test_revoke_all_names_what_was_refused_and_exits_1(api: FakeApi) -> None:
    incident(api)
    refusal = ApiError(
        403,
        "Forbidden",
        'admission webhook "accessgrants-stamp.jitaccess.dev" denied the request: '
        "alice@example.com may not revoke this grant",
    )
    api.patch_errors = [refusal]
    s = session(api)
    scope = decisions.Scope(grants_only=True)
    with pytest.raises(Refused) as refused:
        decisions.revoke_all(s, scope, reason="INC-9", wait=False, timeout=None)
    assert "1 could not be ended (accessgrant g-alice)" in refused.value.message
    assert "refused: AccessGrant g-alice (alice@example.com): revoking accessgrant g-alice was refused" in err(s)
    assert "may not revoke this grant" in err(s)
    assert out(s).splitlines()[-1] == (
        "1 grant revoked, 0 requests denied, 0 requests withdrawn, 0 extensions denied, 1 refused"
    )


def test_revoke_all_tries_a_request_that_changed_again_and_says_when_it_kept_changing(api: FakeApi) -> None:
    """r-bob's denial is refused as no longer the request read (409): the next pass reads and
    denies it. One that changes at every pass is said to be left, and the command fails, rather
    than ending as if everything had been ended."""
    api.objects.clear()
    bobs = req(cond("Ready", "False", "Pending"), name="r-bob")
    bobs["spec"]["requester"] = "bob@example.com"
    stored(api, names.REQUESTS, bobs)
    conflict = ApiError(
        409, "Conflict", "the object has been modified; please apply your changes to the latest version"
    )
    api.patch_errors = [conflict]
    s = session(api)
    assert decisions.revoke_all(s, decisions.Scope(), reason="INC-9", wait=False, timeout=None) == 0
    assert "denied AccessRequest r-bob (bob@example.com, prod-eng-payments)" in out(s) and err(s) == ""

    api.patch_errors = [conflict] * decisions._ALL_PASSES
    s = session(api)
    with pytest.raises(Refused) as refused:
        decisions.revoke_all(s, decisions.Scope(), reason="INC-9", wait=False, timeout=None)
    assert "1 could not be ended (accessrequest r-bob)" in refused.value.message
    assert "refused: accessrequest r-bob kept changing while it was being ended: run the command again" in err(s)


def test_revoke_all_goes_round_again_for_a_grant_made_meanwhile(api: FakeApi) -> None:
    incident(api)
    real_delete = api.delete

    def delete(path: str, preconditions: dict[str, str]) -> dict[str, Any]:
        # While r-later is withdrawn, another request was approved and its grant made.
        stored(api, names.GRANTS, grant("g-new", "prod-eng-payments", entitlement="prod-eng-payments"))
        return real_delete(path, preconditions)

    api.delete = delete  # type: ignore[method-assign]
    s = session(api)
    assert decisions.revoke_all(s, decisions.Scope(), reason="INC-9", wait=False, timeout=None) == 0
    assert "revoked AccessGrant g-new (alice@example.com in Identity Center group prod-eng-payments)" in out(s)


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["revoke", "--all"], "--all needs --reason"),
        (["revoke", "g1", "--all", "--reason", "x"], "either GRANT or --all"),
        (["revoke"], "name the GRANT to revoke"),
        (["revoke", "g1", "--team", "payments"], "--team go only with --all"),
    ],
)
def test_revoke_all_usage(argv: list[str], words: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main.main(argv) == USAGE
    assert words in capsys.readouterr().err


def test_the_sessions_note_when_catalogs_may_not_be_read(api: FakeApi) -> None:
    """An incident responder's role reads catalogs, but one who may not still gets the general note."""
    real_get = api.get

    def get(path: str, **query: Any) -> dict[str, Any]:
        if path == o.path(names.CATALOGS):
            raise ApiError(403, "Forbidden", "cannot list resource permissioncatalogs")
        return real_get(path, **query)

    api.get = get  # type: ignore[method-assign]
    assert decisions._sessions_note(session(api), [grant("g1", "prod-eng-payments", "Revoked")]) == (
        decisions.AWS_SESSIONS_NOTE
    )


def test_extend_sends_the_duration_as_checked(api: FakeApi) -> None:
    """`--by " 30m"` passes the CLI's parser, which forgives padding; the schema's pattern does not,
    so the value is sent trimmed rather than refused by the server with a message about a pattern."""
    from jitaccess.cli import extend

    api.objects[o.path(names.GRANTS, "g-alice")] = grant("g-alice", "prod-eng-payments", user="alice@example.com")
    with pytest.raises(StillPending):  # nothing decides it here
        extend.run(
            session(api), "g-alice", by=" 30m\n", reason="INC-1 still running", wait=False,
            timeout=timedelta(milliseconds=1),
        )  # fmt: skip
    sent = [body for verb, body in api.calls if verb in ("dry-run", "create")]
    assert [body["spec"]["duration"] for body in sent] == ["30m", "30m"]


def test_no_command_prints_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert main.main([]) == USAGE
    said = capsys.readouterr().err
    assert "request" in said and "who-has" in said and "exit codes" in said.lower()


def test_status_without_a_name_says_where_the_names_are(capsys: pytest.CaptureFixture[str]) -> None:
    assert main.main(["status"]) == USAGE
    assert "`kubectl jit list --mine` lists yours" in capsys.readouterr().err

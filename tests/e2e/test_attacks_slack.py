"""The attacks of docs/security.md through Slack: clicks on the approvers' message (the strict Slack
stand-in signs them as Slack does) reach the session operator's interactivity endpoint, which
applies them as the clicking user through the API server, impersonating them with the narrow
identity `devenv.slack_identity` sets up (the ClusterRole `kubectl jit rbac slack` prints).

There is no second decision path: each click below is refused as the same user's `kubectl annotate`
would be (the webhook's words, or RBAC's), or never read at all (signature, timestamp, replay). Each
test shows the clicker was told why (an ephemeral message), and that nothing was approved.

The chart's impersonator, a ServiceAccount whose tokens the operator asks for, is applied from the
chart's own objects where a test needs it (attack 145).
"""

from __future__ import annotations

import base64
import json
import secrets
import subprocess
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

import kubernetes
import pytest
import yaml
from kubernetes.client.exceptions import ApiException

from devenv.controlplane import SERVICE_ACCOUNT_ISSUER, ControlPlane
from devenv.notifications import OUTSIDER, LocalNotifications, slack_id_of
from devenv.slack import Ephemeral, Message, SlackStandIn
from devenv.slack_identity import IMPERSONATOR
from jitaccess.adapters.impersonation import TOKEN_SECONDS, Impersonator
from tests.helm.chart import CHART, Helm, documents, helm_binary
from tests.support.harness import Jit, eventually

pytestmark = pytest.mark.e2e

ALICE, PAULA, LENA, CAROL, MALLORY = (f"{n}@example.com" for n in ("alice", "paula", "lena", "carol", "mallory"))
LEDGER, LEDGER_CHANNEL = "prod-eng-ledger", "C0LEDGER1"
APPROVED, APPROVED_BY, DENIED = "jitaccess.dev/approved", "jitaccess.dev/approved-by", "jitaccess.dev/denied"
CANNOT_IMPERSONATE = "cannot impersonate"


# --- helpers --------------------------------------------------------------------------------


def waiting(system: Jit, slack: SlackStandIn, name: str, user: str = ALICE, **spec: Any) -> Message:
    """A pending request for the ledger entitlement, and the approvers' message with its buttons."""
    system.request(name, LEDGER, user=user, **spec)
    system.wait_reason("accessrequest", name, "Pending")

    def message() -> Message | None:
        try:
            return slack.find_button(name, "approve", LEDGER_CHANNEL)[0]
        except LookupError:
            return None

    return eventually(message, what=f"the approvers' message about {name}")


def told(slack: SlackStandIn, user: str, *fragments: str) -> Ephemeral:
    """The ephemeral message `user` (a username) was shown, holding every fragment."""

    def found() -> list[Ephemeral] | None:
        shown = [e for e in slack.ephemerals() if e.user == slack_id_of(user)]
        return [e for e in shown if all(f in (e.text or "") for f in fragments)] or None

    return eventually(found, what=f"{user} told {fragments}; shown: {[e.text for e in slack.ephemerals()]}")[-1]


def nothing_approved(system: Jit, name: str) -> None:
    request = system.get("accessrequest", name) or {}
    annotations = request.get("metadata", {}).get("annotations") or {}
    assert not {APPROVED, APPROVED_BY, DENIED} & set(annotations), annotations
    assert system.ready_reason("accessrequest", name) == "Pending"
    assert system.get("accessgrant", name) is None
    assert system.members(LEDGER) == set()


def as_user(body: bytes, user: str) -> bytes:
    """The same click, claiming another Slack user (what a forger would send)."""
    payload = json.loads(parse_qs(body.decode())["payload"][0])
    payload["user"]["id"] = slack_id_of(user)
    return urlencode({"payload": json.dumps(payload)}).encode()


@pytest.fixture
def impersonator(notifications: LocalNotifications) -> Path:
    assert notifications.impersonator_kubeconfig is not None, "the session operator has no impersonator"
    return notifications.impersonator_kubeconfig


def as_impersonator(system: Jit, kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
    result: subprocess.CompletedProcess[str] = system.kubectl("--kubeconfig", str(kubeconfig), *args, check=False)
    return result


def can_i(system: Jit, kubeconfig: Path, *args: str) -> bool:
    return as_impersonator(system, kubeconfig, "auth", "can-i", *args).stdout.strip() == "yes"


# --- 36. the requester clicks Approve on their own request ---------------------------------------


def test_36_requesters_own_click_is_refused(system: Jit, slack: SlackStandIn) -> None:
    # carol is a backup approver (so jitaccess may act as her) and asks for ledger access herself:
    # the webhook refuses her own approval exactly as it refuses her kubectl annotate.
    message = waiting(system, slack, "s36-own", user=CAROL)
    status, _ = slack.click(slack_id_of(CAROL), message, "approve")
    assert status == 200
    told(slack, CAROL, f"{CAROL} requested this access and cannot decide on it")
    nothing_approved(system, "s36-own")
    # alice is no approver anywhere: jitaccess may not act as her at all.
    other = waiting(system, slack, "s36-alice")
    slack.click(slack_id_of(ALICE), other, "approve")
    told(slack, ALICE, CANNOT_IMPERSONATE, "s36-alice")
    nothing_approved(system, "s36-alice")


# --- 37. someone who is not an approver of the owner team clicks ---------------------------------


def test_37_non_approvers_click_is_refused(system: Jit, slack: SlackStandIn) -> None:
    message = waiting(system, slack, "s37")
    # paula approves for payments, not ledger: impersonated, then refused by the webhook.
    slack.click(slack_id_of(PAULA), message, "approve")
    told(slack, PAULA, f"{PAULA} is not an approver of the owner team")
    # mallory is nobody's approver: RBAC refuses to let jitaccess act as her.
    slack.click(slack_id_of(MALLORY), message, "approve")
    told(slack, MALLORY, CANNOT_IMPERSONATE)
    # Deny is refused alike, before any modal opens (a dry run as that user).
    slack.click(slack_id_of(PAULA), message, "deny")
    eventually(
        lambda: len([e for e in slack.ephemerals() if e.user == slack_id_of(PAULA)]) >= 2 or None,
        what="paula's deny refused",
    )
    asked = [v for v in slack.views() if (v.private_metadata or "").partition("/")[0] == "s37"]
    assert not asked, "no reason asked of a non-approver"
    nothing_approved(system, "s37")


# --- 38. a backup approver clicks before the request has escalated -------------------------------


def test_38_backup_approvers_click_before_escalation_is_refused(system: Jit, slack: SlackStandIn) -> None:
    message = waiting(system, slack, "s38")
    assert system.condition("accessrequest", "s38", "Escalated") is None
    slack.click(slack_id_of(CAROL), message, "approve")
    told(slack, CAROL, "is a backup approver: they may decide only after the request has escalated")
    nothing_approved(system, "s38")


# --- 39. a click replayed --------------------------------------------------------------------


def test_39_replayed_click_is_refused(system: Jit, slack: SlackStandIn) -> None:
    message = waiting(system, slack, "s39")
    slack.click(slack_id_of(CAROL), message, "approve")  # refused: before escalation
    told(slack, CAROL, "backup approver")
    body, headers = slack.last_request
    assert slack.send_raw(body, headers) == (401, "refused: replayed")
    nothing_approved(system, "s39")
    # An accepted click is not applied twice either.
    slack.click(slack_id_of(LENA), message, "approve")
    system.wait_reason("accessrequest", "s39", "Granted")
    told(slack, LENA, "You approved AccessRequest s39")
    body, headers = slack.last_request
    assert slack.send_raw(body, headers) == (401, "refused: replayed")
    time.sleep(0.5)  # an answer to the replay would be sent by now
    answers = [e.text for e in slack.ephemerals() if "AccessRequest s39" in (e.text or "")]
    assert len(answers) == 2, answers  # carol's refusal and lena's approval, none to a replay
    assert [e["reason"] for e in system.events("s39", "AccessRequest")].count("Approved") == 1


# --- 98. a button left on a withdrawn request's message, its name taken again -------------------------


def test_98_a_click_decides_only_the_request_its_message_was_posted_for(system: Jit, slack: SlackStandIn) -> None:
    # alice asks; carol's early click (refused: not escalated) gives us the button as Slack sent it.
    message = waiting(system, slack, "s98-reuse")
    slack.click(slack_id_of(CAROL), message, "approve")
    told(slack, CAROL, "backup approver")
    stale_click, _ = slack.last_request
    system.kubectl("delete", "accessrequest", "s98-reuse", user=ALICE)
    # The message of a request withdrawn while it waited loses its buttons.
    withdrawn = eventually(
        lambda: next((m for m in slack.messages(LEDGER_CHANNEL) if m.ts == message.ts and m.updates), None),
        what="the withdrawn request's message updated",
    )
    assert "withdrawn" in (withdrawn.text or "") and "button" not in json.dumps(withdrawn.blocks)
    # mallory takes the name, asking for the same thing; lena clicks Approve on the message she had
    # open from before (a Slack client that had not refreshed it, or an update that failed).
    system.request("s98-reuse", LEDGER, user=MALLORY, reason="INFRA-1 e2e test")
    system.wait_reason("accessrequest", "s98-reuse", "Pending")
    lenas = as_user(stale_click, LENA)
    assert slack.send_raw(lenas, slack.sign(lenas))[0] == 200
    told(slack, LENA, "AccessRequest s98-reuse is no longer the request this message was posted for")
    nothing_approved(system, "s98-reuse")
    # mallory's request has a message of its own, whose buttons decide it (and say whose it is).
    fresh = waiting_message(slack, "s98-reuse", besides=message.ts)
    slack.click(slack_id_of(LENA), fresh, "approve")
    told(slack, LENA, f"You approved AccessRequest s98-reuse: {MALLORY} asks for {LEDGER}")
    system.wait_reason("accessrequest", "s98-reuse", "Granted")


def waiting_message(slack: SlackStandIn, name: str, besides: str) -> Message:
    def found() -> Message | None:
        try:
            message = slack.find_button(name, "approve", LEDGER_CHANNEL)[0]
        except LookupError:
            return None
        return message if message.ts != besides else None

    return eventually(found, what=f"a new approvers' message about {name}")


# --- 40. a click with a forged signature ---------------------------------------------------------


def test_40_forged_signature_is_refused(system: Jit, slack: SlackStandIn) -> None:
    message = waiting(system, slack, "s40")
    slack.click(slack_id_of(MALLORY), message, "approve")
    body, signed_by_slack = slack.last_request
    forged = as_user(body, LENA)  # mallory's click, now claiming to be lena's
    guessed = {"X-Slack-Request-Timestamp": str(int(time.time())), "X-Slack-Signature": "v0=" + "0" * 64}
    assert slack.send_raw(forged, guessed) == (401, "refused: forged")
    assert slack.send_raw(forged, {}) == (401, "refused: unsigned")
    assert slack.send_raw(forged, signed_by_slack) == (401, "refused: forged")  # a real signature, another body
    time.sleep(0.5)
    assert not [e for e in slack.ephemerals() if "s40" in (e.text or "") and e.user == slack_id_of(LENA)], (
        "nobody acted as lena"
    )
    nothing_approved(system, "s40")


# --- 41. a correctly signed click with an old timestamp ------------------------------------------


def test_41_old_timestamp_is_refused(system: Jit, slack: SlackStandIn) -> None:
    message = waiting(system, slack, "s41")
    slack.click(slack_id_of(MALLORY), message, "approve")
    body = as_user(slack.last_request[0], LENA)
    # Signed with the real secret (as a click captured 6 minutes ago would be): still refused.
    assert slack.send_raw(body, slack.sign(body, int(time.time()) - 360)) == (401, "refused: stale")
    assert slack.send_raw(body, slack.sign(body, int(time.time()) + 360)) == (401, "refused: stale")
    nothing_approved(system, "s41")


# --- 42. a Slack user whose email is no approver -------------------------------------------------


def test_42_slack_user_who_maps_to_no_approver_is_refused(system: Jit, slack: SlackStandIn) -> None:
    message = waiting(system, slack, "s42")
    slack.click(slack_id_of(MALLORY), message, "approve")
    text = told(slack, MALLORY, CANNOT_IMPERSONATE).text or ""
    assert f"may not act as {MALLORY}" in text and "kubectl jit rbac slack" in text
    nothing_approved(system, "s42")


# --- 43. the impersonator acts as someone it does not list ----------------------------------------


def test_43_impersonator_cannot_impersonate_anyone_unlisted(system: Jit, impersonator: Path) -> None:
    for approver in (LENA, PAULA, CAROL):
        assert can_i(system, impersonator, "impersonate", f"users/{approver}")
    for other in (ALICE, MALLORY, "system:admin", "system:kube-controller-manager"):
        assert not can_i(system, impersonator, "impersonate", f"users/{other}"), other
    assert not can_i(system, impersonator, "impersonate", "groups/system:masters")
    assert not can_i(system, impersonator, "impersonate", "serviceaccounts", "-n", "kube-system")
    assert not can_i(system, impersonator, "impersonate", "userextras/scopes")
    name = waiting_request(system, "s43")
    for who in ([f"--as={MALLORY}"], [f"--as={LENA}", "--as-group=system:masters"], ["--as=system:admin"]):
        result = as_impersonator(system, impersonator, *who, "annotate", "accessrequest", name, f"{APPROVED}=true")
        assert result.returncode != 0 and CANNOT_IMPERSONATE in result.stderr, (who, result.stderr)
    nothing_approved(system, name)


def waiting_request(system: Jit, name: str) -> str:
    system.request(name, LEDGER, user=ALICE)
    system.wait_reason("accessrequest", name, "Pending")
    return name


# --- 44. the impersonator acts in its own name ------------------------------------------------


def test_44_impersonator_can_do_nothing_but_impersonate(system: Jit, impersonator: Path) -> None:
    name = waiting_request(system, "s44")
    for verb, resource in (
        ("patch", "accessrequests.jitaccess.dev"),
        ("get", "accessrequests.jitaccess.dev"),
        ("create", "accessgrants.jitaccess.dev"),
        ("patch", "accessrequests.jitaccess.dev/status"),
        ("get", "secrets"),
        ("create", "clusterrolebindings.rbac.authorization.k8s.io"),
        ("escalate", "clusterroles.rbac.authorization.k8s.io"),
        ("create", "serviceaccounts/token"),
    ):
        assert not can_i(system, impersonator, verb, resource), (verb, resource)
    # A bare PATCH in its own name (kubectl would GET first, which it may not either).
    client = kubernetes.config.new_client_from_config(config_file=str(impersonator))  # type: ignore[no-untyped-call]
    patch = {"metadata": {"annotations": {APPROVED: "true"}}}
    with pytest.raises(ApiException) as refused:
        kubernetes.client.CustomObjectsApi(client).patch_cluster_custom_object(
            "jitaccess.dev", "v1alpha1", "accessrequests", name, patch
        )
    client.close()
    message = json.loads(refused.value.body or "{}").get("message", "")
    assert refused.value.status == 403 and f'User "{IMPERSONATOR}" cannot patch' in message, message
    # Everything it may do: impersonate the listed users, and what every authenticated identity may
    # (ask who it is and what it may do), as the API server lists it (SelfSubjectRulesReview).
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectRulesReview",
        "spec": {"namespace": "kube-system"},
    }
    answer = system.kubectl(
        "--kubeconfig",
        str(impersonator),
        "create",
        "--validate=false",
        "-o",
        "json",
        "-f",
        "-",
        input=json.dumps(review),
    )
    rules: list[dict[str, Any]] = json.loads(answer.stdout)["status"]["resourceRules"]
    assert any(r["verbs"] == ["impersonate"] for r in rules), rules
    for rule in rules:
        if rule["verbs"] == ["impersonate"]:
            assert rule["resources"] == ["users"] and set(rule["resourceNames"]) == {CAROL, LENA, PAULA}
        else:
            assert rule["verbs"] == ["create"] and all(r.startswith("self") for r in rule["resources"]), rule
    nothing_approved(system, name)


# --- not an attack: an approver the impersonator's ClusterRole misses is reported ------------------


def test_an_approver_the_impersonator_may_not_act_as_is_reported(system: Jit) -> None:
    team = {
        "apiVersion": "jitaccess.dev/v1alpha1",
        "kind": "TeamOwnership",
        "metadata": {"name": "e2e-new-lead"},
        "spec": {"approvers": [LENA, "newlead@example.com"]},
    }
    system.apply(team)
    try:
        (event,) = eventually(
            lambda: (
                [
                    e
                    for e in system.events("e2e-new-lead", "TeamOwnership")
                    if e["reason"] == "SlackApproverNotImpersonable"
                ]
                or None
            ),
            what="a warning on the TeamOwnership",
        )
        assert event["type"] == "Warning"
        assert "may not act as newlead@example.com" in event["message"] and LENA not in event["message"]
        assert "kubectl jit rbac slack" in event["message"]
    finally:
        system.kubectl("delete", "teamownership", "e2e-new-lead", "--ignore-not-found")


# --- 106. another team's TeamOwnership maps this team's approver to its own Slack user -----------


def test_106_another_teams_map_cannot_make_its_slack_user_this_teams_approver(system: Jit, slack: SlackStandIn) -> None:
    """paula, of team payments, edits payments' own TeamOwnership (her team reviews its own file)
    to map ledger's approver lena to paula's Slack user, then clicks Approve on a ledger request.
    Only ledger's own map says who ledger's approvers are in Slack: the click is paula's, and
    refused as hers."""
    hijack = json.dumps({"spec": {"notifications": {"slackUsers": {LENA: slack_id_of(PAULA)}}}})
    system.kubectl("patch", "teamownership", "payments", "--type=merge", "-p", hijack)
    try:
        # The operator has taken the change up (its index with it) once the status says so.
        def taken_up() -> bool:
            ready = system.condition("teamownership", "payments", "Ready") or {}
            generation = (system.get("teamownership", "payments") or {})["metadata"]["generation"]
            return ready.get("observedGeneration") == generation

        eventually(lambda: taken_up() or None, what="payments' change taken up")
        message = waiting(system, slack, "s106")
        slack.click(slack_id_of(PAULA), message, "approve")
        told(slack, PAULA, f"{PAULA} is not an approver of the owner team")
        nothing_approved(system, "s106")
    finally:
        undo = json.dumps({"spec": {"notifications": {"slackUsers": {LENA: None}}}})
        system.kubectl("patch", "teamownership", "payments", "--type=merge", "-p", undo)


# --- 107. someone of another company in a Slack Connect channel, with an approver's email ---------


def test_107_a_user_of_another_workspace_is_nobody_here(system: Jit, slack: SlackStandIn) -> None:
    """The approvers' channel is shared with another company, whose Slack admin gave one of their
    people ledger's approver's email: that click is nobody's, and nothing is decided."""
    message = waiting(system, slack, "s107")
    slack.click(OUTSIDER.id, message, "approve")
    shown = eventually(
        lambda: [e for e in slack.ephemerals() if e.user == OUTSIDER.id] or None, what="the outsider told why"
    )
    assert "not a member of the workspace" in (shown[-1].text or ""), shown[-1].text
    nothing_approved(system, "s107")


# --- 135. a requester's words in the approvers' message page the channel with a phishing link -----


def test_135_a_requesters_words_ping_nobody_and_link_nowhere(system: Jit, slack: SlackStandIn) -> None:
    """alice's reason is written for the approvers' channel: "@channel URGENT prod down, approve
    now: https://evil.example/sso". Escaped, it holds no `<!channel>` and no `<url|label>`, but
    Slack preprocesses a mrkdwn text that is not `verbatim`: the bare URL became a link and
    `@channel` / `@here` a broadcast paging every approver, carried by jitaccess's trusted bot. As
    Slack shows it (the stand-in's model), the approvers' message pings nobody and links nowhere;
    only jitaccess's own mention of the approver lena notifies anyone."""
    reason = "INFRA-135 @channel @here URGENT prod down, approve now: https://evil.example/sso (#ledger-approvals)"
    message = waiting(system, slack, "s135", reason=reason)
    assert "approve now: https://evil.example/sso" in json.dumps(message.blocks), "the reason is shown as written"
    shown = slack.rendered(message)
    assert (shown.broadcasts, shown.channels, shown.links) == (set(), set(), set()), shown
    assert slack_id_of(LENA) in shown.mentions and slack_id_of(ALICE) not in shown.mentions, shown
    nothing_approved(system, "s135")


def test_135_what_a_clicker_is_shown_pings_nobody_and_links_nowhere(system: Jit, slack: SlackStandIn) -> None:
    """The request's name is alice's to choose, and `s135-sso.evil.com` is a bare URL to Slack: the
    replies to a click name it, an email, and (the modal) the request. As Slack shows them, the
    ephemeral refusal and the deny modal link nothing and notify nobody: the modal's text is a
    `verbatim` mrkdwn object, the ephemeral message posted with `parse=none`."""
    name = "s135-sso.evil.com"
    message = waiting(system, slack, name, reason="INFRA-135 @here approve now: https://evil.example/sso")
    slack.click(slack_id_of(ALICE), message, "approve")
    refused = told(slack, ALICE, CANNOT_IMPERSONATE, name, ALICE)
    slack.click(slack_id_of(LENA), message, "deny")
    (modal,) = eventually(
        lambda: [v for v in slack.views() if (v.private_metadata or "").startswith(f"{name}/")] or None,
        what="the deny modal",
    )
    assert name in json.dumps(modal.view["blocks"])
    for shown in (refused, modal):
        seen = slack.rendered(shown)
        assert (seen.broadcasts, seen.mentions, seen.channels, seen.links) == (set(), set(), set(), set()), seen
    status, _ = slack.submit_view(slack_id_of(LENA), modal.id, {"reason": {"reason": "INC-135 @channel evil.com"}})
    assert status == 200
    system.wait_reason("accessrequest", name, "Denied")
    assert system.get("accessgrant", name) is None and system.members(LEDGER) == set()


# --- 145. whoever holds the operator's token mints a year-long token of the chart's impersonator ---


def test_145_a_token_of_the_impersonator_is_the_operators_ten_minute_one_only(
    control_plane: ControlPlane, tmp_path: Path
) -> None:
    """The chart's impersonator is a ServiceAccount whose tokens the operator may ask for; RBAC cannot
    say for how long, for whom, or bound to what. Holding the operator's token for a moment, one asked
    for a token of it valid a year, and kept an approver's powers long after the operator's pods (and
    their own tokens) were gone. The chart's policy admits the operator's own request alone: 600 s, the
    API server's audience, bound to nothing, asked by the operator's ServiceAccount."""
    values = CHART / "ci" / "slack-values.yaml"
    assert yaml.safe_load(values.read_text())["slack"]["interactions"]["tokenAudiences"] == [SERVICE_ACCOUNT_ISSUER]
    release = namespace = f"jitaccess-145-{secrets.token_hex(3)}"
    account, policy = f"{release}-slack", f"{release}-slack-token"
    rendered = documents(Helm(helm_binary()).template(release, namespace, values=[values]))
    role = f"{release}-slack-impersonator"
    wanted = {("ServiceAccount", release), ("ServiceAccount", account), ("Role", policy), ("RoleBinding", policy)}
    wanted |= {("ClusterRole", role), ("ClusterRoleBinding", role)}
    wanted |= {("ValidatingAdmissionPolicy", policy), ("ValidatingAdmissionPolicyBinding", policy)}
    objects = [o for o in rendered if (o["kind"], o["metadata"]["name"]) in wanted]
    assert sorted((o["kind"], o["metadata"]["name"]) for o in objects) == sorted(wanted)
    operator = f"system:serviceaccount:{namespace}:{release}"
    control_plane.kubectl("create", "namespace", namespace)
    try:
        control_plane.kubectl(
            "apply",
            "-n",
            namespace,
            "-f",
            "-",
            input=json.dumps({"kind": "List", "apiVersion": "v1", "items": objects}),
        )

        def token(*args: str, who: str | None = operator) -> subprocess.CompletedProcess[str]:
            """`kubectl create token` of the impersonator as `who` (None: the cluster administrator)."""
            as_who = [f"--as={who}"] if who else []
            result: subprocess.CompletedProcess[str] = control_plane.kubectl(
                "create", "token", account, "-n", namespace, *as_who, *args, check=False
            )
            return result

        # A policy is enforced a moment after it is created: until then the API server's answer is RBAC's.
        eventually(
            lambda: token("--duration=24h").returncode != 0 or None, what="the chart's policy in force", timeout=30
        )
        year = token("--duration=8760h")
        assert year.returncode != 0 and "lives 600 s (10 minutes)" in year.stderr, year.stderr
        assert "not 31536000 s" in year.stderr, year.stderr
        # What the operator asks for (jitaccess.adapters.impersonation) is admitted, and lives 600 s.
        kubeconfig = control_plane.service_account_kubeconfig(namespace, release, tmp_path)
        as_operator = kubernetes.client.Configuration()
        kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=str(kubeconfig), client_configuration=as_operator, persist_config=False
        )
        slack = Impersonator.from_service_account(f"{namespace}/{account}", operator=as_operator)
        try:
            assert slack.may_impersonate(LENA)  # the token was given: DecisionError otherwise
        finally:
            slack.close()
        assert TOKEN_SECONDS == 600
        admitted = token("--duration=10m")
        assert admitted.returncode == 0, admitted.stderr
        claims = json.loads(base64.urlsafe_b64decode(admitted.stdout.strip().split(".")[1] + "=="))
        assert claims["exp"] - claims["iat"] == 600 and claims["aud"] == [SERVICE_ACCOUNT_ISSUER], claims
        assert claims["sub"] == f"system:serviceaccount:{namespace}:{account}"
        for refused, words in (
            (token("--duration=10m", "--audience=https://vault.example.com"), "is for the API server alone"),
            (token("--duration=10m", "--bound-object-kind=Secret", "--bound-object-name=x"), "is bound to nothing"),
            # Anyone else RBAC lets ask: here the cluster administrator; edit or admin in the namespace too.
            (token("--duration=10m", who=None), f"is for the jitaccess operator ({operator}) alone, not "),
        ):
            # The policy's refusal, not RBAC's: the operator's Role allows each of these requests.
            assert refused.returncode != 0 and f"ValidatingAdmissionPolicy '{policy}'" in refused.stderr, refused.stderr
            assert words in refused.stderr, refused.stderr
        # Tokens of any other ServiceAccount are not the policy's business.
        other = control_plane.kubectl("create", "token", release, "-n", namespace, "--duration=24h", check=False)
        assert other.returncode == 0, other.stderr
    finally:
        for kind, name in (
            ("validatingadmissionpolicybinding", policy),
            ("validatingadmissionpolicy", policy),
            ("clusterrolebinding", role),
            ("clusterrole", role),
        ):
            control_plane.kubectl("delete", kind, name, "--ignore-not-found", "--wait=false", check=False)
        control_plane.kubectl("delete", "namespace", namespace, "--ignore-not-found", "--wait=false", check=False)

"""The Slack interactivity endpoint against the real API server: signed clicks, in process, applied
by the narrow impersonator (a minted user bound to the ClusterRole `kubectl jit rbac slack` prints,
or a ServiceAccount whose tokens come from the TokenRequest API) as the clicking user.

The control plane here runs RBAC (examples/rbac.yaml) but no admission webhook, so nothing stamps
`approved-by`: these tests show that the API server authorizes each patch as the clicking user
(RBAC tells them apart) and that the impersonator can act as nobody else. The whole gate, webhooks
included, is tried in tests/e2e/test_attacks_slack.py.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import kubernetes
import pytest
import yaml
from aiohttp.test_utils import TestClient, TestServer

from devenv.controlplane import ControlPlane
from devenv.paths import EXAMPLES
from devenv.slack import SlackStandIn, SlackUser
from devenv.slack_identity import IMPERSONATOR, ROLE, apply_role, example_teams, impersonator_kubeconfig
from jitaccess.adapters import slack as slack_adapter
from jitaccess.adapters.impersonation import DecisionError, Impersonator
from jitaccess.handlers import interactions
from jitaccess.handlers.interactions import Endpoint, Gate, owner_team_reader
from tests.support.harness import install_rbac

SECRET = "component-signing-secret"
APPROVED, DENIED, REASON = "jitaccess.dev/approved", "jitaccess.dev/denied", "jitaccess.dev/decision-reason"
EMAILS = {f"U0{n.upper()}": f"{n}@example.com" for n in ("alice", "bob", "lena", "carol", "mallory")}
ACCOUNT = "jitaccess-slack-component"


@pytest.fixture(scope="module")
def cluster(control_plane: ControlPlane) -> Iterator[ControlPlane]:
    install_rbac(control_plane)
    yield control_plane
    control_plane.kubectl("delete", "clusterrolebinding,clusterrole", ROLE, "--ignore-not-found", check=False)


@pytest.fixture(scope="module")
def kubeconfig(cluster: ControlPlane) -> Path:
    return impersonator_kubeconfig(cluster)


def create_request(cluster: ControlPlane, name: str) -> None:
    """bob asks for the ledger entitlement (`delete_request` after)."""
    body = {
        "apiVersion": "jitaccess.dev/v1alpha1",
        "kind": "AccessRequest",
        "metadata": {"name": name},
        "spec": {"entitlement": "prod-eng-ledger", "reason": "INFRA-1 slack", "requester": "bob@example.com"},
    }
    cluster.kubectl("create", "-f", "-", input=json.dumps(body))


def delete_request(cluster: ControlPlane, name: str) -> None:
    cluster.kubectl("delete", "accessrequest", name, "--ignore-not-found", "--wait=false", check=False)


@pytest.fixture
def request_name(cluster: ControlPlane, request: pytest.FixtureRequest) -> Iterator[str]:
    name = "slack-" + request.node.name.removeprefix("test_").replace("_", "-")[:40].rstrip("-")
    create_request(cluster, name)
    yield name
    delete_request(cluster, name)


@dataclass
class Slack:
    ephemerals: list[tuple[str, str, str]] = field(default_factory=list)
    views: list[dict[str, Any]] = field(default_factory=list)

    async def ephemeral(self, channel: str, user: str, text: str) -> None:
        self.ephemerals.append((channel, user, text))

    async def open_view(self, trigger_id: str, view: dict[str, Any]) -> None:
        self.views.append(view)

    async def email_of(self, user_id: str) -> str | None:
        return EMAILS.get(user_id)

    async def close(self) -> None:
        return None


@dataclass
class Served:
    client: TestClient[aiohttp.web.Request, aiohttp.web.Application]
    slack: Slack
    endpoint: Endpoint

    async def post(self, payload: dict[str, Any]) -> aiohttp.ClientResponse:
        body = urlencode({"payload": json.dumps(payload)}).encode()
        stamp = str(int(time.time()))
        signature = hmac.new(SECRET.encode(), f"v0:{stamp}:".encode() + body, hashlib.sha256).hexdigest()
        headers = {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": f"v0={signature}"}
        response = await self.client.post("/slack/interactions", data=body, headers=headers)
        await response.read()
        await self.endpoint.close()
        return response

    async def click(self, user: str, action: str, value: str) -> aiohttp.ClientResponse:
        """A click on a button whose value is `value` (the message's `NAME/UID`)."""
        return await self.post(
            {
                "type": "block_actions",
                "user": {"id": user},
                "trigger_id": "1.2",
                "channel": {"id": "C0LEDGER1"},
                "actions": [{"action_id": action, "value": value}],
            }
        )


@pytest.fixture
async def served(cluster: ControlPlane, kubeconfig: Path) -> AsyncIterator[Served]:
    slack = Slack()
    impersonator = Impersonator.from_kubeconfig(str(kubeconfig))
    teams = {team["metadata"]["name"]: [team["spec"]] for team in example_teams()}
    entitlements = {e["metadata"]["name"]: [e] for e in example_entitlements()}
    operator = kubernetes.config.new_client_from_config(config_file=str(cluster.admin_kubeconfig))
    endpoint = Endpoint(Gate(SECRET), slack, impersonator, owner_team_reader(teams, entitlements, operator))
    async with TestClient(TestServer(endpoint.app(), host="127.0.0.1")) as client:
        yield Served(client, slack, endpoint)
    impersonator.close()
    operator.close()


def example_entitlements() -> list[dict[str, Any]]:
    return [e for e in yaml.safe_load_all((EXAMPLES / "02-entitlements.yaml").read_text()) if e]


def button(cluster: ControlPlane, name: str) -> str:
    """What the approvers' message carries for request `name` as it now is: `NAME/UID`."""
    obj = json.loads(cluster.kubectl("get", "accessrequest", name, "-o", "json").stdout)
    return f"{name}/{obj['metadata']['uid']}"


def annotations_of(cluster: ControlPlane, name: str) -> dict[str, str]:
    obj = json.loads(cluster.kubectl("get", "accessrequest", name, "-o", "json").stdout)
    return dict(obj["metadata"].get("annotations") or {})


async def test_an_approvers_click_is_applied_as_that_approver(
    cluster: ControlPlane, served: Served, request_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What is applied, and as whom; not how fast (Slack's 3 s deadline is the unit tier's, and the
    # latency the benchmarks'): a loaded machine must not turn the answer into "could not confirm".
    monkeypatch.setattr(interactions, "ANSWER_WITHIN", 30.0)
    started = time.monotonic()
    response = await served.click("U0LENA", "approve", button(cluster, request_name))
    took = time.monotonic() - started
    assert response.status == 200
    assert annotations_of(cluster, request_name).get(APPROVED) == "true"
    # No webhook stamps `approved-by` here: stored as lena's patch, it decides nothing, and she is told
    # so rather than "You approved" (tests/e2e/test_attacks_slack.py has the webhooks' stamp).
    said = (
        f"Your decision on AccessRequest {request_name} was stored without the admission webhook's stamp of who "
        "made it, so it decides nothing (jitaccess takes only stamped decisions): ask the platform team to check "
        "jitaccess's admission webhooks. bob@example.com asks for prod-eng-ledger for its default duration, "
        "starting on approval."
    )
    assert served.slack.ephemerals == [("C0LEDGER1", "U0LENA", said)]
    print(f"click to stored annotation: {took * 1000:.0f} ms")


async def test_nobody_but_the_listed_approvers_can_be_acted_as(
    cluster: ControlPlane, served: Served, request_name: str
) -> None:
    for user in ("U0MALLORY", "U0ALICE"):
        await served.click(user, "approve", button(cluster, request_name))
    assert annotations_of(cluster, request_name) == {}
    texts = [text for _, _, text in served.slack.ephemerals]
    assert len(texts) == 2 and all("cannot impersonate" in t and "kubectl jit rbac slack" in t for t in texts)


async def test_the_patch_is_authorized_as_the_clicking_user(
    cluster: ControlPlane, served: Served, request_name: str
) -> None:
    # bob may be impersonated here, but bob (a requester) may not patch requests: RBAC says so *as bob*.
    apply_role(cluster, [*example_teams(), {"spec": {"approvers": ["bob@example.com"]}}])
    try:
        await served.click("U0BOB", "approve", button(cluster, request_name))
    finally:
        apply_role(cluster, example_teams())
    ((_, _, text),) = served.slack.ephemerals
    assert 'User "bob@example.com" cannot patch resource "accessrequests"' in text, text
    assert annotations_of(cluster, request_name) == {}


async def test_deny_asks_for_the_reason_then_applies_it_as_the_user(
    cluster: ControlPlane, served: Served, request_name: str
) -> None:
    await served.click("U0LENA", "deny", button(cluster, request_name))
    assert annotations_of(cluster, request_name) == {}  # the question was a dry run
    (view,) = served.slack.views
    values = {"reason": {"reason": {"type": "plain_text_input", "value": "INC-9 not needed"}}}
    view = {**view, "state": {"values": values}}
    response = await served.post({"type": "view_submission", "user": {"id": "U0LENA"}, "view": view})
    assert annotations_of(cluster, request_name) == {DENIED: "true", REASON: "INC-9 not needed"}
    # Applied as lena; without a webhook here nothing stamps `denied-by`, and the dialog says so.
    assert response.status == 200
    said = (await response.json())["errors"]["reason"]
    assert said.startswith(f"Your decision on AccessRequest {request_name} was stored without"), said


async def test_a_click_decides_the_request_it_was_posted_for_or_nothing(
    cluster: ControlPlane, served: Served, request_name: str
) -> None:
    # The message was posted for this request; it is withdrawn, and one of the same name created
    # again (by someone else, or asking for more): the old message's buttons decide nothing.
    posted = button(cluster, request_name)
    obj = json.loads(cluster.kubectl("get", "accessrequest", request_name, "-o", "json").stdout)
    cluster.kubectl("delete", "accessrequest", request_name)
    again = {k: obj[k] for k in ("apiVersion", "kind", "spec")} | {"metadata": {"name": request_name}}
    cluster.kubectl("create", "-f", "-", input=json.dumps(again))
    assert button(cluster, request_name) != posted
    await served.click("U0LENA", "approve", posted)
    await served.click("U0LENA", "deny", posted)
    assert annotations_of(cluster, request_name) == {} and served.slack.views == []
    texts = [text for _, _, text in served.slack.ephemerals]
    assert len(texts) == 2 and all("is no longer the request this message was posted for" in t for t in texts), texts
    # A message from before buttons carried the uid cannot tell either: it decides nothing.
    await served.click("U0LENA", "approve", request_name)
    assert annotations_of(cluster, request_name) == {}
    assert "posted before jitaccess tied its buttons to one request" in served.slack.ephemerals[-1][2]


async def test_what_the_clicker_is_shown_pings_nobody_and_links_nowhere(
    cluster: ControlPlane, kubeconfig: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Attack 135 in the replies to a click, through the Slack stand-in's rendering: the request's
    name is the requester's to choose, and `slack-sso.evil.com` is a bare URL to Slack. The deny
    modal (a mrkdwn section) and the ephemeral replies (a refusal naming mallory, a confirmation
    naming the requester) show it, and the emails, as written: no link, no broadcast."""
    monkeypatch.setattr(interactions, "ANSWER_WITHIN", 30.0)
    name = "slack-sso.evil.com"
    create_request(cluster, name)
    users = [SlackUser(f"U0{n.upper()}", f"{n}@example.com", n) for n in ("lena", "mallory")]
    standin = SlackStandIn(token="xoxb-component", signing_secret=SECRET, channels={"C0LEDGER1": "ledger"}, users=users)
    impersonator = Impersonator.from_kubeconfig(str(kubeconfig))
    slack = slack_adapter.Slack("xoxb-component", standin.start().api_url)
    teams = {team["metadata"]["name"]: [team["spec"]] for team in example_teams()}
    entitlements = {e["metadata"]["name"]: [e] for e in example_entitlements()}
    operator = kubernetes.config.new_client_from_config(config_file=str(cluster.admin_kubeconfig))
    endpoint = Endpoint(Gate(SECRET), slack, impersonator, owner_team_reader(teams, entitlements, operator))
    try:
        async with TestClient(TestServer(endpoint.app(), host="127.0.0.1")) as client:
            standin.interactions_url = str(client.make_url("/slack/interactions"))
            value = button(cluster, name)
            buttons = [
                {"type": "button", "action_id": action, "text": {"type": "plain_text", "text": action}, "value": value}
                for action in ("approve", "deny")
            ]
            await slack.post("C0LEDGER1", f"{name} waits", [{"type": "actions", "elements": buttons}])
            (message,) = standin.messages("C0LEDGER1")
            for user, action in (("U0MALLORY", "approve"), ("U0LENA", "deny"), ("U0LENA", "approve")):
                assert await asyncio.to_thread(standin.click, user, message, action) == (200, "")
                await endpoint.close()  # the ephemeral reply, sent after the answer
        (modal,) = standin.views()
        assert name in json.dumps(modal.view["blocks"])
        refused, approved = standin.ephemerals()
        assert name in (refused.text or "") and "mallory@example.com" in (refused.text or "")
        # No webhook here stamps `approved-by`: lena is told her decision decides nothing, naming the request.
        assert (approved.text or "").startswith(f"Your decision on AccessRequest {name} was stored without")
        assert "bob@example.com asks for" in (approved.text or "")
        for shown in (modal, refused, approved):
            seen = standin.rendered(shown)
            assert (seen.broadcasts, seen.mentions, seen.channels, seen.links) == (set(), set(), set(), set()), shown
    finally:
        await slack.close()
        standin.stop()
        impersonator.close()
        operator.close()
        delete_request(cluster, name)


def test_the_owner_team_is_read_from_the_request_as_stored(cluster: ControlPlane, request_name: str) -> None:
    """The team whose map says who clicked: the Entitlement's owner now (ledger); nothing when the
    request was replaced under its name (the patch's precondition then says so); and an error, so
    that nothing is decided, when it cannot be told (the teams' index still empty after a start)."""
    teams = {team["metadata"]["name"]: [team["spec"]] for team in example_teams()}
    entitlements = {e["metadata"]["name"]: [e] for e in example_entitlements()}
    operator = kubernetes.config.new_client_from_config(config_file=str(cluster.admin_kubeconfig))
    try:
        uid = button(cluster, request_name).partition("/")[2]
        assert owner_team_reader(teams, entitlements, operator)(request_name, uid) == ("ledger", teams["ledger"][0])
        assert owner_team_reader(teams, entitlements, operator)(request_name, "0" * 8 + uid[8:]) is None
        assert owner_team_reader(teams, entitlements, operator)("no-such-request", "") is None
        with pytest.raises(LookupError, match=f"owner team of AccessRequest {request_name} \\(ledger\\) is not known"):
            owner_team_reader({}, entitlements, operator)(request_name, uid)
    finally:
        operator.close()


def test_the_impersonator_itself_may_do_nothing_else(cluster: ControlPlane, kubeconfig: Path) -> None:
    impersonator = Impersonator.from_kubeconfig(str(kubeconfig))
    try:
        assert impersonator.may_impersonate("lena@example.com")
        assert not impersonator.may_impersonate("mallory@example.com")
        assert not impersonator.may_impersonate("system:admin")
    finally:
        impersonator.close()
    as_itself = cluster.kubectl("--kubeconfig", str(kubeconfig), "get", "accessrequests", check=False)
    assert as_itself.returncode != 0 and f'User "{IMPERSONATOR}" cannot list' in as_itself.stderr


def test_a_service_accounts_tokens_from_the_token_request_api(cluster: ControlPlane, request_name: str) -> None:
    cluster.kubectl("create", "serviceaccount", ACCOUNT, "-n", "default")
    cluster.kubectl(
        "create", "clusterrolebinding", ACCOUNT, f"--clusterrole={ROLE}", f"--serviceaccount=default:{ACCOUNT}"
    )
    operator = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
        config_file=str(cluster.admin_kubeconfig), client_configuration=operator, persist_config=False
    )
    impersonator = Impersonator.from_service_account(f"default/{ACCOUNT}", operator=operator)
    missing = Impersonator.from_service_account("default/no-such-account", operator=operator)
    try:
        assert impersonator.may_impersonate("lena@example.com")
        assert not impersonator.may_impersonate("mallory@example.com")
        impersonator.annotate_request(request_name, "lena@example.com", {APPROVED: "true"}, dry_run=True)
        assert annotations_of(cluster, request_name) == {}
        with pytest.raises(DecisionError, match="no token of ServiceAccount default/no-such-account"):
            missing.may_impersonate("lena@example.com")
    finally:
        impersonator.close()
        missing.close()
        cluster.kubectl("delete", "clusterrolebinding", ACCOUNT, "--ignore-not-found", check=False)
        cluster.kubectl("delete", "serviceaccount", ACCOUNT, "-n", "default", "--ignore-not-found", check=False)

"""The chart's Slack objects: the interactivity endpoint's Service and Ingress, and the narrow
impersonating identity (ServiceAccount, ClusterRole from slack.approvers, the operator's right to
tokens of that one ServiceAccount), rendered from ci/slack-values.yaml.

What the API server makes of them is in tests/e2e/test_chart.py.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
import yaml

from devenv.paths import EXAMPLES
from jitaccess.adapters.impersonation import TOKEN_SECONDS
from jitaccess.domain import impersonation
from jitaccess.settings import Settings
from tests.helm.chart import CHART, Helm, documents, find, helm_binary

SLACK = CHART / "ci" / "slack-values.yaml"
NAMESPACE = "jitaccess-system"
Objects = list[dict[str, Any]]


@pytest.fixture(scope="module")
def helm() -> Helm:
    return Helm(helm_binary())


@pytest.fixture(scope="module")
def slack(helm: Helm) -> Objects:
    return documents(helm.template("jitaccess", NAMESPACE, values=[SLACK]))


def container(objects: Objects) -> dict[str, Any]:
    (operator,) = find(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    return dict(operator)


def test_lint_strict(helm: Helm) -> None:
    result = helm.run("lint", "--strict", str(CHART), "--values", str(SLACK), check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_slack_objects(slack: Objects) -> None:
    names = sorted(f"{o['kind']}/{o['metadata']['name']}" for o in slack if "slack" in o["metadata"]["name"])
    assert names == [
        "ClusterRole/jitaccess-slack-impersonator",
        "ClusterRoleBinding/jitaccess-slack-impersonator",
        "Ingress/jitaccess-slack",
        "Role/jitaccess-slack-token",
        "RoleBinding/jitaccess-slack-token",
        "Service/jitaccess-slack",
        "ServiceAccount/jitaccess-slack",
        "ValidatingAdmissionPolicy/jitaccess-slack-token",
        "ValidatingAdmissionPolicyBinding/jitaccess-slack-token",
    ]
    assert find(slack, "ServiceAccount", "jitaccess-slack")["automountServiceAccountToken"] is False


def test_impersonator_may_impersonate_the_listed_approvers_only(slack: Objects) -> None:
    role = find(slack, "ClusterRole", "jitaccess-slack-impersonator")
    teams = list(yaml.safe_load_all((EXAMPLES / "01-teams.yaml").read_text()))
    # slack.approvers is `kubectl jit rbac slack -o values`: the chart's rule is the command's.
    assert role["rules"] == impersonation.cluster_role(teams)["rules"]
    binding = find(slack, "ClusterRoleBinding", "jitaccess-slack-impersonator")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "jitaccess-slack", "namespace": NAMESPACE}]


def _bound_approvers(objects: Objects) -> set[tuple[str, str]]:
    bindings = [
        o for o in objects if o["kind"] == "ClusterRoleBinding" and o["roleRef"]["name"] == "jitaccess-approver"
    ]
    return {(s["kind"], s["name"]) for b in bindings for s in b["subjects"]}


def test_the_approvers_a_click_acts_as_are_bound_to_the_approver_role_by_name(helm: Helm, slack: Objects) -> None:
    """A click is applied impersonating the user name alone (no group is ever impersonated): an
    approver bound to the approver ClusterRole only through a group would be refused by RBAC."""
    (rule,) = find(slack, "ClusterRole", "jitaccess-slack-impersonator")["rules"]
    impersonated = {("User", name) for name in rule["resourceNames"]}
    assert _bound_approvers(slack) == impersonated
    with_groups = documents(
        helm.template(
            values=[SLACK],
            set_values={
                "rbac.approvers.groups": "{tech-leads}",
                "rbac.approvers.users": "{lena@example.com,z@example.com}",
            },
        )
    )
    assert _bound_approvers(with_groups) == impersonated | {("User", "z@example.com"), ("Group", "tech-leads")}
    # Without the endpoint nobody is impersonated, and only rbac.approvers is bound.
    messages_only = documents(helm.template(values=[SLACK], set_values={"slack.interactions.enabled": "false"}))
    assert _bound_approvers(messages_only) == set()


def test_operator_may_obtain_tokens_of_the_impersonator_only(slack: Objects) -> None:
    (rule,) = find(slack, "Role", "jitaccess-slack-token")["rules"]
    assert rule == {
        "apiGroups": [""],
        "resources": ["serviceaccounts/token"],
        "resourceNames": ["jitaccess-slack"],
        "verbs": ["create"],
    }
    subjects = find(slack, "RoleBinding", "jitaccess-slack-token")["subjects"]
    assert subjects == [{"kind": "ServiceAccount", "name": "jitaccess", "namespace": NAMESPACE}]


def test_a_token_of_the_impersonator_is_the_operators_own_only(helm: Helm, slack: Objects) -> None:
    """RBAC lets the operator ask for tokens of the impersonator, and lets the caller choose how long
    they live, for whom and bound to what: whoever held the operator's token for a moment could keep
    a year-long one (attack 145). The policy admits what the operator asks for, and nothing else."""
    policy = find(slack, "ValidatingAdmissionPolicy", "jitaccess-slack-token")["spec"]
    assert policy["failurePolicy"] == "Fail"
    assert policy["matchConstraints"]["resourceRules"] == [
        {
            "apiGroups": [""],
            "apiVersions": ["*"],
            "operations": ["CREATE"],
            "resources": ["serviceaccounts/token"],
            "resourceNames": ["jitaccess-slack"],
        }
    ]
    assert [c["expression"] for c in policy["matchConditions"]] == [f"request.namespace == '{NAMESPACE}'"]
    checks = [v["expression"] for v in policy["validations"]]
    assert checks == [
        f"request.userInfo.username == 'system:serviceaccount:{NAMESPACE}:jitaccess'",
        f"has(object.spec.expirationSeconds) && object.spec.expirationSeconds <= {TOKEN_SECONDS}",
        "!has(object.spec.boundObjectRef) || object.spec.boundObjectRef == null",
        'object.spec.?audiences.orValue([]).all(a, a in ["https://kubernetes.default.svc.cluster.local"])',
    ]
    # The operator asks for the shortest token the API server gives (TokenRequest refuses less).
    assert TOKEN_SECONDS == 600
    assert {v["reason"] for v in policy["validations"]} == {"Forbidden"}
    binding = find(slack, "ValidatingAdmissionPolicyBinding", "jitaccess-slack-token")["spec"]
    assert binding == {"policyName": "jitaccess-slack-token", "validationActions": ["Deny"]}
    # A ServiceAccount of another name for the operator; no audiences listed: not checked.
    other = documents(
        helm.template(
            values=[SLACK],
            set_values={"serviceAccount.name": "jit-operator", "slack.interactions.tokenAudiences": "null"},
        )
    )
    checks = [
        v["expression"]
        for v in find(other, "ValidatingAdmissionPolicy", "jitaccess-slack-token")["spec"]["validations"]
    ]
    assert checks[0] == f"request.userInfo.username == 'system:serviceaccount:{NAMESPACE}:jit-operator'"
    assert not [c for c in checks if "audiences" in c]
    # On every Kubernetes the chart installs on (1.30 on), whatever admissionPolicy.enabled says.
    for version in ("1.30.0", "1.35.4"):
        for policy in ("true", "false"):
            args = ("template", "jitaccess", str(CHART), "--values", str(SLACK), "--kube-version", version)
            rendered = documents(helm.run(*args, "--set", f"admissionPolicy.enabled={policy}").stdout)
            kinds = [o["kind"] for o in rendered if o["metadata"]["name"] == "jitaccess-slack-token"]
            assert sorted(kinds) == [
                "Role",
                "RoleBinding",
                "ValidatingAdmissionPolicy",
                "ValidatingAdmissionPolicyBinding",
            ], (version, policy)


def test_no_approver_means_no_rule(helm: Helm) -> None:
    objects = documents(helm.template(values=[SLACK], set_values={"slack.approvers": "null"}))
    assert find(objects, "ClusterRole", "jitaccess-slack-impersonator")["rules"] == []


def test_endpoint_port_service_and_ingress(slack: Objects) -> None:
    ports = {p["name"]: p["containerPort"] for p in container(slack)["ports"]}
    assert ports["slack"] == 8091 and ports["slack"] != ports["webhook"]
    service = find(slack, "Service", "jitaccess-slack")
    assert service["spec"]["ports"] == [{"name": "http", "port": 8080, "targetPort": "slack", "protocol": "TCP"}]
    ingress = find(slack, "Ingress", "jitaccess-slack")["spec"]
    (rule,) = ingress["rules"]
    assert rule["host"] == "jitaccess.example.com"
    assert rule["http"]["paths"] == [
        {
            "path": "/slack/interactions",
            "pathType": "Exact",
            "backend": {"service": {"name": "jitaccess-slack", "port": {"name": "http"}}},
        }
    ]
    assert ingress["tls"] == [{"hosts": ["jitaccess.example.com"], "secretName": "jitaccess-slack-tls"}]


def test_environment(slack: Objects, monkeypatch: pytest.MonkeyPatch) -> None:
    env = {e["name"]: e for e in container(slack)["env"] if e["name"].startswith("JITACCESS_SLACK_")}
    assert env["JITACCESS_SLACK_TOKEN"]["valueFrom"] == {"secretKeyRef": {"name": "jitaccess-slack", "key": "token"}}
    assert env["JITACCESS_SLACK_SIGNING_SECRET"]["valueFrom"] == {
        "secretKeyRef": {"name": "jitaccess-slack", "key": "signingSecret"}
    }
    values = {name: e["value"] for name, e in env.items() if "value" in e}
    assert values == {
        "JITACCESS_SLACK_API_URL": "https://slack.com/api/",
        "JITACCESS_SLACK_DEFAULT_CHANNEL": "C0JITACCESS",
        "JITACCESS_SLACK_SECURITY_CHANNEL": "C0SECURITY1",
        "JITACCESS_SLACK_INTERACTIONS_PORT": "8091",
        "JITACCESS_SLACK_IMPERSONATOR_SERVICE_ACCOUNT": f"{NAMESPACE}/jitaccess-slack",
    }
    for key in [k for k in os.environ if k.startswith("JITACCESS_")]:
        monkeypatch.delenv(key)
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    settings = Settings()  # every name is a setting the operator reads
    assert (settings.slack_interactions_port, settings.slack_impersonator_service_account) == (
        8091,
        f"{NAMESPACE}/jitaccess-slack",
    )


def test_slack_off_by_default_and_interactions_can_be_off(helm: Helm) -> None:
    default = documents(helm.template())
    assert not [o for o in default if "slack" in o["metadata"]["name"]]
    assert not [e for e in container(default)["env"] if e["name"].startswith("JITACCESS_SLACK_")]
    messages_only = documents(helm.template(values=[SLACK], set_values={"slack.interactions.enabled": "false"}))
    assert not [o for o in messages_only if "slack" in o["metadata"]["name"]]
    env = {e["name"] for e in container(messages_only)["env"]}
    assert "JITACCESS_SLACK_TOKEN" in env and "JITACCESS_SLACK_INTERACTIONS_PORT" not in env


@pytest.mark.parametrize(
    ("setting", "complaint"),
    [
        ("slack.approvers[0]=system:masters", "/slack/approvers/0"),
        ("slack.defaultChannel=#general", "/slack/defaultChannel"),
        ("slack.interactions.port=0", "/slack/interactions/port"),
        ("slack.interactions.tokenAudiences[0]=", "/slack/interactions/tokenAudiences/0"),
        ("slack.channel=C0X", "additional properties 'channel' not allowed"),
    ],
)
def test_schema_refuses_bad_slack_values(helm: Helm, setting: str, complaint: str) -> None:
    result = helm.run("template", "jitaccess", str(CHART), "--values", str(SLACK), "--set", setting, check=False)
    assert result.returncode != 0 and complaint in result.stderr, result.stderr


def test_slack_needs_its_secret(helm: Helm) -> None:
    result = helm.run("template", "jitaccess", str(CHART), "--set", "slack.enabled=true", check=False)
    assert result.returncode != 0 and "slack.existingSecret" in result.stderr

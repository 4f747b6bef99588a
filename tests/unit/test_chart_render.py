"""The chart lints strictly and renders what a platform team expects, with default and with all options.

Cluster behaviour (server-side apply, install, upgrade, uninstall) is in tests/e2e/test_chart.py.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from annotated_types import Le
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from devenv import slack_identity
from devenv.controlplane import OPERATOR_ACCOUNT
from devenv.paths import EXAMPLES
from jitaccess.adapters.eventsink import require_https
from jitaccess.settings import FILE_SETTINGS, TEN_YEARS, Settings
from tests.helm.chart import CHART, REPO, Helm, documents, find, helm_binary, value_args

OPTIONS = CHART / "ci" / "options-values.yaml"
SLACK = CHART / "ci" / "slack-values.yaml"
EXAMPLE_RBAC = EXAMPLES / "rbac.yaml"
NAMESPACE = "jitaccess-system"
Objects = list[dict[str, Any]]


@pytest.fixture(scope="module")
def helm() -> Helm:
    return Helm(helm_binary())


@pytest.fixture(scope="module")
def default(helm: Helm) -> Objects:
    return documents(helm.template("jitaccess", NAMESPACE))


@pytest.fixture(scope="module")
def options(helm: Helm) -> Objects:
    return documents(helm.template("jitaccess", NAMESPACE, values=[OPTIONS]))


def container(objects: Objects) -> dict[str, Any]:
    (operator,) = find(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    return dict(operator)


def env(objects: Objects) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container(objects)["env"]}


def rules(objects: Objects, role: str) -> list[dict[str, Any]]:
    return list(find(objects, "ClusterRole", role)["rules"])


# --- lint --------------------------------------------------------------------------------------


@pytest.mark.parametrize("values", [[], [OPTIONS]], ids=["defaults", "options"])
def test_lint_strict(helm: Helm, values: list[Path]) -> None:
    args = [arg for path in values for arg in ("--values", str(path))]
    result = helm.run("lint", "--strict", str(CHART), *args, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize(
    ("setting", "complaint"),
    [
        ("replicaCount=two", "/replicaCount"),
        ("config.logFormat=xml", "/config/logFormat"),
        ("config.identityStoreId=store-1", "/config/identityStoreId"),
        ("config.retentionSeconds=0", "/config/retentionSeconds"),
        ("config.driftNoticesHoldDeletionSeconds=-1", "/config/driftNoticesHoldDeletionSeconds"),
        ("webhook.port=70000", "/webhook/port"),
        ("shutdownDelaySeconds=-1", "/shutdownDelaySeconds"),
        ("replicas=2", "additional properties 'replicas' not allowed"),
        # Every ServiceAccount is in system:authenticated: it could read every request's reason.
        ("rbac.requesters.groups[0]=system:authenticated", "/rbac/requesters/groups/0"),
        ("rbac.viewers.groups[0]=system:serviceaccounts", "/rbac/viewers/groups/0"),
        ("rbac.approvers.groups[0]=system:unauthenticated", "/rbac/approvers/groups/0"),
        # Every ServiceAccount of a namespace: any pod there, or anyone who may create one.
        ("rbac.requesters.groups[0]=system:serviceaccounts:default", "/rbac/requesters/groups/0"),
        ("rbac.approvers.groups[0]=system:serviceaccounts:kube-system", "/rbac/approvers/groups/0"),
        ("rbac.viewers.groups[0]=system:serviceaccounts:ci", "/rbac/viewers/groups/0"),
        # Every caller without credentials, where the API server lets them in.
        ("rbac.requesters.users[0]=system:anonymous", "/rbac/requesters/users/0"),
        ("rbac.viewers.users[0]=system:anonymous", "/rbac/viewers/users/0"),
        ("rbac.approvers.users[0]=system:anonymous", "/rbac/approvers/users/0"),
        # An approver is a person (as slack.approvers): not a pod's identity, nor a node's.
        ("rbac.approvers.users[0]=system:serviceaccount:ci:deployer", "/rbac/approvers/users/0"),
        ("rbac.approvers.users[0]=system:node:ip-10-0-0-1", "/rbac/approvers/users/0"),
        # On call for the operator: people too, under the same guards.
        ("rbac.operations.users[0]=system:serviceaccount:ci:deployer", "/rbac/operations/users/0"),
        ("rbac.operations.users[0]=system:anonymous", "/rbac/operations/users/0"),
        ("rbac.operations.groups[0]=system:authenticated", "/rbac/operations/groups/0"),
        ("rbac.operations.groups[0]=system:serviceaccounts:jitaccess", "/rbac/operations/groups/0"),
        ("rbac.operations.roles=[edit]", "additional properties 'roles' not allowed"),
        ("incidentResponders.groups[0]=system:authenticated", "/incidentResponders/groups/0"),
        ("incidentResponders.groups[0]=system:masters", "/incidentResponders/groups/0"),
        # The operator reads them comma-separated: this is two groups to it (tests/unit/test_chart_guards.py).
        ("incidentResponders.groups[0]=sre\\, platform", "/incidentResponders/groups/0"),
        # Intervals: a busy loop against the API server, one archive object per record.
        ("leaderElection.retryPeriodSeconds=0.01", "/leaderElection/retryPeriodSeconds"),
        ("audit.s3.batchSeconds=0.01", "/audit/s3/batchSeconds"),
        ("incidentResponders.users={alice@example.com}", "additional properties 'users' not allowed"),
        # Events say who has access: never sent in the clear.
        ("eventSink.url=http://siem.example.com/hook", "/eventSink/url"),
        ("eventSink.url=https://siem.example.com/hook", "eventSink.url needs eventSink.existingSecret"),
        # A Slack token is a bearer credential: plain http only to a proxy beside the operator, as it requires.
        ("slack.apiUrl=http://slack.com/api/", "/slack/apiUrl"),
        ("slack.apiUrl=http://127.0.0.1.example.com/api/", "/slack/apiUrl"),
        # An IP address, without brackets (the operator refuses anything else at start).
        ("bindAddress=localhost", "/bindAddress"),
        ("bindAddress=[::]", "/bindAddress"),
    ],
)
def test_schema_refuses_bad_values(helm: Helm, setting: str, complaint: str) -> None:
    result = helm.run("template", "jitaccess", str(CHART), "--set", setting, check=False)
    assert result.returncode != 0
    assert complaint in result.stderr


def test_the_schema_takes_named_identities(helm: Helm) -> None:
    """What the guards above leave: a named ServiceAccount as a viewer or requester (a dashboard, a
    bot), and groups that merely start like Kubernetes' own."""
    objects = documents(
        helm.template(
            set_values={
                "rbac.viewers.users[0]": "system:serviceaccount:monitoring:dashboard",
                "rbac.requesters.users[0]": "system:serviceaccount:ci:release-bot",
                "rbac.requesters.groups[0]": "system-engineers",
                "rbac.approvers.groups[0]": "system:serviceaccounts-admins",
            }
        )
    )
    assert find(objects, "ClusterRoleBinding", "jitaccess-viewer")["subjects"][0]["name"].endswith(":dashboard")
    assert (
        find(objects, "ClusterRoleBinding", "jitaccess-approver")["subjects"][0]["name"]
        == "system:serviceaccounts-admins"
    )


@pytest.mark.parametrize("url", ["https://slack.example.com/api/", "http://127.0.0.1:8080/api/", "http://[::1]/"])
def test_the_schema_takes_the_slack_urls_the_operator_takes(helm: Helm, url: str) -> None:
    (deployment,) = [
        o
        for o in documents(helm.template(values=[SLACK], set_values={"slack.apiUrl": url}))
        if o["kind"] == "Deployment"
    ]
    env = {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["JITACCESS_SLACK_API_URL"] == url
    require_https(url, "JITACCESS_SLACK_API_URL")


def test_the_event_sink_takes_its_signing_secret_from_a_secret(helm: Helm) -> None:
    objects = documents(
        helm.template(set_values={"eventSink.url": "https://siem.example.com/hook", "eventSink.existingSecret": "sink"})
    )
    (deployment,) = [o for o in objects if o["kind"] == "Deployment"]
    listed = {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert listed["JITACCESS_EVENT_SINK_URL"]["value"] == "https://siem.example.com/hook"
    assert listed["JITACCESS_EVENT_SINK_SECRET"]["valueFrom"]["secretKeyRef"] == {"name": "sink", "key": "secret"}
    assert "JITACCESS_EVENT_SINK_URL" not in env(documents(helm.template()))


def test_replicas_without_leader_election_are_refused(helm: Helm) -> None:
    result = helm.run("template", "jitaccess", str(CHART), "--set", "leaderElection.enabled=false", check=False)
    assert result.returncode != 0
    assert "replicaCount > 1 needs leaderElection.enabled" in result.stderr
    single = documents(
        helm.template(
            set_values={"leaderElection.enabled": "false", "replicaCount": "1", "podDisruptionBudget.enabled": "true"}
        )
    )
    assert env(single)["JITACCESS_LEADER_ELECTION"] == "false"
    assert "JITACCESS_LEASE_NAME" not in env(single)
    assert not [o for o in single if o["kind"] == "PodDisruptionBudget" or o["metadata"]["name"] == "jitaccess-lease"]
    # Without a Lease a new pod acts from its start: a rolling update would run two acting
    # operators side by side until the old one stopped.
    (deployment,) = [o for o in single if o["kind"] == "Deployment"]
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}


@pytest.mark.parametrize(
    ("settings", "complaint"),
    [
        # Two servers of the operator on one port: the second could not listen.
        (["metrics.port=8080"], "health.port and metrics.port are both 8080"),
        (["webhook.port=9090"], "metrics.port and webhook.port are both 9090"),
        (["webhook.port=8080"], "health.port and webhook.port are both 8080"),
        (
            ["slack.enabled=true", "slack.existingSecret=slack", "slack.interactions.port=9443"],
            "webhook.port and slack.interactions.port are both 9443",
        ),
        # The order the operator checks at start (jitaccess/settings.py): retry < renew deadline < lease.
        (["leaderElection.renewDeadlineSeconds=12"], "and they are 2, 12 and 12"),
        (["leaderElection.renewDeadlineSeconds=20"], "and they are 2, 20 and 12"),
        (["leaderElection.retryPeriodSeconds=8"], "and they are 8, 8 and 12"),
        (["leaderElection.retryPeriodSeconds=9", "leaderElection.leaseDurationSeconds=30"], "and they are 9, 8 and 30"),
        # A budget that keeps every replica up blocks every node drain.
        (["podDisruptionBudget.minAvailable=2"], "podDisruptionBudget.minAvailable is 2 with replicaCount 2"),
        (["replicaCount=3", "podDisruptionBudget.minAvailable=4"], "minAvailable is 4 with replicaCount 3"),
        (["podDisruptionBudget.minAvailable=100%"], "podDisruptionBudget.minAvailable is 100%: no replica"),
        (["podDisruptionBudget.minAvailable=two"], "/podDisruptionBudget/minAvailable"),
        # The operator refuses to start with a signing key and no archive to sign.
        (["audit.s3.signingKey=alias/jitaccess-audit"], "audit.s3.signingKey signs the batches of the audit archive"),
        # No CA for the webhook configurations (helm template cannot look the Secret's up): they
        # would fail closed, refusing every write and every replica's readiness.
        (
            ["webhook.certificate.existingSecret=jit-webhook-cert"],
            "webhook.certificate.existingSecret is jit-webhook-cert but the chart has no CA",
        ),
    ],
)
def test_values_that_cannot_work_are_refused(helm: Helm, settings: list[str], complaint: str) -> None:
    """Refused at render with a message naming the values and the fix, not installed to fail later."""
    args = [arg for setting in settings for arg in ("--set", setting)]
    result = helm.run("template", "jitaccess", str(CHART), *args, check=False)
    assert result.returncode != 0
    assert complaint in result.stderr


@pytest.mark.parametrize(
    "settings",
    [
        # A port no server uses is free for another.
        {"metrics.enabled": "false", "metrics.port": "8080"},
        {"webhook.enabled": "false", "webhook.port": "9090"},
        # Without leader election the operator reads no timing, and neither does the chart.
        {"leaderElection.enabled": "false", "replicaCount": "1", "leaderElection.renewDeadlineSeconds": "20"},
        # No budget is rendered for one replica, and one below the replicas lets drains go on.
        {"replicaCount": "1", "podDisruptionBudget.minAvailable": "1"},
        {"replicaCount": "3", "podDisruptionBudget.minAvailable": "2"},
        {"podDisruptionBudget.minAvailable": "50%"},
    ],
    ids=["metrics-off", "webhook-off", "no-election", "one-replica", "two-of-three", "percentage"],
)
def test_values_next_to_the_refused_ones_render(helm: Helm, settings: dict[str, str]) -> None:
    assert find(documents(helm.template(set_values=settings)), "Deployment")


def test_the_checks_mirror_the_operators_election_timing(helm: Helm, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the chart refuses, the operator would refuse at start; what it renders, the operator takes."""
    for key in [k for k in os.environ if k.startswith("JITACCESS_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("JITACCESS_LEADER_ELECTION", "true")
    for retry, renew, lease in ((2, 8, 12), (2, 12, 12), (8, 8, 12), (1, 2, 3), (3, 2, 4), (2, 8, 7)):
        timing = {
            "leaderElection.retryPeriodSeconds": str(retry),
            "leaderElection.renewDeadlineSeconds": str(renew),
            "leaderElection.leaseDurationSeconds": str(lease),
        }
        args = [arg for key, value in timing.items() for arg in ("--set", f"{key}={value}")]
        rendered = helm.run("template", "jitaccess", str(CHART), *args, check=False).returncode == 0
        for name, value in (("RETRY_PERIOD", retry), ("RENEW_DEADLINE", renew), ("LEASE_DURATION", lease)):
            monkeypatch.setenv(f"JITACCESS_{name}_SECONDS", str(value))
        try:
            Settings()
            starts = True
        except ValueError:
            starts = False
        assert rendered == starts, (retry, renew, lease)


def test_the_checks_mirror_the_operators_signing_key(helm: Helm, monkeypatch: pytest.MonkeyPatch) -> None:
    for key in [k for k in os.environ if k.startswith("JITACCESS_")]:
        monkeypatch.delenv(key)
    for bucket in ("", "audit-bucket"):
        settings = {"audit.s3.signingKey": "alias/jitaccess-audit", "audit.s3.bucket": bucket}
        rendered = helm.run("template", "jitaccess", str(CHART), *value_args(set_values=settings), check=False)
        monkeypatch.setenv("JITACCESS_AUDIT_SIGNING_KEY", "alias/jitaccess-audit")
        monkeypatch.setenv("JITACCESS_AUDIT_BUCKET", bucket)
        try:
            Settings()
            starts = True
        except ValueError:
            starts = False
        assert (rendered.returncode == 0) == starts, bucket
    assert starts and rendered.returncode == 0


# The chart's values of a time in seconds, by the setting each becomes; shutdownDelaySeconds is the
# pod's (its preStop sleep), no setting of the operator.
SECONDS_VALUES = {
    "config.pendingTimeoutSeconds": "JITACCESS_PENDING_TIMEOUT_SECONDS",
    "config.minDurationSeconds": "JITACCESS_MIN_DURATION_SECONDS",
    "config.retentionSeconds": "JITACCESS_RETENTION_SECONDS",
    "config.resyncSeconds": "JITACCESS_RESYNC_SECONDS",
    "config.eligibilityRecheckSeconds": "JITACCESS_ELIGIBILITY_RECHECK_SECONDS",
    "config.driftNoticesHoldDeletionSeconds": "JITACCESS_DRIFT_NOTICES_HOLD_DELETION_SECONDS",
    "audit.s3.batchSeconds": "JITACCESS_AUDIT_BATCH_SECONDS",
    "leaderElection.leaseDurationSeconds": "JITACCESS_LEASE_DURATION_SECONDS",
    "leaderElection.renewDeadlineSeconds": "JITACCESS_RENEW_DEADLINE_SECONDS",
    "leaderElection.retryPeriodSeconds": "JITACCESS_RETRY_PERIOD_SECONDS",
    "slack.expiringBeforeSeconds": "JITACCESS_NOTIFY_EXPIRING_BEFORE_SECONDS",
}
SLACK_ON = {"slack.enabled": "true", "slack.existingSecret": "slack"}


def _schema_properties(schema: dict[str, Any], path: str = "") -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for name, prop in schema.get("properties", {}).items():
        found[path + name] = prop
        found.update(_schema_properties(prop, f"{path}{name}."))
    return found


def test_the_schema_bounds_each_time_as_the_operator_does() -> None:
    """What the schema lets through, the operator takes: a longer time would stop every replica at start."""
    properties = _schema_properties(json.loads((CHART / "values.schema.json").read_text()))
    assert {p for p in properties if p.endswith("Seconds")} == set(SECONDS_VALUES) | {"shutdownDelaySeconds"}
    for path, variable in SECONDS_VALUES.items():
        field = Settings.model_fields[variable.removeprefix("JITACCESS_").lower()]
        (le,) = [m.le for m in field.metadata if isinstance(m, Le)]
        assert properties[path]["maximum"] == le, path


def test_the_longest_times_render_and_the_operator_takes_them(helm: Helm, monkeypatch: pytest.MonkeyPatch) -> None:
    longest = {path: str(TEN_YEARS) for path in SECONDS_VALUES}
    # In the order the election needs: retry < renew deadline < lease.
    longest["leaderElection.renewDeadlineSeconds"] = str(TEN_YEARS - 1)
    longest["leaderElection.retryPeriodSeconds"] = str(TEN_YEARS - 2)
    given = env(documents(helm.template(set_values={**SLACK_ON, **longest})))
    for key in [k for k in os.environ if k.startswith("JITACCESS_")]:
        monkeypatch.delenv(key)
    for path, variable in SECONDS_VALUES.items():
        assert float(given[variable]) == float(longest[path]), variable
        monkeypatch.setenv(variable, given[variable])
    monkeypatch.setenv("JITACCESS_LEADER_ELECTION", given["JITACCESS_LEADER_ELECTION"])
    assert Settings().retention_seconds == TEN_YEARS
    longer = {path: str(TEN_YEARS + 1) for path in SECONDS_VALUES}
    result = helm.run("template", "jitaccess", str(CHART), *value_args(set_values={**SLACK_ON, **longer}), check=False)
    assert result.returncode != 0
    for path in SECONDS_VALUES:
        assert f"at '/{path.replace('.', '/')}': maximum" in result.stderr, path


# --- what is rendered --------------------------------------------------------------------------


def test_default_objects(default: Objects) -> None:
    kinds = sorted(f"{o['kind']}/{o['metadata']['name']}" for o in default if o["kind"] != "CustomResourceDefinition")
    assert kinds == [
        "ClusterRole/jitaccess-approver",
        "ClusterRole/jitaccess-operator",
        "ClusterRole/jitaccess-requester",
        "ClusterRole/jitaccess-responder",
        "ClusterRole/jitaccess-viewer",
        "ClusterRoleBinding/jitaccess-operator",
        "Deployment/jitaccess",
        "MutatingWebhookConfiguration/jitaccess.dev",
        "PodDisruptionBudget/jitaccess",
        "Role/jitaccess-events",
        "Role/jitaccess-events-reader",
        "Role/jitaccess-lease",
        "Role/jitaccess-operations",
        "RoleBinding/jitaccess-events",
        "RoleBinding/jitaccess-lease",
        "Secret/jitaccess-webhook-tls",
        "Service/jitaccess-metrics",
        "Service/jitaccess-webhook",
        "ServiceAccount/jitaccess",
        "ValidatingAdmissionPolicy/jitaccess-identity",
        "ValidatingAdmissionPolicyBinding/jitaccess-identity",
        "ValidatingWebhookConfiguration/jitaccess.dev",
    ]
    for obj in default:
        if obj["kind"] in (
            "ServiceAccount",
            "Secret",
            "Service",
            "Deployment",
            "PodDisruptionBudget",
            "Role",
            "RoleBinding",
        ):
            assert obj["metadata"]["namespace"] == NAMESPACE


@pytest.mark.parametrize("which", ["default", "options"])
def test_restricted_pod_security(which: str, request: pytest.FixtureRequest) -> None:
    objects: Objects = request.getfixturevalue(which)
    pod = find(objects, "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    context = container(objects)["securityContext"]
    assert context["allowPrivilegeEscalation"] is False
    assert context["readOnlyRootFilesystem"] is True
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context.get("privileged", False) is False
    # A read-only root filesystem still needs a writable /tmp (Python's tempfile, boto3).
    assert {"name": "tmp", "mountPath": "/tmp"} in container(objects)["volumeMounts"]
    assert not [v for v in pod["volumes"] if "hostPath" in v]


def test_two_replicas_with_leader_election_by_default(default: Objects) -> None:
    deployment = find(default, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    variables = env(default)
    assert variables["JITACCESS_LEADER_ELECTION"] == "true"
    assert variables["JITACCESS_LEASE_NAME"] == "jitaccess"
    assert variables["JITACCESS_LEASE_NAMESPACE"] == NAMESPACE
    (identity,) = [
        e
        for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        if e["name"] == "JITACCESS_LEADER_IDENTITY"
    ]
    assert identity["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"  # each pod its own name in the Lease
    assert find(default, "PodDisruptionBudget")["spec"]["minAvailable"] == 1


def test_environment_from_values(options: Objects) -> None:
    variables = env(options)
    assert variables == {
        "JITACCESS_LEADER_ELECTION": "true",
        "JITACCESS_LEASE_NAME": "jit-prod",
        "JITACCESS_LEASE_NAMESPACE": NAMESPACE,
        "JITACCESS_LEADER_IDENTITY": "",  # the pod's name, from the downward API
        "JITACCESS_LEASE_DURATION_SECONDS": "12",
        "JITACCESS_RENEW_DEADLINE_SECONDS": "8",
        "JITACCESS_RETRY_PERIOD_SECONDS": "2",
        "JITACCESS_IDENTITY_STORE_ID": "d-1234567890",
        "JITACCESS_REGION": "eu-west-1",
        "JITACCESS_RATE_LIMIT": "5.5",
        "JITACCESS_PENDING_TIMEOUT_SECONDS": "3600",
        "JITACCESS_MAX_PENDING_PER_USER": "3",
        "JITACCESS_REQUESTS_PER_USER_PER_MINUTE": "12",
        "JITACCESS_APPROVAL_REQUESTS_PER_USER_PER_HOUR": "6",
        "JITACCESS_MIN_DURATION_SECONDS": "300",
        "JITACCESS_RETENTION_SECONDS": "2592000",
        "JITACCESS_RESYNC_SECONDS": "120",
        "JITACCESS_ELIGIBILITY_RECHECK_SECONDS": "600",
        "JITACCESS_REMOVE_UNBACKED_MEMBERS": "false",
        "JITACCESS_DRIFT_NOTICES_HOLD_DELETION_SECONDS": "7200",
        "JITACCESS_LOG_FORMAT": "text",
        "JITACCESS_RESPONDER_GROUPS": "sre-oncall",
        "JITACCESS_AUDIT_BUCKET": "jit-audit-archive",
        "JITACCESS_AUDIT_PREFIX": "prod/jitaccess",
        "JITACCESS_AUDIT_REGION": "eu-central-1",
        "JITACCESS_AUDIT_BATCH_RECORDS": "200",
        "JITACCESS_AUDIT_BATCH_SECONDS": "2.5",
        "JITACCESS_BIND_ADDRESS": "::",
        "JITACCESS_METRICS_PORT": "9191",
        "JITACCESS_WEBHOOK_PORT": "8443",
        "JITACCESS_WEBHOOK_SERVICE": f"{NAMESPACE}/jit-webhook",
        "JITACCESS_WEBHOOK_CERTFILE": "/etc/jitaccess/webhook/tls.crt",
        "JITACCESS_WEBHOOK_KEYFILE": "/etc/jitaccess/webhook/tls.key",
        "JITACCESS_WEBHOOK_CAFILE": "/etc/jitaccess/webhook/ca.crt",
        "JITACCESS_WEBHOOK_MANAGED": "false",
        "JITACCESS_WEBHOOK_CONFIGURATION": "jit.example.com",
        "JITACCESS_ADMISSION_POLICY": "jit-identity",
        "AWS_STS_REGIONAL_ENDPOINTS": "regional",
    }


@pytest.mark.parametrize("which", ["default", "options"])
def test_operator_reads_every_variable_the_chart_sets(
    which: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A misspelt JITACCESS_* name would be ignored silently (extra="ignore"): check each one. As in
    the pod: the leader identity is the pod's name, and each file setting names a mounted file."""
    objects: Objects = request.getfixturevalue(which)
    known = {f"JITACCESS_{name.upper()}" for name in Settings.model_fields}
    ours = {k: v for k, v in env(objects).items() if k.startswith("JITACCESS_")}
    assert set(ours) <= known, f"not operator settings: {sorted(set(ours) - known)}"
    for key in [k for k in os.environ if k.startswith("JITACCESS_")]:
        monkeypatch.delenv(key)
    for key, value in ours.items():
        if key == "JITACCESS_LEADER_IDENTITY":
            assert value == ""  # from the downward API, which the render leaves to the kubelet
            value = "jitaccess-6d4f7b9c5-x2k8p"
        elif key.removeprefix("JITACCESS_").lower() in FILE_SETTINGS:
            mounted = tmp_path / value.lstrip("/")
            mounted.parent.mkdir(parents=True, exist_ok=True)
            mounted.write_text("mounted")
            value = str(mounted)
        monkeypatch.setenv(key, value)
    settings = Settings()
    assert settings.leader_election is True
    assert settings.metrics_port == int(ours["JITACCESS_METRICS_PORT"])
    assert settings.webhook_port == int(ours["JITACCESS_WEBHOOK_PORT"])
    assert settings.retention_seconds == float(ours["JITACCESS_RETENTION_SECONDS"])
    assert settings.drift_notices_hold_deletion_seconds == float(ours["JITACCESS_DRIFT_NOTICES_HOLD_DELETION_SECONDS"])


@pytest.mark.parametrize("which", ["default", "options"])
def test_probes_use_kopf_liveness_endpoint(which: str, request: pytest.FixtureRequest) -> None:
    objects: Objects = request.getfixturevalue(which)
    operator = container(objects)
    ports = {p["name"]: p["containerPort"] for p in operator["ports"]}
    assert operator["command"] == ["python", "-m", "jitaccess"]
    # No host: the operator's /healthz listens on the bind address (jitaccess.main.liveness_endpoint).
    assert operator["args"] == ["--liveness", f"http://:{ports['health']}/healthz"]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert operator[probe]["httpGet"] == {"path": "/healthz", "port": "health"}


def test_the_servers_listen_everywhere_unless_an_address_is_given(helm: Helm, default: Objects) -> None:
    """Every address, IPv4 and IPv6, by default: an IPv6-only cluster probes and calls the pod at its
    IPv6 address. An address given is the operator's setting, which it accepts."""
    assert "JITACCESS_BIND_ADDRESS" not in env(default)
    for address in ("0.0.0.0", "::", "fd00:ec2::23"):
        rendered = env(documents(helm.template(set_values={"bindAddress": address})))
        assert rendered["JITACCESS_BIND_ADDRESS"] == address
        assert Settings(bind_address=rendered["JITACCESS_BIND_ADDRESS"]).bind_address == address


def test_a_stopping_pod_keeps_serving_while_its_endpoint_is_removed(helm: Helm, options: Objects) -> None:
    """A preStop sleep before SIGTERM (the native action, on every Kubernetes the chart installs on);
    the operator's 30 s to stop come after it."""
    for version in ("1.30.0", "1.35.4"):
        objects = documents(helm.run("template", "jitaccess", str(CHART), "--kube-version", version).stdout)
        assert container(objects)["lifecycle"] == {"preStop": {"sleep": {"seconds": 5}}}, version
        assert find(objects, "Deployment")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 35
    assert container(options)["lifecycle"]["preStop"]["sleep"] == {"seconds": 10}
    assert find(options, "Deployment")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 40
    at_once = documents(helm.template(set_values={"shutdownDelaySeconds": "0"}))
    assert "lifecycle" not in container(at_once)
    assert find(at_once, "Deployment")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 30


def test_image(default: Objects, options: Objects) -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert container(default)["image"] == f"jitaccess:{chart['appVersion']}"
    assert container(options)["image"].startswith("registry.example.com/platform/jitaccess@sha256:")
    assert find(options, "Deployment")["spec"]["template"]["spec"]["imagePullSecrets"] == [
        {"name": "registry-credentials"}
    ]


def test_service_account_for_irsa(options: Objects) -> None:
    account = find(options, "ServiceAccount", "jit-operator")
    assert account["metadata"]["annotations"] == {
        "eks.amazonaws.com/role-arn": "arn:aws:iam::111122223333:role/jitaccess-operator"
    }
    assert find(options, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == "jit-operator"
    (subject,) = find(options, "ClusterRoleBinding", "jit-operator")["subjects"]
    assert subject == {"kind": "ServiceAccount", "name": "jit-operator", "namespace": NAMESPACE}


# --- webhook -----------------------------------------------------------------------------------


def _verify_signed_by(cert: x509.Certificate, ca: x509.Certificate) -> None:
    key = ca.public_key()
    assert cert.signature_hash_algorithm is not None
    if isinstance(key, rsa.RSAPublicKey):
        key.verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(), cert.signature_hash_algorithm)
    else:
        assert isinstance(key, ec.EllipticCurvePublicKey)
        key.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(cert.signature_hash_algorithm))


def test_generated_webhook_certificate(default: Objects) -> None:
    secret = find(default, "Secret", "jitaccess-webhook-tls")
    assert secret["type"] == "kubernetes.io/tls"
    data = {k: base64.b64decode(v) for k, v in secret["data"].items()}
    ca = x509.load_pem_x509_certificate(data["ca.crt"])
    cert = x509.load_pem_x509_certificate(data["tls.crt"])
    _verify_signed_by(cert, ca)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    assert f"jitaccess-webhook.{NAMESPACE}.svc" in names
    assert cert.not_valid_after_utc > datetime.now(UTC) + timedelta(days=3000)
    assert b"PRIVATE KEY" in data["tls.key"]
    # Computed once per render: the checksum that restarts the pods is of this very certificate.
    rendered = "\n".join(f"{key}: {secret['data'][key]}" for key in sorted(secret["data"]))
    annotations = find(default, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["checksum/webhook-tls"] == hashlib.sha256(rendered.encode()).hexdigest()


def test_webhook_service_and_mount(default: Objects) -> None:
    service = find(default, "Service", "jitaccess-webhook")
    assert service["spec"]["ports"] == [{"name": "https", "port": 443, "targetPort": "webhook", "protocol": "TCP"}]
    assert service["spec"]["selector"] == find(default, "Deployment")["spec"]["selector"]["matchLabels"]
    operator = container(default)
    assert {"name": "webhook", "containerPort": 9443, "protocol": "TCP"} in operator["ports"]
    mount = next(m for m in operator["volumeMounts"] if m["name"] == "webhook-tls")
    assert mount == {"name": "webhook-tls", "mountPath": "/etc/jitaccess/webhook", "readOnly": True}
    assert env(default)["JITACCESS_WEBHOOK_CERTFILE"].startswith(mount["mountPath"] + "/")


def test_existing_webhook_secret(options: Objects) -> None:
    assert not [o for o in options if o["kind"] == "Secret"]
    volumes = find(options, "Deployment")["spec"]["template"]["spec"]["volumes"]
    assert {"name": "webhook-tls", "secret": {"secretName": "jit-webhook-cert", "defaultMode": 0o440}} in volumes
    assert "checksum/webhook-tls" not in find(options, "Deployment")["spec"]["template"]["metadata"]["annotations"]


def test_existing_webhook_secret_with_its_ca(helm: Helm, options: Objects) -> None:
    ca = base64.b64encode(b"-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n").decode()
    settings = {"webhook.certificate.existingSecret": "jit-webhook-cert", "webhook.certificate.caBundle": ca}
    given = [o for o in documents(helm.template(set_values=settings)) if o["kind"].endswith("WebhookConfiguration")]
    assert len(given) == 2
    assert {w["clientConfig"]["caBundle"] for o in given for w in o["webhooks"]} == {ca}
    # With cert-manager's injector, the chart leaves the CA to it.
    injected = [o for o in options if o["kind"].endswith("WebhookConfiguration")]
    assert len(injected) == 2
    for configuration in injected:
        assert configuration["metadata"]["annotations"] == {
            "cert-manager.io/inject-ca-from": "jitaccess-system/jit-webhook-cert"
        }
        assert not [w for w in configuration["webhooks"] if "caBundle" in w["clientConfig"]]


def test_webhooks_off(helm: Helm) -> None:
    objects = documents(helm.template(set_values={"webhook.enabled": "false"}))
    assert env(objects)["JITACCESS_WEBHOOK_PORT"] == "0"
    assert not [o for o in objects if o["kind"] == "Secret" or o["metadata"]["name"].endswith("-webhook")]
    operator_rules = rules(objects, "jitaccess-operator")
    assert not [r for r in operator_rules if "admissionregistration.k8s.io" in r["apiGroups"]]


# --- RBAC --------------------------------------------------------------------------------------


def _can(rule_list: list[dict[str, Any]], verb: str, group: str, resource: str, name: str | None = None) -> bool:
    return any(
        group in rule["apiGroups"]
        and resource in rule["resources"]
        and verb in rule["verbs"]
        and (rule.get("resourceNames") is None or name in rule["resourceNames"])
        for rule in rule_list
    )


def test_no_wildcards_in_any_role(default: Objects, options: Objects) -> None:
    for obj in (o for o in default + options if o["kind"] == "ClusterRole"):
        for rule in obj["rules"]:
            for key in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule[key], f"{obj['metadata']['name']}: wildcard in {key}"


def test_operator_role(default: Objects) -> None:
    operator = rules(default, "jitaccess-operator")
    group = "jitaccess.dev"
    for kind in ("teamownerships", "entitlements", "accessrequests", "accessgrants"):
        for verb in ("get", "list", "watch", "patch"):
            assert _can(operator, verb, group, kind)
        assert _can(operator, "patch", group, f"{kind}/status")
        assert not _can(operator, "update", group, kind)
    assert _can(operator, "create", group, "accessgrants")
    assert not _can(operator, "create", group, "accessrequests")
    assert _can(operator, "watch", "apiextensions.k8s.io", "customresourcedefinitions")
    # Events: kopf posts those of the cluster-scoped kinds in the operator's own namespace (its
    # ServiceAccount token's), and only creates them: nowhere else, and no events.k8s.io.
    assert not [r for r in operator if "events" in r["resources"]]
    events = find(default, "Role", "jitaccess-events")
    assert events["metadata"]["namespace"] == NAMESPACE
    assert events["rules"] == [{"apiGroups": [""], "resources": ["events"], "verbs": ["create"]}]
    binding = find(default, "RoleBinding", "jitaccess-events")
    assert binding["metadata"]["namespace"] == NAMESPACE
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "jitaccess-events"}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "jitaccess", "namespace": NAMESPACE}]
    assert not _can(operator, "get", "kopf.dev", "clusterkopfpeerings")
    election = find(default, "Role", "jitaccess-lease")["rules"]
    assert _can(election, "create", "coordination.k8s.io", "leases")
    assert _can(election, "update", "coordination.k8s.io", "leases", "jitaccess")
    assert not _can(election, "update", "coordination.k8s.io", "leases", "someone-else")
    assert not _can(election, "delete", "coordination.k8s.io", "leases", "jitaccess")
    webhooks = "admissionregistration.k8s.io"
    for kind in ("validatingwebhookconfigurations", "mutatingwebhookconfigurations"):
        # The chart installs them; the operator checks them, and cannot change its own checks.
        assert _can(operator, "get", webhooks, kind, "jitaccess.dev")
        assert not _can(operator, "get", webhooks, kind, "another-webhook")
        for verb in ("create", "patch", "update", "delete"):
            assert not _can(operator, verb, webhooks, kind, "jitaccess.dev")


def test_user_roles(default: Objects) -> None:
    group = "jitaccess.dev"
    viewer, requester, approver = (rules(default, f"jitaccess-{r}") for r in ("viewer", "requester", "approver"))
    for role in (viewer, requester, approver):
        for kind in ("teamownerships", "entitlements", "accessrequests", "accessgrants"):
            assert _can(role, "list", group, kind)
            assert not _can(role, "patch", group, f"{kind}/status"), "status is the operator's alone"
        assert not _can(role, "create", group, "accessgrants"), "grants are the operator's alone"
        for kind in ("teamownerships", "entitlements"):
            assert not [verb for verb in ("create", "patch", "update", "delete") if _can(role, verb, group, kind)]
    assert not [r for r in viewer if set(r["verbs"]) - {"get", "list", "watch"}]
    assert _can(requester, "create", group, "accessrequests")
    # To withdraw a pending request: the webhook refuses anyone's but the requester's (and approvers').
    assert _can(requester, "delete", group, "accessrequests")
    assert _can(approver, "delete", group, "accessrequests")
    assert not _can(viewer, "delete", group, "accessrequests")
    assert not _can(requester, "patch", group, "accessrequests"), "a requester never approves"
    assert _can(requester, "patch", group, "accessgrants"), "a grantee may end their own access"
    assert not _can(requester, "delete", group, "accessgrants")
    assert _can(approver, "patch", group, "accessrequests")
    assert _can(approver, "delete", group, "accessgrants")
    for role in (requester, approver):
        assert _can(role, "create", "authentication.k8s.io", "selfsubjectreviews")


def test_the_responder_role_ends_access_and_keeps_the_records(default: Objects) -> None:
    group, responder = "jitaccess.dev", rules(default, "jitaccess-responder")
    for kind in ("accessrequests", "accessgrants", "accessextensions"):
        for verb in ("get", "list", "watch", "patch"):
            assert _can(responder, verb, group, kind)
        assert not _can(responder, "create", group, kind)
        assert not _can(responder, "update", group, kind)
        assert not _can(responder, "patch", group, f"{kind}/status")
    assert _can(responder, "delete", group, "accessrequests"), "to withdraw a request not granted yet"
    assert not _can(responder, "delete", group, "accessgrants"), "a grant is the record of that access"
    assert not _can(responder, "delete", group, "accessextensions"), "an extension is a record of its grant"
    for kind in ("teamownerships", "entitlements", "permissioncatalogs"):
        assert _can(responder, "list", group, kind)
        assert not [v for v in ("create", "patch", "update", "delete") if _can(responder, v, group, kind)]


def test_incident_responders_reach_the_operator_and_their_binding(helm: Helm, default: Objects) -> None:
    assert "JITACCESS_RESPONDER_GROUPS" not in env(default)
    assert not [o for o in default if o["metadata"]["name"] == "jitaccess-responder" and o["kind"].endswith("Binding")]
    objects = documents(
        helm.template("jitaccess", NAMESPACE, set_values={"incidentResponders.groups": "{sre-oncall,security-ir}"})
    )
    assert env(objects)["JITACCESS_RESPONDER_GROUPS"] == "sre-oncall,security-ir"
    binding = find(objects, "ClusterRoleBinding", "jitaccess-responder")
    assert binding["roleRef"]["name"] == "jitaccess-responder"
    assert [(s["kind"], s["name"]) for s in binding["subjects"]] == [("Group", "sre-oncall"), ("Group", "security-ir")]


def test_user_roles_mirror_the_example(default: Objects) -> None:
    """examples/rbac.yaml and the chart grant users the same (the chart's names follow the release,
    the example's are dev-only ones)."""
    example = {
        o["metadata"]["name"]: o["rules"] for o in documents(EXAMPLE_RBAC.read_text()) if o["kind"] == "ClusterRole"
    }

    def normal(rule_list: list[dict[str, Any]]) -> list[dict[str, list[str]]]:
        return sorted(({k: sorted(v) for k, v in rule.items()} for rule in rule_list), key=repr)

    for role in ("viewer", "requester", "approver", "responder"):
        assert normal(rules(default, f"jitaccess-{role}")) == normal(example[f"jitaccess-dev-{role}"]), role


#: With values/SLACK, every option that adds an object of a name of its own.
EVERY_NAMED_OBJECT = {
    "rbac.viewers.groups[0]": "auditors",
    "rbac.requesters.groups[0]": "engineering",
    "rbac.approvers.users[0]": "alice@example.com",
    "incidentResponders.groups[0]": "sre-oncall",
    "rbac.operations.groups[0]": "platform-oncall",
}


def local_objects() -> Objects:
    """Every object the local run (`make dev`, the test tiers) creates but the CRDs and the webhook
    configurations: what it applies from examples/ (`kubectl apply -f examples/`: rbac.yaml, the
    teams, the admission policy), the Slack impersonator's ClusterRole and binding
    (devenv.slack_identity), and the operator's Namespace and ServiceAccount (devenv.controlplane)."""
    applied = [o for path in sorted(EXAMPLES.glob("*.yaml")) for o in documents(path.read_text())]
    namespace, account = OPERATOR_ACCOUNT
    identity: Objects = [
        {"kind": "Namespace", "metadata": {"name": namespace}},
        {"kind": "ServiceAccount", "metadata": {"name": account, "namespace": namespace}},
    ]
    return applied + slack_identity.objects(slack_identity.example_teams()) + identity


def test_the_local_run_shares_no_name_with_the_chart(helm: Helm) -> None:
    """The local run's RBAC has a wider operator role than the chart's (Leases in every namespace,
    `create` on any webhook configuration). examples/rbac.yaml named that role and its binding
    `jitaccess-operator` and bound the chart's ServiceAccount `jitaccess/jitaccess`, and devenv named
    the Slack impersonator's ClusterRole and binding `jitaccess-slack-impersonator`: applied to a
    cluster with the chart, they replaced the chart's objects and widened the production operator's
    rights. Their names are dev-only now: none is a name the chart renders, with every option that
    adds a named object on, in the test namespace and in the docs' (`jitaccess`), and none binds a
    ServiceAccount of the chart's name in any namespace.

    Shared by design, and so not here: the CRDs, which are the API's (the chart carries them
    unchanged), and the webhook configurations `jitaccess.dev`, which the local operator applies
    itself: one operator serves a cluster's jitaccess.dev objects, a local one or the chart's."""
    chart = [
        o
        for namespace in (NAMESPACE, "jitaccess")
        for o in documents(helm.template("jitaccess", namespace, values=[SLACK], set_values=EVERY_NAMED_OBJECT))
    ]
    names = {o["metadata"]["name"] for o in chart}
    roles = ("viewer", "requester", "approver", "responder", "operator", "slack-impersonator")
    assert {f"jitaccess-{r}" for r in roles} | {"jitaccess-lease", "jitaccess-slack"} <= names, sorted(names)
    chart_accounts = {o["metadata"]["name"] for o in chart if o["kind"] == "ServiceAccount"} | {
        s["name"] for o in chart for s in o.get("subjects", []) if s["kind"] == "ServiceAccount"
    }
    assert {"jitaccess", "jitaccess-slack"} <= chart_accounts, chart_accounts

    local = local_objects()
    assert {"ClusterRole", "ClusterRoleBinding", "ServiceAccount"} <= {o["kind"] for o in local}
    shared = sorted(f"{o['kind']}/{o['metadata']['name']}" for o in local if o["metadata"]["name"] in names)
    assert not shared, f"the local run creates objects of the chart's names: {shared}"
    accounts = [
        (s["namespace"], s["name"]) for o in local for s in o.get("subjects", []) if s["kind"] == "ServiceAccount"
    ]
    assert not [a for a in accounts if a[1] in chart_accounts], f"the local run binds the chart's {accounts}"
    # The identity the local run and the tests create (devenv.controlplane) is the one the example binds.
    assert accounts == [OPERATOR_ACCOUNT]


def test_example_bindings_name_people_not_everyone() -> None:
    """examples/rbac.yaml binds named users, never a group every ServiceAccount is in (docs/rbac.md)."""
    bindings = [o for o in documents(EXAMPLE_RBAC.read_text()) if o["kind"] == "ClusterRoleBinding"]
    people = [s for b in bindings if b["roleRef"]["name"] != "jitaccess-dev-operator" for s in b["subjects"]]
    assert people and {s["kind"] for s in people} == {"User", "Group"}
    assert not [s for s in people if s["name"].startswith("system:")]
    groups = {b["roleRef"]["name"]: s["name"] for b in bindings for s in b["subjects"] if s["kind"] == "Group"}
    assert groups == {"jitaccess-dev-responder": "sre-oncall"}, "only the responders, by a named group"


def test_optional_bindings(default: Objects, options: Objects) -> None:
    assert [o["metadata"]["name"] for o in default if o["kind"] == "ClusterRoleBinding"] == ["jitaccess-operator"]
    approvers = find(options, "ClusterRoleBinding", "jit-approver")
    assert approvers["roleRef"]["name"] == "jit-approver"
    assert {(s["kind"], s["name"]) for s in approvers["subjects"]} == {
        ("User", "alice@example.com"),
        ("Group", "tech-leads"),
    }
    assert find(options, "ClusterRoleBinding", "jit-requester")["subjects"] == [
        {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "engineering"}
    ]


def _subjects(binding: dict[str, Any]) -> set[tuple[str, str]]:
    return {(s["kind"], s["name"]) for s in binding["subjects"]}


def test_everyone_bound_reads_the_events(helm: Helm, default: Objects, options: Objects) -> None:
    """The jitaccess objects are cluster-scoped and their Events are in the release's namespace,
    where no user role could read them: `kubectl get events` answered Forbidden, and the warnings
    approvers act on (DecisionIgnored, NotEligible, Failed) were the cluster administrators' alone.
    The Role reads Events there, nothing else, and binds everyone the user ClusterRoles bind."""
    role = find(default, "Role", "jitaccess-events-reader")
    assert role["metadata"]["namespace"] == NAMESPACE
    assert role["rules"] == [
        {"apiGroups": ["", "events.k8s.io"], "resources": ["events"], "verbs": ["get", "list", "watch"]}
    ]
    assert not [o for o in default if o["kind"] == "RoleBinding" and o["metadata"]["name"].endswith("-reader")]
    binding = find(options, "RoleBinding", "jit-events-reader")
    assert binding["metadata"]["namespace"] == NAMESPACE
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "jit-events-reader"}
    user_roles = [f"jit-{r}" for r in ("viewer", "requester", "approver", "responder")]
    bound = set().union(*(_subjects(find(options, "ClusterRoleBinding", r)) for r in user_roles))
    # On call for the operator reads them too: ExpiryOverdue says which IAM action to allow.
    bound |= _subjects(find(options, "RoleBinding", "jit-operations"))
    assert (
        _subjects(binding)
        == bound
        == {
            ("Group", "auditors"),
            ("Group", "engineering"),
            ("Group", "tech-leads"),
            ("User", "alice@example.com"),
            ("Group", "sre-oncall"),
            ("Group", "platform-oncall"),
        }
    )
    assert len(binding["subjects"]) == len(bound), "each once"
    # The approvers a Slack click acts as are bound by name, and read the Events too.
    slack = documents(helm.template(values=[SLACK]))
    assert _subjects(find(slack, "RoleBinding", "jitaccess-events-reader")) == _subjects(
        find(slack, "ClusterRoleBinding", "jitaccess-approver")
    )
    # The local run's copy (examples/rbac.yaml): the same rule, in the namespace its operator posts
    # them in (`default`: its kubeconfig names none), for everyone its bindings name.
    example = documents(EXAMPLE_RBAC.read_text())
    local = find(example, "Role", "jitaccess-dev-events-reader")
    assert local["rules"] == role["rules"] and local["metadata"]["namespace"] == "default"
    people = [
        o for o in example if o["kind"] == "ClusterRoleBinding" and o["roleRef"]["name"] != "jitaccess-dev-operator"
    ]
    local_binding = find(example, "RoleBinding", "jitaccess-dev-events-readers")
    assert local_binding["roleRef"]["name"] == "jitaccess-dev-events-reader"
    assert _subjects(local_binding) == set().union(*(_subjects(b) for b in people))


def test_the_operations_role_runs_the_operator_and_never_acts_as_it(helm: Helm, default: Objects) -> None:
    """On call for the operator reads its logs and Lease, scales it and deletes a pod (docs/operations.md),
    and gets none of the operator's powers, which edit or admin in the namespace give: a token of its
    ServiceAccount (its ClusterRole, its AWS role with IRSA) or of the Slack impersonator,
    impersonating it, exec into its pods or a pod of its own run as it, its Secrets."""
    role = find(default, "Role", "jitaccess-operations")
    assert role["metadata"]["namespace"] == NAMESPACE
    granted = role["rules"]
    assert _can(granted, "list", "", "pods") and _can(granted, "delete", "", "pods", "jitaccess-7d9-x")
    assert _can(granted, "get", "", "pods/log")
    assert _can(granted, "get", "coordination.k8s.io", "leases", "jitaccess")
    assert _can(granted, "get", "apps", "deployments", "jitaccess")
    assert _can(granted, "patch", "apps", "deployments/scale", "jitaccess")
    for verb, group, resource in (
        ("create", "", "pods"),
        ("create", "", "pods/exec"),
        ("get", "", "pods/exec"),
        ("create", "", "pods/attach"),
        ("create", "", "pods/portforward"),
        ("create", "", "pods/eviction"),
        ("get", "", "secrets"),
        ("list", "", "secrets"),
        ("create", "", "serviceaccounts/token"),
        ("impersonate", "", "serviceaccounts"),
        ("patch", "", "services"),
        ("patch", "apps", "deployments"),
        ("update", "coordination.k8s.io", "leases"),
        ("delete", "coordination.k8s.io", "leases"),
        ("patch", "", "configmaps"),
    ):
        assert not _can(granted, verb, group, resource, "jitaccess"), (verb, resource)
    # Someone else's Deployment or Lease in the namespace is not theirs to scale or read.
    assert not _can(granted, "patch", "apps", "deployments/scale", "other")
    assert not _can(granted, "get", "coordination.k8s.io", "leases", "other")
    assert not [r for r in granted if set(r["verbs"]) - {"get", "list", "delete", "patch"}]
    assert not [o for o in default if o["kind"] == "RoleBinding" and o["metadata"]["name"] == "jitaccess-operations"]
    objects = documents(
        helm.template(
            set_values={
                "rbac.operations.groups[0]": "platform-oncall",
                "rbac.operations.users[0]": "ann@example.com",
                "leaderElection.leaseName": "jit-leader",
            }
        )
    )
    binding = find(objects, "RoleBinding", "jitaccess-operations")
    assert binding["metadata"]["namespace"] == NAMESPACE
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "jitaccess-operations",
    }
    assert _subjects(binding) == {("Group", "platform-oncall"), ("User", "ann@example.com")}
    assert _can(
        find(objects, "Role", "jitaccess-operations")["rules"], "get", "coordination.k8s.io", "leases", "jit-leader"
    )
    # Not the roles of the jitaccess objects: on call for the operator decides nothing.
    assert not [
        o for o in objects if o["kind"] == "ClusterRoleBinding" and o["metadata"]["name"] != "jitaccess-operator"
    ]


# --- metrics and availability ------------------------------------------------------------------


def test_metrics_service_and_monitor(options: Objects, default: Objects) -> None:
    assert not [o for o in default if o["kind"] == "ServiceMonitor"]
    service = find(options, "Service", "jit-metrics")
    monitor = find(options, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"] == "metrics"
    assert {"name": "metrics", "containerPort": 9191, "protocol": "TCP"} in container(options)["ports"]


def test_alerts_as_a_prometheus_rule_of_the_releases_job(options: Objects, default: Objects) -> None:
    assert not [o for o in default if o["kind"] == "PrometheusRule"]
    rule = find(options, "PrometheusRule")
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    service = find(options, "Service", "jit-metrics")
    # files/alerts.yaml, every selector's job set to this release's metrics Service.
    shipped = (CHART / "files" / "alerts.yaml").read_text()
    expected = yaml.safe_load(shipped.replace('job="jitaccess-metrics"', f'job="{service["metadata"]["name"]}"'))
    assert rule["spec"] == expected
    assert 'job="jitaccess-metrics"' not in yaml.safe_dump(rule) and 'job="jit-metrics"' in yaml.safe_dump(rule)


def test_metrics_off(helm: Helm) -> None:
    objects = documents(helm.template(set_values={"metrics.enabled": "false"}))
    assert env(objects)["JITACCESS_METRICS_PORT"] == "0"
    assert not [o for o in objects if o["metadata"]["name"].endswith("-metrics")]


def test_pod_disruption_budget_only_with_replicas(helm: Helm, options: Objects) -> None:
    assert find(options, "PodDisruptionBudget")["spec"]["minAvailable"] == 2
    single = documents(helm.template(set_values={"replicaCount": "1"}))
    assert not [o for o in single if o["kind"] == "PodDisruptionBudget"]


def test_long_release_names_stay_valid(helm: Helm) -> None:
    release = "a-release-name-as-long-as-helm-allows-for-jit-access1"  # 53, the most helm takes
    for obj in documents(helm.template(release, NAMESPACE)):
        name = obj["metadata"]["name"]
        if obj["kind"] != "CustomResourceDefinition":
            # RBAC's names are any path segment, of any length (`<release>-events-reader`).
            most = 253 if obj["apiVersion"].startswith("rbac.") else 63
            assert len(name) <= most and re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", name), name


# --- network policy ----------------------------------------------------------------------------


def ingress_ports(policy: dict[str, Any]) -> dict[int, list[dict[str, Any]] | None]:
    """Each port the policy admits, with the peers it admits from (None: anyone)."""
    return {port["port"]: rule.get("from") for rule in policy["spec"]["ingress"] for port in rule["ports"]}


def egress(policy: dict[str, Any]) -> list[tuple[set[tuple[int, str]], list[dict[str, Any]] | None]]:
    """Each egress rule as (its ports and protocols, the peers it allows; None: anywhere)."""
    return [({(p["port"], p["protocol"]) for p in rule["ports"]}, rule.get("to")) for rule in policy["spec"]["egress"]]


def test_no_network_policy_unless_asked(default: Objects) -> None:
    assert not [o for o in default if o["kind"] == "NetworkPolicy"]


@pytest.mark.parametrize(
    ("values", "settings"),
    [([], {"networkPolicy.enabled": "true"}), ([OPTIONS], {}), ([SLACK], {"networkPolicy.enabled": "true"})],
    ids=["defaults", "options", "slack"],
)
def test_network_policy_admits_every_port_the_operator_serves_and_no_other(
    helm: Helm, values: list[Path], settings: dict[str, str]
) -> None:
    objects = documents(helm.template("jitaccess", NAMESPACE, values=values, set_values=settings))
    policy = find(objects, "NetworkPolicy")
    assert policy["metadata"]["namespace"] == NAMESPACE
    assert policy["spec"]["podSelector"] == find(objects, "Deployment")["spec"]["selector"]
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    served = {p["name"]: p["containerPort"] for p in container(objects)["ports"]}
    admitted = ingress_ports(policy)
    assert set(admitted) == set(served.values())
    # The API server's address is not predictable, nor the kubelet's probes' origin.
    assert admitted[served["webhook"]] is None
    assert admitted[served["health"]] is None


def test_network_policy_defaults(helm: Helm) -> None:
    policy = find(documents(helm.template(set_values={"networkPolicy.enabled": "true"})), "NetworkPolicy")
    assert ingress_ports(policy) == {8080: None, 9443: None, 9090: None}
    assert egress(policy) == [
        ({(53, "UDP"), (53, "TCP")}, None),
        ({(443, "TCP"), (6443, "TCP")}, None),  # the API server, wherever its endpoints are
        ({(443, "TCP")}, None),  # AWS and Slack
    ]


def test_network_policy_options(options: Objects) -> None:
    policy = find(options, "NetworkPolicy", "jit")
    assert ingress_ports(policy) == {
        8181: None,
        8443: None,
        9191: [
            {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
                "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
            }
        ],
    }
    assert egress(policy) == [
        ({(53, "UDP"), (53, "TCP")}, None),
        ({(443, "TCP")}, [{"ipBlock": {"cidr": "10.0.0.0/16"}}]),
        ({(443, "TCP")}, [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["169.254.169.254/32"]}}]),
        ({(3128, "TCP")}, [{"ipBlock": {"cidr": "10.20.0.10/32"}}]),  # extraEgress, as given
    ]


def test_network_policy_for_slack_clicks(helm: Helm) -> None:
    ingress = {"kubernetes.io/metadata.name": "ingress-nginx"}
    objects = documents(
        helm.template(
            values=[SLACK],
            set_values={
                "networkPolicy.enabled": "true",
                "networkPolicy.slack.from[0].namespaceSelector.matchLabels.kubernetes\\.io/metadata\\.name": (
                    "ingress-nginx"
                ),
            },
        )
    )
    admitted = ingress_ports(find(objects, "NetworkPolicy"))
    assert admitted[8091] == [{"namespaceSelector": {"matchLabels": ingress}}]
    messages_only = documents(
        helm.template(
            values=[SLACK], set_values={"networkPolicy.enabled": "true", "slack.interactions.enabled": "false"}
        )
    )
    assert 8091 not in ingress_ports(find(messages_only, "NetworkPolicy"))


def test_network_policy_can_keep_the_webhooks_to_the_api_servers_addresses(helm: Helm) -> None:
    control_plane = [{"ipBlock": {"cidr": "10.0.0.0/24"}}]
    narrowed = documents(
        helm.template(
            set_values={"networkPolicy.enabled": "true", "networkPolicy.webhook.from[0].ipBlock.cidr": "10.0.0.0/24"}
        )
    )
    assert ingress_ports(find(narrowed, "NetworkPolicy"))[9443] == control_plane
    anyone = documents(helm.template(set_values={"networkPolicy.enabled": "true"}))
    assert ingress_ports(find(anyone, "NetworkPolicy"))[9443] is None


def test_network_policy_follows_the_servers_turned_off(helm: Helm) -> None:
    settings = {"networkPolicy.enabled": "true", "webhook.enabled": "false", "metrics.enabled": "false"}
    policy = find(documents(helm.template(set_values=settings)), "NetworkPolicy")
    assert ingress_ports(policy) == {8080: None}


def test_network_policy_https_narrowed_to_extra_egress(helm: Helm) -> None:
    """Without HTTPS to anywhere, only what extraEgress names (VPC endpoints, a proxy) is reachable."""
    settings = {
        "networkPolicy.enabled": "true",
        "networkPolicy.https.enabled": "false",
        "networkPolicy.apiServer.cidrs[0]": "172.20.0.0/16",
        "networkPolicy.extraEgress[0].to[0].ipBlock.cidr": "10.0.8.0/24",
        "networkPolicy.extraEgress[0].ports[0].port": "443",
        "networkPolicy.extraEgress[0].ports[0].protocol": "TCP",
    }
    policy = find(documents(helm.template(set_values=settings)), "NetworkPolicy")
    assert egress(policy) == [
        ({(53, "UDP"), (53, "TCP")}, None),
        ({(443, "TCP"), (6443, "TCP")}, [{"ipBlock": {"cidr": "172.20.0.0/16"}}]),
        ({(443, "TCP")}, [{"ipBlock": {"cidr": "10.0.8.0/24"}}]),
    ]


@pytest.mark.parametrize(
    ("setting", "complaint"),
    [
        ("--set=networkPolicy.apiServer.cidrs[0]=kubernetes.default", "/networkPolicy/apiServer/cidrs/0"),
        # A rule without ports would allow every port.
        ("--set-json=networkPolicy.apiServer.ports=[]", "/networkPolicy/apiServer/ports"),
        ("--set=networkPolicy.apiServer.ports=null", "networkPolicy.apiServer.ports: the API server's ports"),
        ("--set=networkPolicy.metrics.from[0].podSelecter.app=prometheus", "/networkPolicy/metrics/from/0"),
        ("--set=networkPolicy.extraEgress[0].ports[0].protocol=ICMP", "/networkPolicy/extraEgress/0/ports/0/protocol"),
        ("--set=networkPolicy.ingress=true", "additional properties 'ingress' not allowed"),
    ],
)
def test_network_policy_values_are_checked(helm: Helm, setting: str, complaint: str) -> None:
    result = helm.run("template", "jitaccess", str(CHART), "--set=networkPolicy.enabled=true", setting, check=False)
    assert result.returncode != 0
    assert complaint in result.stderr


# --- the admission policy ----------------------------------------------------------------------


def test_admission_policy_named_after_the_release(helm: Helm, options: Objects) -> None:
    policy = find(options, "ValidatingAdmissionPolicy")
    binding = find(options, "ValidatingAdmissionPolicyBinding")
    assert policy["metadata"]["name"] == binding["metadata"]["name"] == "jit-identity"
    assert binding["spec"]["policyName"] == "jit-identity"
    assert binding["spec"]["validationActions"] == ["Deny"]
    example = [o for o in documents((REPO / "examples" / "admission-policy.yaml").read_text())]
    assert policy["spec"] == find(example, "ValidatingAdmissionPolicy")["spec"]
    # The operator checks them (attack 146): by name, and reading those two objects alone.
    assert env(options)["JITACCESS_ADMISSION_POLICY"] == "jit-identity"
    operator = rules(options, "jit-operator")
    for kind in ("validatingadmissionpolicies", "validatingadmissionpolicybindings"):
        assert _can(operator, "get", "admissionregistration.k8s.io", kind, "jit-identity")
        assert not _can(operator, "get", "admissionregistration.k8s.io", kind, "another-policy")
        for verb in ("list", "create", "patch", "update", "delete"):
            assert not _can(operator, verb, "admissionregistration.k8s.io", kind, "jit-identity"), verb
    # On every Kubernetes the chart installs on (1.30 on), and checked there.
    for version in ("1.30.0", "1.35.4"):
        rendered = documents(helm.run("template", "jitaccess", str(CHART), "--kube-version", version).stdout)
        assert len([o for o in rendered if o["kind"].startswith("ValidatingAdmissionPolicy")]) == 2, version
        assert env(rendered)["JITACCESS_ADMISSION_POLICY"] == "jitaccess-identity", version
        policies = [r for r in rules(rendered, "jitaccess-operator") if "validatingadmissionpolicies" in r["resources"]]
        assert len(policies) == 1, version
    # Checked where installed, and only there: not there, it would be reported missing for good.
    off = documents(helm.template(set_values={"admissionPolicy.enabled": "false"}))
    assert not [o for o in off if o["kind"].startswith("ValidatingAdmissionPolicy")]
    assert "JITACCESS_ADMISSION_POLICY" not in env(off)
    assert not [r for r in rules(off, "jitaccess-operator") if "validatingadmissionpolicies" in r["resources"]]


def test_admission_policy_holds_a_request_being_deleted(helm: Helm, options: Objects) -> None:
    """A withdrawn request or extension (a deletionTimestamp) takes no change but the operator's and
    the garbage collector's finalizers going, as the webhook rules (`admission.review_withdrawn`).
    The policy tells the operator by what RBAC gives it alone, patching the kind's status: the
    chart's and the local run's operator may, no other role of theirs may."""
    policy = find(options, "ValidatingAdmissionPolicy")["spec"]
    (held,) = [v for v in policy["validations"] if "oldObject.metadata.deletionTimestamp" in v["expression"]]
    assert "variables.isRequest && request.operation == 'UPDATE'" in held["expression"]
    assert "variables.onlyGcFinalizersGo" in held["expression"]
    assert "resource(request.resource.resource).subresource('status').check('patch')" in held["expression"]
    assert "was deleted at" in held["messageExpression"] and "create a new" in held["messageExpression"]
    assert held["reason"] == "Forbidden"
    gc = next(v for v in policy["variables"] if v["name"] == "onlyGcFinalizersGo")["expression"]
    assert "['orphan', 'foregroundDeletion']" in gc
    slack = documents(helm.template("jitaccess", NAMESPACE, values=[SLACK]))
    example = documents(EXAMPLE_RBAC.read_text())
    for objects, operator in (
        (options, "jit-operator"),
        (slack, "jitaccess-operator"),
        (example, "jitaccess-dev-operator"),
    ):
        for kind in ("accessrequests", "accessextensions"):
            assert _can(rules(objects, operator), "patch", "jitaccess.dev", f"{kind}/status"), operator
            others = [o for o in objects if o["kind"] in ("ClusterRole", "Role") and o["metadata"]["name"] != operator]
            for role in others:
                assert not _can(role.get("rules") or [], "patch", "jitaccess.dev", f"{kind}/status"), role["metadata"]
                assert not _can(role.get("rules") or [], "update", "jitaccess.dev", f"{kind}/status"), role["metadata"]


# --- the settings in docs/install.md ---------------------------------------------------------------

INSTALL = REPO / "docs" / "install.md"
DEPLOYMENT = CHART / "templates" / "deployment.yaml"


def _rows(text: str) -> list[list[str]]:
    """The cells of each table row of the settings in docs/install.md (its `## Values` section on)
    whose first cell is code: a chart value, or a variable."""
    section = text[text.index("## Values") :]
    return [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in section.splitlines()
        if line.startswith("| `")
    ]


def _says(default: str, value: object) -> bool:
    """Whether a table's default cell says `value`: its first word (a number, true or false, a name,
    a URL), or a note in parentheses (or `[]`) for a value left empty or unset."""
    if value in (None, "", [], {}):
        return default.startswith("(") or default == "[]"
    literal = default.split(" (")[0].strip("`")
    if isinstance(value, bool):
        return literal == str(value).lower()
    if isinstance(value, int | float):
        return literal == str(int(value) if float(value).is_integer() else value)
    return literal == str(value)


def settings_documented(text: str, values: dict[str, Any], template: str) -> list[str]:
    """What docs/install.md's settings tables get wrong, one sentence each: a setting of the operator
    in neither table, a variable that is no setting, a chart value that does not exist, is not what
    the template sets the variable from, or whose default is not values.yaml's, and a setting
    without a value whose default is not the operator's."""
    fields = Settings.model_fields
    problems, seen = [], set()
    lines = template.splitlines()
    for cells in _rows(text):
        first = cells[0].strip("`")
        charted = not first.startswith("JITACCESS_")
        variables = re.findall(r"`(JITACCESS_\w+)`", cells[1] if charted else cells[0])
        default = cells[2] if charted else cells[1]
        for variable in variables:
            seen.add(variable)
            if variable.removeprefix("JITACCESS_").lower() not in fields:
                problems.append(f"{variable}: no setting of the operator")
        if charted:
            value: Any = values
            for key in first.split("."):
                value = value.get(key, KeyError) if isinstance(value, dict) else KeyError
            if value is KeyError:
                problems.append(f"{first}: no such value in values.yaml")
                continue
            if not _says(default, value):
                problems.append(f"{first}: the default is {value!r} in values.yaml, not {default!r}")
            for variable in variables:
                at = [n for n, line in enumerate(lines) if line.strip() == f"- name: {variable}"]
                near = "\n".join(lines[at[0] - 2 : at[0] + 5]) if at else ""
                if f".Values.{first}" not in near and f'"jitaccess.{first.split(".")[-1]}"' not in near:
                    problems.append(f"{variable}: the chart does not set it from {first}")
        else:
            field = fields.get(first.removeprefix("JITACCESS_").lower())
            if field is not None and not _says(default, field.get_default(call_default_factory=True)):
                problems.append(f"{first}: the operator's default is {field.default!r}, not {default!r}")
    missing = sorted({f"JITACCESS_{name.upper()}" for name in fields} - seen)
    problems += [f"{variable}: in neither table" for variable in missing]
    return problems


def test_install_md_documents_every_setting_with_its_default() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert settings_documented(INSTALL.read_text(), values, DEPLOYMENT.read_text()) == []


def test_a_wrong_default_or_a_setting_left_out_is_found() -> None:
    text, values = INSTALL.read_text(), yaml.safe_load((CHART / "values.yaml").read_text())
    row = "| `JITACCESS_MAX_WORKERS` | 32 |"
    assert settings_documented(
        text.replace(row, "| `JITACCESS_MAX_WORKERS` | 16 |"), values, DEPLOYMENT.read_text()
    ) == ["JITACCESS_MAX_WORKERS: the operator's default is 32, not '16'"]
    renamed = text.replace("| `config.rateLimit` | `JITACCESS_RATE_LIMIT` |", "| `config.rateLimits` | |")
    assert settings_documented(renamed, values, DEPLOYMENT.read_text()) == [
        "config.rateLimits: no such value in values.yaml",
        "JITACCESS_RATE_LIMIT: in neither table",
    ]

"""Values a first install gets wrong: the chart refuses those that cannot work, and says in its NOTES
what it left out.

A PodDisruptionBudget whose percentage Kubernetes rounds up to every replica, a ServiceMonitor or
PrometheusRule asked for with metrics off, and a release named like the local run's own objects are
refused at render with the value and the fix (like the refusals of tests/unit/test_chart_render.py).
`rbac.create=false` is a choice, not a mistake (the platform team manages RBAC itself): the NOTES
then list every RBAC object the chart did not create, and the people it did not bind, so that
nothing goes missing unseen.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from devenv.controlplane import OPERATOR_ACCOUNT
from tests.helm.chart import CHART, Helm, documents, helm_binary, value_args
from tests.unit.test_chart_render import EVERY_NAMED_OBJECT, local_objects

OPTIONS = CHART / "ci" / "options-values.yaml"
SLACK = CHART / "ci" / "slack-values.yaml"
NAMESPACE = "jitaccess-system"
RBAC_KINDS = ("ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")


@pytest.fixture(scope="module")
def helm() -> Helm:
    return Helm(helm_binary())


def refusal(helm: Helm, settings: dict[str, str], release: str = "jitaccess") -> str:
    """The render's complaint; fails when it renders."""
    result = helm.run("template", release, str(CHART), *value_args(set_values=settings), check=False)
    assert result.returncode != 0, f"{settings} rendered"
    return result.stderr


# --- PodDisruptionBudget percentages -----------------------------------------------------------


def pods_kept(percent: int, replicas: int) -> int:
    """The pods a minAvailable percentage keeps, as the disruption controller computes it
    (intstr.GetScaledValueFromIntOrPercent with roundUp=true): int(math.Ceil(pct * total / 100))."""
    return math.ceil(percent * replicas / 100)


@pytest.mark.parametrize(
    ("replicas", "percent", "most"),
    [(2, 51, 50), (2, 60, 50), (2, 99, 50), (3, 67, 66), (7, 86, 85)],
)
def test_a_percentage_rounded_up_to_every_replica_is_refused(
    helm: Helm, replicas: int, percent: int, most: int
) -> None:
    """60% of 2 replicas is 2 pods: no eviction is ever allowed, and every node drain blocks."""
    assert pods_kept(percent, replicas) == replicas  # what Kubernetes would make of it
    complaint = refusal(helm, {"replicaCount": str(replicas), "podDisruptionBudget.minAvailable": f"{percent}%"})
    assert f"podDisruptionBudget.minAvailable is {percent}%: no replica could ever be evicted" in complaint
    assert f"{percent}% of replicaCount {replicas} is {replicas} pods" in complaint
    assert f"set it to {most}% or less" in complaint
    # The fix the message gives is the largest percentage that works.
    assert pods_kept(most, replicas) < replicas <= pods_kept(most + 1, replicas)


@pytest.mark.parametrize(("replicas", "percent"), [(2, 50), (3, 66), (7, 85), (2, 0)])
def test_a_percentage_that_lets_one_replica_go_renders(helm: Helm, replicas: int, percent: int) -> None:
    settings = {"replicaCount": str(replicas), "podDisruptionBudget.minAvailable": f"{percent}%"}
    (budget,) = [o for o in documents(helm.template(set_values=settings)) if o["kind"] == "PodDisruptionBudget"]
    assert budget["spec"]["minAvailable"] == f"{percent}%"
    assert pods_kept(percent, replicas) < replicas


def test_the_values_comment_says_how_a_percentage_is_rounded() -> None:
    comment = (CHART / "values.yaml").read_text().split("podDisruptionBudget:", 1)[1].split("minAvailable:", 1)[0]
    flat = " ".join(comment.replace("#", " ").lower().split())
    assert "rounds up" in flat and "at most 50% with 2 replicas" in flat, flat


# --- metrics ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("part", "kind"), [("serviceMonitor", "ServiceMonitor"), ("prometheusRule", "PrometheusRule")])
def test_a_monitor_or_rules_without_metrics_are_refused(helm: Helm, part: str, kind: str) -> None:
    """With metrics off the chart renders neither (there is no metrics Service): asked for, it says so."""
    complaint = refusal(helm, {"metrics.enabled": "false", f"metrics.{part}.enabled": "true"})
    assert f"metrics.{part}.enabled needs metrics.enabled" in complaint
    assert f"no {kind} would be created" in complaint
    assert f"set metrics.enabled=true, or metrics.{part}.enabled=false" in complaint
    objects = documents(helm.template(set_values={f"metrics.{part}.enabled": "true"}))
    assert [o["kind"] for o in objects].count(kind) == 1


# --- rbac.create=false: the NOTES say what is missing -------------------------------------------


def notes(helm: Helm, tmp_path: Path, values: list[Path], settings: dict[str, str]) -> str:
    """NOTES.txt as `helm install` prints it. `helm template` never renders NOTES.txt, and
    `helm install --dry-run` needs a cluster: a copy of the chart has its text as a named template,
    rendered by the same engine with the same values into a ConfigMap of its own."""
    chart = tmp_path / "chart"
    shutil.copytree(CHART, chart)
    text = (chart / "templates" / "NOTES.txt").read_text()
    (chart / "templates" / "NOTES.txt").unlink()
    (chart / "templates" / "_test_notes.tpl").write_text('{{- define "test.notes" -}}\n' + text + "{{- end }}\n")
    (chart / "templates" / "test-notes.yaml").write_text(
        'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: notes}\ndata:\n  notes: {{ include "test.notes" . | toJson }}\n'
    )
    args = ["template", "jitaccess", str(chart), "--namespace", NAMESPACE, *value_args(values, settings)]
    rendered = helm.run(*args, "--show-only", "templates/test-notes.yaml").stdout
    return str(yaml.safe_load(rendered)["data"]["notes"])


def rbac_objects(helm: Helm, values: list[Path], settings: dict[str, str]) -> list[dict[str, Any]]:
    rendered = helm.template("jitaccess", NAMESPACE, values=values, set_values=settings)
    return [o for o in documents(rendered) if o["kind"] in RBAC_KINDS]


@pytest.mark.parametrize(
    ("values", "settings"),
    [([], {}), ([OPTIONS], {}), ([SLACK], {}), ([], {"leaderElection.enabled": "false", "replicaCount": "1"})],
    ids=["defaults", "options", "slack", "no-election"],
)
def test_without_rbac_the_notes_list_every_object_the_chart_left_out(
    helm: Helm, tmp_path: Path, values: list[Path], settings: dict[str, str]
) -> None:
    """Whatever the chart creates with rbac.create, the NOTES name without it: a platform team that
    manages RBAC itself learns what to create, and a new RBAC object of the chart cannot be forgotten here."""
    off = {**settings, "rbac.create": "false"}
    assert rbac_objects(helm, values, off) == []
    missing = {f"{o['kind']}/{o['metadata']['name']}" for o in rbac_objects(helm, values, settings)}
    text = notes(helm, tmp_path, values, off)
    warning = text.split("WARNING: rbac.create=false.", 1)[1]
    assert "docs/install.md#managing-rbac-yourself" in warning
    lines = warning.splitlines()
    for entry in sorted(missing):
        kind, name = entry.split("/")
        assert any(kind in line and f" {name}" in line for line in lines), f"{entry} not in the NOTES:\n{warning}"
    assert "--set rbac.create=true --show-only templates/rbac-operator.yaml" in warning
    with_rbac = notes(helm, tmp_path / "on", values, settings)
    assert "rbac.create=false" not in with_rbac
    assert "Let people in: bind the ClusterRoles " in with_rbac


def test_without_rbac_the_notes_name_the_people_left_unbound(helm: Helm, tmp_path: Path) -> None:
    text = notes(helm, tmp_path, [OPTIONS, SLACK], {"rbac.create": "false"})
    assert "4. Create the RBAC (rbac.create=false" in text
    warning = text.split("WARNING: rbac.create=false.", 1)[1]
    assert "ClusterRoleBinding jit-viewer of the people in rbac.viewers: groups auditors\n" in warning
    assert "ClusterRoleBinding jit-requester of the people in rbac.requesters: groups engineering\n" in warning
    assert (
        "ClusterRoleBinding jit-approver of the people in rbac.approvers and slack.approvers: groups tech-leads; "
        "users alice@example.com, carol@example.com, lena@example.com, paula@example.com\n"
    ) in warning
    assert "ClusterRoleBinding jit-responder of the people in incidentResponders.groups: groups sre-oncall\n" in warning
    assert "jitaccess-system/jit-slack may impersonate the users of slack.approvers" in warning
    on_call = {"rbac.create": "false", "rbac.operations.groups[0]": "platform-oncall"}
    operations = notes(helm, tmp_path / "ops", [], on_call).split("WARNING: rbac.create=false.", 1)[1]
    assert (
        "RoleBinding jitaccess-operations in jitaccess-system of the people in rbac.operations: groups platform-oncall\n"
    ) in operations
    # Nobody listed: no binding was left out, and none is named.
    bare = notes(helm, tmp_path / "bare", [], {"rbac.create": "false"})
    assert "of the people in" not in bare


# --- the local run's names ----------------------------------------------------------------------


def clashing_full_names(helm: Helm) -> set[str]:
    """The full names under which the chart would render an object of a kind and name the local run
    creates: the chart's names are the full name, or the full name and a suffix of its own."""
    marker = "marker-name"
    rendered = documents(helm.template(values=[SLACK], set_values={**EVERY_NAMED_OBJECT, "fullnameOverride": marker}))
    suffixes = {
        (o["kind"], o["metadata"]["name"].removeprefix(marker))
        for o in rendered
        if o["metadata"]["name"].startswith(marker)
    }
    return {
        o["metadata"]["name"].removesuffix(suffix)
        for o in local_objects()
        for kind, suffix in suffixes
        if o["kind"] == kind and o["metadata"]["name"].endswith(suffix) and o["metadata"]["name"] != suffix
    }


def test_a_release_with_the_local_runs_names_is_refused(helm: Helm) -> None:
    """examples/ and devenv name their ClusterRoles, bindings and ServiceAccount jitaccess-dev and
    jitaccess-dev-*, their admission policy jitaccess.dev-identity (tests/unit/test_chart_render.py
    keeps them off the chart's names): a release of the full name jitaccess-dev (or jitaccess.dev)
    would render them, and each would replace the other's."""
    assert clashing_full_names(helm) == {"jitaccess-dev", "jitaccess.dev"}
    for release, settings, full in (
        ("jitaccess-dev", {}, "jitaccess-dev"),
        ("jitaccess", {"nameOverride": "dev"}, "jitaccess-dev"),
        ("payments", {"fullnameOverride": "jitaccess-dev"}, "jitaccess-dev"),
        ("jitaccess.dev", {}, "jitaccess.dev"),
    ):
        complaint = refusal(helm, settings, release)
        assert f"the release's full name is {full} (from the release name" in complaint, complaint
        assert "choose another release name, or set fullnameOverride" in complaint
    for release in ("jitaccess", "jitaccess-dev-eu", "dev"):
        assert documents(helm.template(release))


def test_a_release_running_as_the_local_runs_service_account_is_refused(helm: Helm) -> None:
    """The local run's operator is the ServiceAccount OPERATOR_ACCOUNT, which examples/rbac.yaml binds
    to a wider role than the chart's: a release in its namespace with its name, created or not, would
    be that account (the chart's operator then the development identity, and its webhooks would skip
    a local run's writes as the operator's own). The release's full name alone does not make it so."""
    namespace, account = OPERATOR_ACCOUNT
    for settings in (
        {"serviceAccount.name": account},
        {"serviceAccount.create": "false", "serviceAccount.name": account},
    ):
        result = helm.run(
            "template", "jitaccess", str(CHART), "--namespace", namespace, *value_args(set_values=settings), check=False
        )
        assert result.returncode != 0, f"{settings} rendered in {namespace}"
        assert f"serviceAccount.name is {account} in the namespace {namespace}" in result.stderr, result.stderr
        assert "the chart's operator would run as the development identity" in result.stderr
    for where, settings in (
        (namespace, {}),  # the release's own name, jitaccess
        (namespace, {"serviceAccount.name": "jitaccess-operator"}),
        ("jitaccess-system", {"serviceAccount.name": account}),
    ):
        rendered = documents(helm.template(namespace=where, set_values=settings))
        (deployment,) = [o for o in rendered if o["kind"] == "Deployment"]
        assert (where, deployment["spec"]["template"]["spec"]["serviceAccountName"]) != OPERATOR_ACCOUNT


# --- lists the operator reads as one comma-separated variable ------------------------------------


@pytest.mark.parametrize("group", ["CN=SRE,OU=Groups,DC=corp", "sre, platform-approvers"])
def test_a_responder_group_holding_a_comma_is_refused(helm: Helm, tmp_path: Path, group: str) -> None:
    """JITACCESS_RESPONDER_GROUPS is the groups joined by commas: an LDAP group's name would reach the
    operator as names nobody is in, and "sre, platform-approvers" would make every platform approver
    an incident responder. Refused by the schema, and by the chart where the schema is skipped."""
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({"incidentResponders": {"groups": ["sre-oncall", group]}}))
    args = ["template", "jitaccess", str(CHART), "--values", str(values)]
    schema = helm.run(*args, check=False)
    assert schema.returncode != 0 and "/incidentResponders/groups/1" in schema.stderr, schema.stderr
    skipped = helm.run(*args, "--skip-schema-validation", check=False)
    assert skipped.returncode != 0
    assert f'incidentResponders.groups has "{group}", which holds a comma' in skipped.stderr, skipped.stderr
    assert "list each group as an item of its own" in skipped.stderr
    values.write_text(yaml.safe_dump({"incidentResponders": {"groups": ["sre-oncall", "CN=SRE"]}}))
    (deployment,) = [o for o in documents(helm.run(*args).stdout) if o["kind"] == "Deployment"]
    variables = {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert variables["JITACCESS_RESPONDER_GROUPS"] == "sre-oncall,CN=SRE"


# --- config.extraEnv --------------------------------------------------------------------------------


def extra_env(
    helm: Helm, tmp_path: Path, name: str, values: tuple[Path, ...] = (), settings: dict[str, str] | None = None
) -> Any:
    """`helm template` with `values`, then `name` alone in config.extraEnv, then `settings`."""
    extra = tmp_path / "extra-env.yaml"
    extra.write_text(yaml.safe_dump({"config": {"extraEnv": [{"name": name, "value": "x"}]}}))
    args = ["template", "jitaccess", str(CHART), "--namespace", NAMESPACE]
    return helm.run(*args, *value_args([*values, extra], settings), check=False)


def own_variables(helm: Helm, values: list[Path]) -> list[str]:
    """The variables the chart sets with `values` (not their extraEnv's)."""
    (deployment,) = [o for o in documents(helm.template(values=values)) if o["kind"] == "Deployment"]
    listed = [e["name"] for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]]
    given = {
        e["name"] for path in values for e in (yaml.safe_load(path.read_text()).get("config") or {}).get("extraEnv", [])
    }
    return [name for name in listed if name not in given]


@pytest.mark.parametrize("values", [[], [OPTIONS], [SLACK]], ids=["defaults", "options", "slack"])
def test_extra_env_sets_none_of_the_charts_own_variables(helm: Helm, tmp_path: Path, values: list[Path]) -> None:
    """Kubernetes takes the later of two: extraEnv's JITACCESS_WEBHOOK_PORT would move the server off the
    port the Service calls, JITACCESS_LEASE_NAME the Lease off the one its Role names, and so on."""
    own = own_variables(helm, values)
    assert "JITACCESS_WEBHOOK_PORT" in own and "JITACCESS_LEADER_IDENTITY" in own
    for name in own:
        result = extra_env(helm, tmp_path, name, tuple(values))
        assert result.returncode != 0, f"{name} in extraEnv rendered"
        assert f"config.extraEnv sets {name}, which the chart sets itself from its values" in result.stderr
        assert "set the chart's value instead" in result.stderr
    assert extra_env(helm, tmp_path, "AWS_STS_REGIONAL_ENDPOINTS").returncode == 0
    assert extra_env(helm, tmp_path, "JITACCESS_SSO_RATE_LIMIT").returncode == 0  # a setting without a value


def test_extra_env_names_no_other_operator_while_the_chart_installs_the_webhooks(helm: Helm, tmp_path: Path) -> None:
    """The operator expects the webhook configurations to skip JITACCESS_OPERATOR_USERNAMES' writes as
    well as its own, and the chart's skip its ServiceAccount's alone: no replica would ever be ready."""
    result = extra_env(helm, tmp_path, "JITACCESS_OPERATOR_USERNAMES")
    assert result.returncode != 0
    assert "config.extraEnv sets JITACCESS_OPERATOR_USERNAMES: the operator would expect webhook configurations" in (
        result.stderr
    )
    assert "with the chart, the operator is its ServiceAccount alone: leave the variable out" in result.stderr
    assert (
        extra_env(helm, tmp_path, "JITACCESS_OPERATOR_USERNAMES", settings={"webhook.enabled": "false"}).returncode == 0
    )

"""The webhook configurations (`jitaccess.adapters.webhooks.configurations`): the one definition the
local run applies and the chart renders. Every webhook fails closed and is called for every user's
write; the API server skips a call only for the operator's own writes, and only where the rule behind
the webhook admits every write of the operator unseen."""

from __future__ import annotations

import base64
import itertools
from collections.abc import Callable
from typing import Any

import kopf
import kubernetes
import pytest
import trustme
import yaml

import jitaccess.handlers  # noqa: F401  (registers the admission handlers)
from jitaccess.adapters import webhooks
from jitaccess.adapters.webhooks import HOOKS, MUTATING, VALIDATING, chart_file, configurations, not_the_operator
from jitaccess.api import names
from jitaccess.domain import admission as adm
from jitaccess.domain.admission import ALLOW, OperatorIdentity, Phase
from jitaccess.domain.teams import Caller
from tests.helm.chart import CHART, REPO, Helm, documents, helm_binary

OPERATOR = "system:serviceaccount:jitaccess-system:jitaccess"
URL_CLIENT = {"url": "https://127.0.0.1:9443", "caBundle": "Q0E="}


def _by_name(objects: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(o["kind"], w["name"]): w for o in objects for w in o["webhooks"]}


def test_every_webhook_fails_closed_without_side_effects_and_calls_its_handler() -> None:
    objects = configurations(URL_CLIENT, [OPERATOR])
    assert [o["kind"] for o in objects] == [MUTATING, VALIDATING]
    for (kind, name), webhook in _by_name(objects).items():
        hook_id = name.removesuffix(f".{names.GROUP}")
        assert webhook["failurePolicy"] == "Fail" and webhook["sideEffects"] == "None", name
        assert webhook["clientConfig"] == {"url": f"https://127.0.0.1:9443/{hook_id}", "caBundle": "Q0E="}
        assert webhook["timeoutSeconds"] <= 30 and webhook["admissionReviewVersions"] == ["v1"]
        assert ("reinvocationPolicy" in webhook) == (kind == MUTATING)


def test_a_service_client_gets_the_handler_path() -> None:
    service = {"namespace": "ns", "name": "svc", "port": 8443, "path": "/hooks/"}
    (mutating, _) = configurations({"service": service}, [OPERATOR])
    assert mutating["webhooks"][0]["clientConfig"] == {
        "service": {"namespace": "ns", "name": "svc", "port": 8443, "path": "/hooks/accessrequests-stamp"}
    }


def test_the_definition_is_what_kopf_serves() -> None:
    """Each webhook names a registered kopf admission handler, of the same kind, for the same writes."""
    registered = {
        str(h.id): h for h in kopf.get_default_registry()._webhooks.get_all_handlers() if h.reason is not None
    }
    defined = {hook.id: (kind, hook) for kind, hooks in HOOKS.items() for hook in hooks}
    assert set(defined) == set(registered)
    for hook_id, (kind, hook) in defined.items():
        handler = registered[hook_id]
        assert handler.reason.value == ("mutating" if kind == MUTATING else "validating"), hook_id
        assert set(handler.operations or []) == set(hook.operations), hook_id
        assert handler.subresource == hook.subresource, hook_id
        assert handler.selector is not None and handler.selector.any_name == hook.plural, hook_id


def test_only_the_operator_is_skipped_and_only_where_nothing_is_refused_to_it() -> None:
    objects = configurations(URL_CLIENT, ["b-operator", "a-operator"])
    skipped = {name for (_, name), w in _by_name(objects).items() if "matchConditions" in w}
    policy = {f"{kind}-check.{names.GROUP}" for kind in ("teamownerships", "entitlements", "permissioncatalogs")}
    for name, webhook in ((n, w) for (_, n), w in _by_name(objects).items()):
        if "matchConditions" not in webhook:
            continue
        operator = '!(request.userInfo.username in ["a-operator", "b-operator"])'
        if name in policy:
            # The operator never writes the policy kinds' spec: a write of it with its credentials is checked.
            assert webhook["matchConditions"] == [
                {
                    "name": "not-the-operator-or-a-spec-change",
                    "expression": operator + " || oldObject == null || (object != null && (!has(object.spec) "
                    "|| !has(oldObject.spec) || object.spec != oldObject.spec))",
                }
            ]
        else:
            assert webhook["matchConditions"] == [{"name": "not-the-operator", "expression": operator}]
    # Requests are checked whoever writes them: their webhooks decide for the operator too.
    assert skipped == {
        f"{hook}.{names.GROUP}"
        for hook in (
            "accessgrants-stamp",
            "accessgrants-check",
            "teamownerships-check",
            "entitlements-check",
            "accessextensions-stamp",
            "accessextensions-check",
            "permissioncatalogs-check",
            *(
                f"{plural}-status"
                for plural in (
                    names.REQUESTS,
                    names.GRANTS,
                    names.TEAMS,
                    names.ENTITLEMENTS,
                    names.EXTENSIONS,
                    names.CATALOGS,
                )
            ),
        )
    }


def test_nobody_matches_when_no_operator_is_known() -> None:
    assert not_the_operator([])["expression"] == "!(request.userInfo.username in [])"


_OPERATOR = OperatorIdentity(frozenset({OPERATOR}))
_AS_OPERATOR = Caller(OPERATOR, frozenset({"system:serviceaccounts"}))
_ODD_OBJECTS: list[dict[str, Any] | None] = [
    None,
    {},
    {"metadata": {"annotations": {"kopf.zalando.org/x": "y", names.ANNOTATION_REVOKED: "maybe"}}},
    {"metadata": {"finalizers": [names.FINALIZER], "labels": {"a": "b"}}, "spec": {"user": "someone"}},
    {"spec": {"reason": "x" * 10_000}, "status": {"conditions": [{"type": "Ready", "reason": "Expired"}]}},
]


@pytest.mark.parametrize("phase", list(Phase))
@pytest.mark.parametrize("operation", ["CREATE", "UPDATE", "DELETE"])
def test_the_skipped_rules_admit_every_write_of_the_operator(phase: Phase, operation: str) -> None:
    """What makes the skips safe: for these kinds, whatever the operator writes, the answer is ALLOW;
    for the policy kinds, whatever it writes but their spec (which is checked, and refused to it)."""
    for old, new in itertools.product(_ODD_OBJECTS, repeat=2):
        grant = adm.review_grant(
            operation, old, new, _AS_OPERATOR, operator=_OPERATOR, team=None, owner="", phase=phase
        )
        assert grant == ALLOW
        catalog = adm.review_catalog(operation, old, new, _AS_OPERATOR, operator=_OPERATOR)
        writes_spec = new is not None and (
            operation == "CREATE"
            or (operation == "UPDATE" and old is not None and (old.get("spec") or {}) != (new.get("spec") or {}))
        )
        assert (catalog != ALLOW) == writes_spec, (operation, old, new, catalog)
    for kind in (names.ACCESS_REQUEST, names.ACCESS_GRANT, "TeamOwnership", "Entitlement"):
        assert adm.review_status(kind, _AS_OPERATOR, operator=_OPERATOR) == ALLOW


def test_the_chart_carries_the_definition() -> None:
    path = CHART / "files" / "webhooks.yaml"
    fix = f"run `.venv/bin/python -m jitaccess.adapters.webhooks > {path.relative_to(REPO)}`"
    assert path.read_text() == chart_file(), f"{path.relative_to(REPO)} is stale: {fix}"


def test_the_chart_renders_the_definition_for_the_release() -> None:
    helm = Helm(helm_binary())
    objects = documents(helm.template("jitaccess", "jitaccess-system"))
    rendered = [o for o in objects if o["kind"] in (MUTATING, VALIDATING)]
    secret = next(o for o in objects if o["kind"] == "Secret")
    client = {
        "service": {"namespace": "jitaccess-system", "name": "jitaccess-webhook", "port": 443},
        "caBundle": secret["data"]["ca.crt"],
    }
    expected = configurations(client, [OPERATOR], name=webhooks.CONFIGURATION_NAME)
    assert [{k: v for k, v in o.items() if k != "metadata"} for o in rendered] == [
        {k: v for k, v in o.items() if k != "metadata"} for o in expected
    ]
    assert {o["metadata"]["name"] for o in rendered} == {"jitaccess.dev"}
    for obj in rendered:  # the definition's label, and the release's
        labels = obj["metadata"]["labels"]
        assert labels["admissions.enforcer/disabled"] == "true" and labels["app.kubernetes.io/name"] == "jitaccess"


def test_the_chart_file_is_yaml_of_both_kinds() -> None:
    kinds = [d["kind"] for d in yaml.safe_load_all(chart_file()) if d]
    assert kinds == [MUTATING, VALIDATING]


# --- whether the cluster's configurations trust this server ------------------------------------

SERVICE = {"namespace": "jitaccess-system", "name": "jitaccess-webhook", "port": 443}


def _bundle(*cas: trustme.CA) -> str:
    return base64.b64encode(b"".join(ca.cert_pem.bytes() for ca in cas)).decode()


def _problem(
    monkeypatch: pytest.MonkeyPatch,
    served: str,
    installed: str,
    edit: Callable[[dict[tuple[str, str], dict[str, Any]]], object] | None = None,
) -> str | None:
    """`configuration_problem` of a server whose CA bundle is `served`, with the cluster's
    configurations made for the bundle `installed`, and then changed by `edit` (given each live
    webhook by kind and name)."""
    live = {o["kind"]: o for o in configurations({"service": SERVICE, "caBundle": installed}, [OPERATOR])}
    if edit is not None:
        edit(_by_name(list(live.values())))

    class Api:
        api_client = type("Client", (), {"sanitize_for_serialization": staticmethod(lambda obj: obj)})()

        def read_validating_webhook_configuration(self, name: str, **_: Any) -> dict[str, Any]:
            return live[VALIDATING]

        def read_mutating_webhook_configuration(self, name: str, **_: Any) -> dict[str, Any]:
            return live[MUTATING]

    monkeypatch.setattr(kubernetes.client, "AdmissionregistrationV1Api", Api)
    return webhooks.configuration_problem(configurations({"service": SERVICE, "caBundle": served}, [OPERATOR]))


def test_a_rotation_bundle_trusts_replicas_of_either_ca(monkeypatch: pytest.MonkeyPatch) -> None:
    """With webhook.certificate.rotate the chart installs the new CA and the previous one: a new
    replica (new CA) and one not yet restarted (previous CA) are both healthy, so the rollout goes on."""
    old, new = trustme.CA(), trustme.CA()
    assert _problem(monkeypatch, _bundle(new), _bundle(new, old)) is None
    assert _problem(monkeypatch, _bundle(old), _bundle(new, old)) is None
    assert _problem(monkeypatch, _bundle(new), _bundle(new)) is None
    # Decoded or base64, a bundle is the same certificates.
    assert _problem(monkeypatch, _bundle(new), base64.b64decode(_bundle(old, new)).decode()) is None


def test_a_bundle_without_the_servers_ca_is_a_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    old, new, other = trustme.CA(), trustme.CA(), trustme.CA()
    untrusted = "does not trust this server's certificate yet"
    assert untrusted in (_problem(monkeypatch, _bundle(new), _bundle(old)) or "")
    assert untrusted in (_problem(monkeypatch, _bundle(new), _bundle(old, other)) or "")
    # Every certificate the server names must be there, not just one of them.
    assert untrusted in (_problem(monkeypatch, _bundle(new, other), _bundle(new, old)) or "")
    garbage = base64.b64encode(b"-----BEGIN CERTIFICATE-----\nNOTACERT\n-----END CERTIFICATE-----\n").decode()
    assert untrusted in (_problem(monkeypatch, _bundle(new), garbage) or "")
    assert untrusted in (_problem(monkeypatch, _bundle(new), "") or "")


# --- a webhook called for fewer writes than defined ----------------------------------------------

CHECK = (VALIDATING, f"accessrequests-check.{names.GROUP}")
SKIP_MALLORY = {"name": "x", "expression": 'request.userInfo.username != "mallory@example.com"'}


def _narrowed(monkeypatch: pytest.MonkeyPatch, edit: Callable[[dict[tuple[str, str], dict[str, Any]]], object]) -> str:
    """The problem found in configurations trusted as installed but changed by `edit`; not None."""
    bundle = _bundle(trustme.CA())
    problem = _problem(monkeypatch, bundle, bundle, edit)
    assert problem is not None
    return problem


def test_a_match_condition_added_to_a_webhook_without_one_is_a_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    """Attack 146: `accessrequests-check` has no matchConditions, and one added skipping mallory was
    never compared (only the keys the definition has were); nor was any webhook's selector."""
    problem = _narrowed(monkeypatch, lambda live: live[CHECK].update(matchConditions=[SKIP_MALLORY]))
    assert isinstance(problem, webhooks.Unchecked)
    assert f"webhook {CHECK[1]} has matchConditions" in problem and "mallory@example.com" in problem
    assert "where the operator defines none" in problem
    stamp = (MUTATING, f"accessrequests-stamp.{names.GROUP}")
    assert stamp[1] in _narrowed(monkeypatch, lambda live: live[stamp].update(matchConditions=[SKIP_MALLORY]))


def test_a_match_condition_added_beside_the_operators_is_a_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    grants = (VALIDATING, f"accessgrants-check.{names.GROUP}")
    problem = _narrowed(monkeypatch, lambda live: live[grants]["matchConditions"].append(SKIP_MALLORY))
    assert isinstance(problem, webhooks.Unchecked) and f"{grants[1]} has matchConditions" in problem


def test_an_object_selector_on_any_webhook_is_a_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    """An objectSelector on a label mallory sets on her own objects skips the checks for them."""
    selector = {"matchExpressions": [{"key": "skip", "operator": "DoesNotExist"}]}
    for kind, hook in ((kind, hook) for kind, hooks in HOOKS.items() for hook in hooks):
        at = (kind, f"{hook.id}.{names.GROUP}")
        problem = _narrowed(monkeypatch, lambda live, at=at: live[at].update(objectSelector=selector))
        assert isinstance(problem, webhooks.Unchecked) and f"{at[1]} has objectSelector" in problem, at
        assert "narrowed" in problem


def test_a_namespace_selector_narrows_nothing_and_is_no_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every jitaccess kind is cluster-scoped, and the API server never skips a webhook by its
    namespaceSelector for a cluster-scoped object but a Namespace. AKS's Admissions Enforcer adds
    one to every webhook of a configuration without its label: reported, no replica became ready."""
    enforcer = {
        "matchExpressions": [
            {"key": "control-plane", "operator": "DoesNotExist"},
            {"key": "kubernetes.azure.com/managedby", "operator": "NotIn", "values": ["aks"]},
        ]
    }

    def every_webhook(live: dict[tuple[str, str], dict[str, Any]]) -> None:
        for webhook in live.values():
            webhook["namespaceSelector"] = enforcer

    bundle = _bundle(trustme.CA())
    assert _problem(monkeypatch, bundle, bundle, every_webhook) is None


def test_the_configurations_carry_the_label_that_keeps_aks_from_changing_them() -> None:
    for obj in configurations(URL_CLIENT, [OPERATOR]):
        assert obj["metadata"]["labels"] == {"admissions.enforcer/disabled": "true"}, obj["kind"]


def test_what_the_api_server_fills_in_is_no_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    """The API server stores an empty selector where none is given: that selects everything."""

    def defaulted(live: dict[tuple[str, str], dict[str, Any]]) -> None:
        for webhook in live.values():
            webhook.update(namespaceSelector={}, objectSelector={})
        live[CHECK]["matchConditions"] = []

    bundle = _bundle(trustme.CA())
    assert _problem(monkeypatch, bundle, bundle, defaulted) is None


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("failurePolicy", "Ignore"),
        ("matchPolicy", "Exact"),
        ("sideEffects", "NoneOnDryRun"),
        ("timeoutSeconds", 1),
        ("rules", [{"apiGroups": [names.GROUP], "apiVersions": ["*"], "operations": ["CREATE"], "resources": ["*"]}]),
    ],
)
def test_every_other_field_of_a_webhook_is_compared(monkeypatch: pytest.MonkeyPatch, key: str, value: Any) -> None:
    problem = _narrowed(monkeypatch, lambda live: live[CHECK].update({key: value}))
    assert isinstance(problem, webhooks.Unchecked) and f"{CHECK[1]} has {key} {value!r}" in problem


def test_a_match_condition_removed_calls_the_webhook_for_more_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Not a narrowing: nothing goes through unchecked, but the operator's own writes, which the
    condition skipped, go through the webhook, and wait on it answering."""
    grants = (VALIDATING, f"accessgrants-check.{names.GROUP}")
    removed = _narrowed(monkeypatch, lambda live: live[grants].pop("matchConditions"))
    assert isinstance(removed, webhooks.Broadened) and not isinstance(removed, webhooks.Unchecked)
    assert f"{grants[1]} has matchConditions None" in removed and "called for more writes than defined" in removed
    assert "the operator's own" in removed
    assert isinstance(_narrowed(monkeypatch, lambda live: live[grants].update(matchConditions=[])), webhooks.Broadened)


def test_the_operators_skip_naming_fewer_usernames_calls_for_more_and_others_narrows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The definition skips the operator's usernames; the live condition may skip some of them
    (called for more writes) or someone else (whose writes then go through unchecked)."""
    catalogs = (VALIDATING, f"permissioncatalogs-check.{names.GROUP}")

    def skipping(*usernames: str) -> Callable[[dict[tuple[str, str], dict[str, Any]]], object]:
        condition = not_the_operator(usernames, unless_spec_changes=True)
        return lambda live: live[catalogs].update(matchConditions=[condition])

    assert isinstance(_narrowed(monkeypatch, skipping()), webhooks.Broadened)
    mallory = _narrowed(monkeypatch, skipping(OPERATOR, "mallory@example.com"))
    assert isinstance(mallory, webhooks.Unchecked) and "mallory@example.com" in mallory
    # The same usernames without the spec-change part: the operator would rewrite the policy unseen.
    without = not_the_operator([OPERATOR])
    narrowed = _narrowed(monkeypatch, lambda live: live[catalogs].update(matchConditions=[without]))
    assert isinstance(narrowed, webhooks.Unchecked)


def _validating_read_failing(monkeypatch: pytest.MonkeyPatch, status: int) -> str | None:
    """`configuration_problem` while reading the ValidatingWebhookConfiguration fails with `status`."""
    live = {o["kind"]: o for o in configurations({"service": SERVICE}, [OPERATOR])}

    class Api:
        api_client = type("Client", (), {"sanitize_for_serialization": staticmethod(lambda obj: obj)})()

        def read_validating_webhook_configuration(self, name: str, **_: Any) -> dict[str, Any]:
            raise kubernetes.client.exceptions.ApiException(status=status, reason="Whatever")

        def read_mutating_webhook_configuration(self, name: str, **_: Any) -> dict[str, Any]:
            return live[MUTATING]

    monkeypatch.setattr(kubernetes.client, "AdmissionregistrationV1Api", Api)
    return webhooks.configuration_problem(list(live.values()))


def test_a_deleted_configuration_lets_every_write_through(monkeypatch: pytest.MonkeyPatch) -> None:
    """The emergency way out (operations.md): no write is refused for it, every one skips the checks."""
    gone = _validating_read_failing(monkeypatch, 404)
    assert isinstance(gone, webhooks.Unchecked)
    assert gone.startswith(f"{VALIDATING} jitaccess.dev does not exist: no write is checked") and "helm upgrade" in gone


def test_a_configuration_that_cannot_be_read_says_so_not_that_writes_are_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    forbidden = _validating_read_failing(monkeypatch, 403)
    assert isinstance(forbidden, webhooks.Unreadable)
    assert forbidden == f"{VALIDATING} jitaccess.dev cannot be read (403 Whatever)"


def test_a_problem_that_refuses_writes_is_said_before_a_narrowing(monkeypatch: pytest.MonkeyPatch) -> None:
    """The mutating configuration comes first; a narrowing there must not hide that the validating
    one does not trust this server: that one holds a new replica's readiness."""
    old, new = trustme.CA(), trustme.CA()

    def edit(live: dict[tuple[str, str], dict[str, Any]]) -> None:
        for (kind, _), webhook in live.items():
            if kind == MUTATING:
                webhook["clientConfig"]["caBundle"] = _bundle(new)
                webhook["objectSelector"] = {"matchLabels": {"checked": "yes"}}

    problem = _problem(monkeypatch, _bundle(new), _bundle(old), edit)
    assert problem is not None and not isinstance(problem, webhooks.NotAsDefined)
    assert f"{VALIDATING} jitaccess.dev webhook" in problem and "does not trust" in problem


def test_a_webhook_gone_lets_writes_through_and_a_distrust_refuses_them(monkeypatch: pytest.MonkeyPatch) -> None:
    """The log line says which: writes unchecked, or every write refused (`handlers.startup`)."""

    def without_check(live: dict[tuple[str, str], dict[str, Any]]) -> None:
        live[CHECK]["name"] = "renamed.example.com"

    gone = _narrowed(monkeypatch, without_check)
    assert isinstance(gone, webhooks.Unchecked) and f"has no webhook {CHECK[1]}" in gone
    untrusted = _problem(monkeypatch, _bundle(trustme.CA()), _bundle(trustme.CA()))
    assert untrusted is not None and not isinstance(untrusted, webhooks.Unchecked)


# --- the admission policy under the webhooks -----------------------------------------------------

POLICY_NAME = "jitaccess-identity"
VAP, BINDING = "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"


def _example_policy() -> dict[str, dict[str, Any]]:
    """examples/admission-policy.yaml, named as the chart names it, with what the API server fills in."""
    found = {o["kind"]: o for o in documents((REPO / "examples" / "admission-policy.yaml").read_text())}
    for obj in found.values():
        obj["metadata"]["name"] = POLICY_NAME
    found[BINDING]["spec"]["policyName"] = POLICY_NAME
    constraints = found[VAP]["spec"]["matchConstraints"]
    constraints.update(matchPolicy="Equivalent", namespaceSelector={}, objectSelector={})
    for rule in constraints["resourceRules"]:
        rule.setdefault("scope", "*")
    return found


def _policy_problem(
    monkeypatch: pytest.MonkeyPatch, edit: Callable[[dict[str, dict[str, Any]]], object] | None = None
) -> str | None:
    """`policy_problem` with the example policy and binding in the cluster, changed by `edit` (given
    them by kind; one it removes is not found)."""
    live = _example_policy()
    if edit is not None:
        edit(live)

    def reader(kind: str) -> Callable[..., dict[str, Any]]:
        def read(name: str, **_: Any) -> dict[str, Any]:
            if kind not in live or live[kind]["metadata"]["name"] != name:
                raise kubernetes.client.exceptions.ApiException(status=404, reason="Not Found")
            return live[kind]

        return read

    class Api:
        api_client = type("Client", (), {"sanitize_for_serialization": staticmethod(lambda obj: obj)})()
        read_validating_admission_policy = staticmethod(reader(VAP))
        read_validating_admission_policy_binding = staticmethod(reader(BINDING))

    monkeypatch.setattr(kubernetes.client, "AdmissionregistrationV1Api", Api)
    return webhooks.policy_problem(POLICY_NAME)


def test_the_policy_as_installed_is_no_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _policy_problem(monkeypatch) is None
    # Deny with Audit or Warn besides it still refuses.
    assert (
        _policy_problem(monkeypatch, lambda live: live[BINDING]["spec"].update(validationActions=["Deny", "Audit"]))
        is None
    )
    # A binding's matchResources with nothing in it but what the API server fills in narrows nothing.
    empty = {"namespaceSelector": {}, "objectSelector": {}, "matchPolicy": "Equivalent"}
    assert _policy_problem(monkeypatch, lambda live: live[BINDING]["spec"].update(matchResources=empty)) is None


def test_the_policy_is_defined_for_the_writes_the_operator_checks_it_for() -> None:
    example = {o["kind"]: o for o in documents((REPO / "examples" / "admission-policy.yaml").read_text())}
    (rule,) = example[VAP]["spec"]["matchConstraints"]["resourceRules"]
    assert {resource: tuple(rule["operations"]) for resource in rule["resources"]} == webhooks.POLICY_WRITES
    assert rule["apiGroups"] == [names.GROUP] and rule["apiVersions"] == ["*"]


def _drop(kind: str) -> Callable[[dict[str, dict[str, Any]]], object]:
    return lambda live: live.pop(kind)


def _spec(kind: str, **changes: Any) -> Callable[[dict[str, dict[str, Any]]], object]:
    return lambda live: live[kind]["spec"].update(changes)


def _constraint(**changes: Any) -> Callable[[dict[str, dict[str, Any]]], object]:
    return lambda live: live[VAP]["spec"]["matchConstraints"].update(changes)


ONLY_GRANTS = [{"apiGroups": [names.GROUP], "apiVersions": ["*"], "operations": ["*"], "resources": ["accessgrants"]}]
SELECTOR = {"matchExpressions": [{"key": "skip", "operator": "DoesNotExist"}]}


@pytest.mark.parametrize(
    ("edit", "said"),
    [
        (_drop(VAP), f"{VAP} {POLICY_NAME} does not exist"),
        (_drop(BINDING), f"{BINDING} {POLICY_NAME} does not exist"),
        (_spec(BINDING, validationActions=["Warn"]), "validationActions ['Warn'], without 'Deny'"),
        (_spec(BINDING, validationActions=["Audit", "Warn"]), "without 'Deny'"),
        (_spec(BINDING, policyName="something-else"), "binds policy 'something-else'"),
        (_spec(BINDING, matchResources={"objectSelector": SELECTOR}), "matchResources whose objectSelector"),
        (_spec(BINDING, matchResources={"resourceRules": ONLY_GRANTS}), "leave out CREATE of accessrequests"),
        (_spec(BINDING, matchResources={"excludeResourceRules": ONLY_GRANTS}), "whose excludeResourceRules"),
        (_spec(VAP, failurePolicy="Ignore"), "failurePolicy 'Ignore', not 'Fail'"),
        (_spec(VAP, matchConditions=[SKIP_MALLORY]), "matchConditions"),
        (_constraint(resourceRules=ONLY_GRANTS), "leave out CREATE of accessrequests"),
        (_constraint(excludeResourceRules=ONLY_GRANTS), "matchConstraints whose excludeResourceRules"),
        (_constraint(objectSelector=SELECTOR), "matchConstraints whose objectSelector"),
    ],
)
def test_a_policy_missing_narrowed_or_not_denying_is_a_problem(
    monkeypatch: pytest.MonkeyPatch, edit: Callable[[dict[str, dict[str, Any]]], object], said: str
) -> None:
    problem = _policy_problem(monkeypatch, edit)
    assert isinstance(problem, webhooks.Unchecked) and said in problem, problem


def test_a_namespace_selector_on_the_policy_or_its_binding_is_no_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    """Its kinds are cluster-scoped: a namespaceSelector never skips the policy for them."""
    assert _policy_problem(monkeypatch, _spec(BINDING, matchResources={"namespaceSelector": SELECTOR})) is None
    assert _policy_problem(monkeypatch, _constraint(namespaceSelector=SELECTOR)) is None


def test_a_policy_that_cannot_be_read_is_a_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    class Api:
        api_client = type("Client", (), {"sanitize_for_serialization": staticmethod(lambda obj: obj)})()

        @staticmethod
        def read_validating_admission_policy(name: str, **_: Any) -> None:
            raise kubernetes.client.exceptions.ApiException(status=403, reason="Forbidden")

        read_validating_admission_policy_binding = read_validating_admission_policy

    monkeypatch.setattr(kubernetes.client, "AdmissionregistrationV1Api", Api)
    assert webhooks.policy_problem(POLICY_NAME) == f"{VAP} {POLICY_NAME} cannot be read (403 Forbidden)"

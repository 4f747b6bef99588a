"""The webhook configurations (`jitaccess.adapters.webhooks.configurations`): the one definition the
local run applies and the chart renders. Every webhook fails closed and is called for every user's
write; the API server skips a call only for the operator's own writes, and only where the rule behind
the webhook admits every write of the operator unseen."""

from __future__ import annotations

import base64
import itertools
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


def test_the_chart_file_is_yaml_of_both_kinds() -> None:
    kinds = [d["kind"] for d in yaml.safe_load_all(chart_file()) if d]
    assert kinds == [MUTATING, VALIDATING]


# --- whether the cluster's configurations trust this server ------------------------------------

SERVICE = {"namespace": "jitaccess-system", "name": "jitaccess-webhook", "port": 443}


def _bundle(*cas: trustme.CA) -> str:
    return base64.b64encode(b"".join(ca.cert_pem.bytes() for ca in cas)).decode()


def _problem(monkeypatch: pytest.MonkeyPatch, served: str, installed: str) -> str | None:
    """`configuration_problem` of a server whose CA bundle is `served`, with the cluster's
    configurations made for the bundle `installed`."""
    live = {o["kind"]: o for o in configurations({"service": SERVICE, "caBundle": installed}, [OPERATOR])}

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

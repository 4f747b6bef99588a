"""Listings by field (`Kube.list`, `Kube.list_any`) answer the objects selected, from a server that
can select by the field (Kubernetes 1.31+ with the CRDs' `selectableFields`) or not: one that
cannot refuses the selector, and every object is listed once and filtered here.

The API server here is a small stand-in for `list_cluster_custom_object`, answering as one does;
tests/e2e/test_field_selectors.py runs both against real ones."""

from __future__ import annotations

import logging
from typing import Any, cast

import kubernetes
import pytest
from kubernetes.client.exceptions import ApiException

from jitaccess.adapters.kube import Kube
from jitaccess.api import names, wire


def _grant(name: str, user: str, group: str) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"user": user, "groupName": group}, "status": {}}


GRANTS = [
    _grant("a1", "alice@example.com", "prod-payments"),
    _grant("a2", "alice@example.com", "prod-ledger"),
    _grant("b1", "bob@example.com", "prod-payments"),
    _grant("c1", "carol@example.com", "prod-ledger"),
]


class Server:
    """Grants as an API server lists them; `selecting`: whether it can select by field."""

    def __init__(self, selecting: bool) -> None:
        self.selecting = selecting
        self.asked: list[str] = []  # the field selector of each listing answered ("" for none)

    def list_cluster_custom_object(
        self, group: str, version: str, plural: str, label_selector: str = "", field_selector: str = "", **_: Any
    ) -> dict[str, Any]:
        if field_selector and not self.selecting:
            exc = ApiException(status=400, reason="Bad Request")
            exc.body = f'{{"message": "{names.FIELD_LABEL_UNSUPPORTED}: {field_selector.partition("=")[0]}"}}'
            raise exc
        self.asked.append(field_selector)
        terms = dict(term.split("=", 1) for term in field_selector.split(",")) if field_selector else {}
        return {"items": [g for g in GRANTS if all(wire.selected_by(g, {k: v}) for k, v in terms.items())]}


def _kube(server: Server) -> Kube:
    kube = Kube(kubernetes.client.ApiClient())
    kube._api = cast(Any, server)
    return kube


def _names(objects: list[dict[str, Any]]) -> list[str]:
    return sorted(wire.name_of(obj) for obj in objects)


@pytest.mark.parametrize("selecting", [True, False], ids=["selecting", "not-selecting"])
def test_a_listing_by_field_answers_the_objects_selected_either_way(selecting: bool) -> None:
    server = Server(selecting)
    kube = _kube(server)
    assert _names(kube.list(names.GRANTS, fields={"spec.user": "alice@example.com"})) == ["a1", "a2"]
    both = {"spec.user": "alice@example.com", "spec.groupName": "prod-ledger"}
    assert _names(kube.list(names.GRANTS, fields=both)) == ["a2"]
    assert _names(kube.list(names.GRANTS)) == ["a1", "a2", "b1", "c1"]
    if selecting:
        assert server.asked == [
            "spec.user=alice@example.com",
            "spec.user=alice@example.com,spec.groupName=prod-ledger",
            "",
        ]
    else:
        assert server.asked == ["", "", ""], "refused by field: every grant listed instead"


def test_any_of_several_selections_is_one_listing_each_or_one_in_all_from_a_server_that_cannot_select(
    caplog: pytest.LogCaptureFixture,
) -> None:
    selections = [{"spec.groupName": "prod-payments"}, {"spec.user": "carol@example.com"}, {"spec.user": "nobody"}]
    server = Server(selecting=True)
    assert _names(_kube(server).list_any(names.GRANTS, selections)) == ["a1", "b1", "c1"]
    assert server.asked == ["spec.groupName=prod-payments", "spec.user=carol@example.com", "spec.user=nobody"]
    server = Server(selecting=False)
    kube = _kube(server)
    with caplog.at_level(logging.WARNING, logger="jitaccess.adapters.kube"):
        assert _names(kube.list_any(names.GRANTS, selections)) == ["a1", "b1", "c1"]
        assert _names(kube.list_any(names.GRANTS, selections[1:])) == ["c1"]
    assert server.asked == ["", ""], "one listing of every grant serves for all the selections"
    (said,) = caplog.records  # once, however many listings fell back
    assert f"cannot select {names.GRANTS} by field" in said.message

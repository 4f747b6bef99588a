"""A listing of metadata alone (`Kube.each_metadata`, the periodic reconcile's): the API server is
asked for a PartialObjectMetadataList, page by page, and what it answers is read as objects whose
`metadata` is all there is.

The transport here is a stand-in for urllib3's pool under the real `kubernetes` client, so the
request is the one the client sends and the answer goes through its own reading."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import kubernetes
import urllib3

from jitaccess.adapters.kube import Kube
from jitaccess.api import names, wire

NAMES = ["g1", "g2", "g3", "g4", "g5"]


class Server:
    """An API server's listing of grants, `limit` per page: a PartialObjectMetadataList when asked
    for one (`metadata_only`: whether it can answer so), else the whole objects."""

    def __init__(self, metadata_only: bool = True, status: int = 200) -> None:
        self.metadata_only, self.status = metadata_only, status
        self.asked: list[tuple[str, dict[str, list[str]], str]] = []  # (path, query, Accept)

    def request(self, method: str, url: str, headers: dict[str, str] | None = None, **_: Any) -> urllib3.HTTPResponse:
        parts = urlsplit(url)
        query = parse_qs(parts.query)
        accept = (headers or {}).get("Accept", "")
        self.asked.append((parts.path, query, accept))
        if self.status != 200:
            body = {"kind": "Status", "status": "Failure", "code": self.status, "message": "not found"}
            return self._answer(body, "application/json")
        limit, start = int(query["limit"][0]), int((query.get("continue") or ["0"])[0])
        page = NAMES[start : start + limit]
        token = str(start + limit) if start + limit < len(NAMES) else ""
        partial = self.metadata_only and "as=PartialObjectMetadataList" in accept
        items = [
            {"metadata": {"name": n, "uid": f"uid-{n}"}}
            if partial
            else {"metadata": {"name": n, "uid": f"uid-{n}"}, "spec": {"user": "alice"}, "status": {}}
            for n in page
        ]
        kind = ("PartialObjectMetadataList", "meta.k8s.io/v1") if partial else ("AccessGrantList", names.API_VERSION)
        body = {"kind": kind[0], "apiVersion": kind[1], "metadata": {"continue": token}, "items": items}
        content = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1" if partial else "application/json"
        return self._answer(body, content)

    def _answer(self, body: dict[str, Any], content_type: str) -> urllib3.HTTPResponse:
        return urllib3.HTTPResponse(
            body=json.dumps(body).encode(),
            status=self.status,
            reason="OK" if self.status == 200 else "Not Found",
            headers={"Content-Type": content_type},
        )


def _kube(server: Server) -> Kube:
    client = kubernetes.client.ApiClient(kubernetes.client.Configuration())
    client.rest_client.pool_manager = server
    return Kube(client)


def test_the_listing_asks_for_metadata_alone_page_by_page() -> None:
    server = Server()
    listed = list(_kube(server).each_metadata(names.GRANTS, page=2))
    assert [wire.name_of(obj) for obj in listed] == NAMES
    assert all(set(obj) == {"metadata"} for obj in listed), "no spec, no status: the server sent none"
    assert [wire.uid_of(obj) for obj in listed] == [f"uid-{n}" for n in NAMES]
    path = f"/apis/{names.GROUP}/{names.VERSION}/{names.GRANTS}"
    assert [(p, q.get("continue")) for p, q, _ in server.asked] == [(path, None), (path, ["2"]), (path, ["4"])]
    assert all(q["limit"] == ["2"] for _, q, _ in server.asked)
    assert {accept for _, _, accept in server.asked} == {
        "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io, application/json"
    }


def test_a_whole_listing_asks_for_whole_objects() -> None:
    server = Server()
    listed = list(_kube(server).each(names.GRANTS, page=10))
    assert [wire.name_of(obj) for obj in listed] == NAMES and all("spec" in obj for obj in listed)
    assert "PartialObjectMetadataList" not in server.asked[0][2]


def test_a_server_that_answers_with_whole_objects_gives_the_same_names() -> None:
    listed = list(_kube(Server(metadata_only=False)).each_metadata(names.GRANTS, page=3))
    assert [wire.name_of(obj) for obj in listed] == NAMES


def test_a_kind_not_installed_lists_nothing() -> None:
    assert list(_kube(Server(status=404)).each_metadata(names.GRANTS)) == []

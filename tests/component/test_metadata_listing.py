"""A listing of metadata alone (`Kube.each_metadata`, the periodic index reconcile's) against the real
API server: it answers a PartialObjectMetadataList, page by page, which the client reads as objects
with their metadata and nothing else (unit test_kube_metadata_listing.py fakes the transport)."""

from __future__ import annotations

import pytest

from devenv.controlplane import ControlPlane
from devenv.paths import EXAMPLES, REPO
from jitaccess.adapters.kube import Kube, load_client_config
from jitaccess.api import names, wire


def test_the_api_server_answers_metadata_alone_page_by_page(control_plane: ControlPlane) -> None:
    control_plane.kubectl("apply", "--server-side", "-f", str(REPO / "crds"))
    control_plane.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
    control_plane.kubectl("apply", "-f", str(EXAMPLES / "01-teams.yaml"))
    with pytest.MonkeyPatch.context() as patcher:
        patcher.setenv("KUBECONFIG", str(control_plane.admin_kubeconfig))
        load_client_config()
        kube = Kube()
        listed = list(kube.each_metadata(names.TEAMS, page=1))
        whole = list(kube.each(names.TEAMS, page=1))
    assert sorted(wire.name_of(obj) for obj in listed) == sorted(wire.name_of(obj) for obj in whole)
    assert {"ledger", "payments"} <= {wire.name_of(obj) for obj in listed}
    assert all("spec" not in obj and wire.uid_of(obj) for obj in listed), "metadata only"
    assert {obj.get("kind") for obj in listed} == {"PartialObjectMetadata"}
    assert all("spec" in obj for obj in whole)

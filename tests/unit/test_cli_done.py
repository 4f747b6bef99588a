"""`kubectl jit done`: every grant of the caller's is ended, whatever one of them answers."""

from __future__ import annotations

from typing import Any

import pytest

from jitaccess.api import names
from jitaccess.cli import decisions
from jitaccess.cli.errors import Refused
from jitaccess.cli.kube import ApiError
from tests.unit.test_cli_commands import FakeApi, cond, err, grant, out, session, stored


def revoked_by(name: str, who: str) -> dict[str, Any]:
    made = grant(name, f"group-{name}")
    made["metadata"]["annotations"] = {names.ANNOTATION_REVOKED: "true", names.ANNOTATION_REVOKED_BY: who}
    return made


def ended(*names_: str) -> list[dict[str, Any]]:
    return [
        {
            "type": "MODIFIED",
            "object": {**grant(n, f"group-{n}"), "status": {"conditions": [cond("Ready", "False", "Revoked")]}},
        }
        for n in names_
    ]


def patched(api: FakeApi) -> list[str]:
    return [path.rsplit("/", 1)[1] for verb, (path, _) in [c for c in api.calls if c[0] == "patch"]]


def test_done_ends_every_grant_past_one_refused_and_one_revoked_already() -> None:
    """g-1 is refused (paula revoked it as alice's listing ran: "already revoked by paula"), g-2 was
    revoked earlier and is still being ended: done stopped at g-1, g-3 left Active, exit 1."""
    api = FakeApi()
    api.objects.clear()
    for made in (grant("g-1", "group-g-1"), revoked_by("g-2", "lena@example.com"), grant("g-3", "group-g-3")):
        stored(api, names.GRANTS, made)
    api.patch_errors = [ApiError(403, "Forbidden", "this grant was already revoked by paula@example.com")]
    api.watches = [ended("g-2", "g-3")]
    s = session(api)
    with pytest.raises(Refused) as refused:
        decisions.done(s, wait=True, timeout=None)
    assert refused.value.message == "1 of your grants could not be ended (g-1): the reasons are above"
    assert patched(api) == ["g-1", "g-3"], "g-2 is not marked again: its revocation is under way"
    assert "refused: accessgrant g-1 (group-g-1): revoking accessgrant g-1 was refused: this grant was already " in err(
        s
    )
    assert "revoked accessgrant g-2" in out(s) and "revoked accessgrant g-3" in out(s)


def test_done_without_wait_names_each_grant_it_is_ending() -> None:
    api = FakeApi()
    api.objects.clear()
    stored(api, names.GRANTS, revoked_by("g-2", "lena@example.com"))
    stored(api, names.GRANTS, grant("g-3", "group-g-3"))
    s = session(api)
    assert decisions.done(s, wait=False, timeout=None) == 0
    assert out(s) == "ending accessgrant g-2 (group-g-2)\nending accessgrant g-3 (group-g-3)\n"
    assert patched(api) == ["g-3"]

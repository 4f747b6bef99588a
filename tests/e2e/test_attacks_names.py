"""Attack 117 of docs/security.md: a name at Kubernetes' limit where jitaccess derives another from it.

An object name may be 253 characters long, a label value 63. Each AccessGrant carries its
Entitlement's name as the value of the label `jitaccess.dev/entitlement`, so an Entitlement named
in 64 to 253 characters was admitted and Ready, and every grant of it was refused by the API
server: its requests were approved, and then never granted, the operator trying again without end.
Written as GitOps would (the admin, `kubectl apply`), through the real API server and the
operator's webhooks.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.test_attacks_policy import example, refused, stored_without_webhooks
from tests.support.harness import Jit

pytestmark = pytest.mark.e2e
LENA = "lena@example.com"
#: A valid object name, one character too long for a label value.
LONG = ("prod-eng-ledger-" + "x" * 64)[:64]


def long_named() -> dict[str, Any]:
    """ledger's Entitlement as the examples have it, under a 64-character name."""
    entitlement = example("02-entitlements.yaml", "prod-eng-ledger")
    entitlement["metadata"]["name"] = LONG
    return entitlement


@pytest.fixture
def named(system: Jit) -> Iterator[Jit]:
    """The shared system; the long-named Entitlement deleted afterwards (should it get through)."""
    yield system
    system.clean()
    system.kubectl("delete", "entitlement", LONG, "--ignore-not-found")


# --- 117. an Entitlement named beyond what a label value may hold -----------------------------------


def test_117_an_entitlement_named_beyond_a_label_value_is_refused(named: Jit) -> None:
    """64 characters: refused at creation, naming the field, the limit and the fix; nothing stored."""
    said = refused(
        named.apply(long_named(), check=False),
        "metadata.name is 64 characters long, above the limit of 63",
        "the label jitaccess.dev/entitlement",
        "name it in 63 characters or fewer",
    )
    assert "no grant of it could be created" in said
    assert named.get("entitlement", LONG) is None


def test_117_a_request_for_one_stored_before_the_rule_is_refused_saying_why(named: Jit) -> None:
    """Stored while the webhooks were gone (or before an upgrade brought the rule), the Entitlement
    is there and resolved; lena, of its owner team, would be auto-approved into a grant the API
    server refuses. Her request is refused at creation instead, saying why and what to do."""
    stored_without_webhooks(named, long_named())
    named.wait_reason("entitlement", LONG, "Resolved", timeout=30)
    refused(
        named.request("lena-long-name", LONG, user=LENA, check=False),
        "spec.entitlement names an Entitlement whose name is 64 characters long, above the limit of 63",
        "ask its owners to create it again under a shorter name",
    )
    assert named.get("accessrequest", "lena-long-name") is None
    assert named.members("prod-eng-ledger") == set()

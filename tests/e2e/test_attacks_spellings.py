"""Attack 126 of docs/security.md: an approver's name that reads as another's, in a spelling that
attack 113's rule let through, and the second approval of approvalsRequired it gave.

Attack 113 refuses names that mix a look-alike script with another (a Cyrillic a in a Latin name),
padding, invisible characters and case twins. A name in one script can still read as another
person's: `pau\u217ca@example.com` ends in a SMALL ROMAN NUMERAL FIFTY (U+217C), drawn as an l;
`p\u0251ula@example.com` has a LATIN SMALL LETTER ALPHA (U+0251), a phonetic letter; `rene\u0301e`
is `renée` decomposed (an e and a combining accent), another string than the `renée` the
authenticator reports. Team pci (examples/03-pci.yaml) needs two approvals: with the look-alike
beside paula, a reviewer reads paula twice, and whoever the authenticator reports under the
look-alike (paula's second identity, or anyone's) is a second approver: paula and her twin
approve bob's request, one person, and it is granted.

Written as GitOps would (the admin, `kubectl apply`) through the real API server and the
operator's webhooks; the approvals with real identities (client certificates), plain kubectl.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.approval_policies import BOB, LENA, PAULA, PCI, annotate, pci, status
from tests.e2e.test_attacks_policy import (
    bound_as_approver,
    example,
    kubectl_as,
    refused,
    refused_and_unchanged,
    stored_without_webhooks,
)
from tests.support.harness import Jit, eventually

pytestmark = pytest.mark.e2e
__all__ = ["pci"]
#: paula@example.com with a SMALL ROMAN NUMERAL FIFTY (U+217C) for its l: read in review as paula.
TWIN = "pau\u217ca@example.com"


def _pci_team(approvers: list[str]) -> dict[str, object]:
    team = example("03-pci.yaml", "pci")
    team["spec"]["approvers"] = approvers
    return team


# --- 126. an approver named in a spelling that reads as another's, counted as a second approver ------


@pytest.mark.parametrize(
    ("name", "said"),
    [
        (
            TWIN,
            f"spec.approvers[1] {TWIN!r} is not in Unicode's normal form (NFKC): it reads as 'paula@example.com', another name",
        ),
        (
            "rene\u0301e@example.com",
            "spec.approvers[1] 'rene\u0301e@example.com' is not in Unicode's normal form (NFKC): it reads as "
            "'ren\u00e9e@example.com'",
        ),
        (
            "p\u0251ula@example.com",
            "spec.approvers[1] 'p\u0251ula@example.com' mixes the scripts Latin and Phonetic",
        ),
    ],
)
def test_126_an_approver_is_written_in_the_one_spelling_that_reads_as_it(pci: Jit, name: str, said: str) -> None:
    """Each of these read as a name in review (paula's, or renée's as the authenticator reports it)
    and was admitted: refused now, the stored team unchanged."""
    refused_and_unchanged(pci, _pci_team([PAULA, name, LENA]), said)


@pytest.fixture
def twin(pci: Jit) -> Iterator[Path]:
    """The kubeconfig of whoever the authenticator reports as TWIN (`bound_as_approver`)."""
    with bound_as_approver(pci, TWIN) as kubeconfig:
        yield kubeconfig


def test_126_a_twin_stored_before_the_rule_is_no_second_approver(pci: Jit, twin: Path) -> None:
    """pci stored (as while the webhooks were gone, or before the rule) with paula's twin among its
    approvers. paula approves bob's request, and her twin's approval, which would make 2/2 with
    one person, is refused: the name confers nothing. Nothing is granted until lena approves."""
    stored_without_webhooks(pci, _pci_team([PAULA, TWIN, LENA]))
    ready = pci.wait_reason("teamownership", "pci", "PolicyRefused")
    message = next(c["message"] for c in ready["status"]["conditions"] if c["type"] == "Ready")
    assert f"spec.approvers[1] {TWIN!r} is not in Unicode's normal form (NFKC)" in message, message
    pci.request("bob-twin", PCI, user=BOB)
    pci.wait_reason("accessrequest", "bob-twin", "Pending")
    assert annotate(pci, "bob-twin", "jitaccess.dev/approved=true", user=PAULA).returncode == 0
    eventually(lambda: status(pci, "bob-twin").get("approvalSummary") == "1/2" or None, timeout=15)
    whoami = kubectl_as(pci, twin, "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}")
    assert whoami.stdout == TWIN  # the authenticator reports the twin, not paula
    attempt = kubectl_as(pci, twin, "annotate", "accessrequest", "bob-twin", "jitaccess.dev/approved=true")
    refused(attempt, f"{TWIN} is not an approver of the owner team")
    assert status(pci, "bob-twin").get("approvalSummary") == "1/2"
    assert pci.get("accessgrant", "bob-twin") is None
    assert pci.members(PCI) == set()
    # A second real approver completes it.
    assert annotate(pci, "bob-twin", "jitaccess.dev/approved=true", user=LENA).returncode == 0
    pci.wait_reason("accessrequest", "bob-twin", "Granted", timeout=30)
    assert [a["by"] for a in status(pci, "bob-twin")["approvals"]] == [PAULA, LENA]
    assert pci.members(PCI) == {BOB}

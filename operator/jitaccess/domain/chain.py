"""The audit archive's chain: each batch names the one written before it, so that a batch taken
out, changed, replaced or slipped in shows.

The operator writes every batch object with two pieces of S3 user metadata (docs/audit.md):
- `jitaccess-sha256`: the SHA-256 of the object's bytes as written;
- `jitaccess-previous`: `KEY DIGEST` of the batch the archive's writer wrote before it (found in
  the bucket when an operator starts), or empty for the first batch of a chain. DIGEST covers that
  batch's key, its own `jitaccess-previous` and its bytes (`link_to`): a batch cannot be re-linked
  (to skip a deleted one, or to take in a made-up one) without breaking the link of the next.

One writer (the leader) writes one batch at a time, so the batches form one line, in the order of
their keys (which begin with the time they were written). `verify` reads that line back over a
window of the archive (what `kubectl jit audit --verify` shows) and says where it breaks:

- a batch whose bytes no longer have its digest (changed in place), or with no digest at all
  among chained batches (not written by the operator);
- a key the bucket holds more than one version of, or whose current version is a delete marker
  (jitaccess writes each key once, conditionally, and deletes none);
- a batch named as the previous one that is not there (deleted), or that is not what it was when
  its successor named it (its bytes or its own link replaced, even with its digest recomputed);
- two batches that name the same previous one (a batch slipped in beside the real one, or two
  writers at once), a batch that no later batch in the window names (one after it is gone, or it
  was slipped in at the end of the window's line), and a second chain start.

What a chain of digests cannot show, since anyone who can write the bucket can compute one: the
newest batches deleted, or made-up ones added after the newest, while no operator runs (a
starting operator continues from the newest batch it finds, and logs which), and the whole line
rewritten from some batch to the newest. Object Lock in COMPLIANCE mode stops deletion and rewrites
(an overwrite is a new version, which shows); a bucket policy with no other writer stops additions.

With a signing key (`jitaccess.adapters.signing`), each batch also carries a KMS signature of
`signed_message` (its key, its link and its bytes' digest) in `jitaccess-signature`: a batch
made up or rewritten by anyone who cannot sign with that key shows, chain or no chain, when the
window is verified against the key's public half (`verify`'s `signature_valid`). The newest
batches deleted still show only as a gap in time (nothing after them names them).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

DIGEST = "jitaccess-sha256"
PREVIOUS = "jitaccess-previous"
SIGNATURE = "jitaccess-signature"
SIGNED_BY = "jitaccess-signing-key"
SIGNING_ALGORITHM = "jitaccess-signing-algorithm"


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Link:
    """A batch as its successor names it: its key, and the digest of its key, of the link it
    carries itself and of its bytes (`link_to`), so that changing any of them breaks the link."""

    key: str
    sha256: str

    def text(self) -> str:
        return f"{self.key} {self.sha256}"

    @classmethod
    def parse(cls, text: str) -> Link | None:
        key, _, sha = text.strip().rpartition(" ")
        return cls(key, sha) if key and len(sha) == 64 else None


def link_to(key: str, data: bytes, meta: Mapping[str, str]) -> Link:
    """How the batch after the object at `key` (with these bytes and S3 metadata) names it. An
    object with no jitaccess metadata (a batch of a jitaccess from before the chain) counts as
    naming nothing."""
    carried = meta.get(PREVIOUS, "") if DIGEST in meta else ""
    return Link(key, digest(f"{key}\n{carried}\n{digest(data)}".encode()))


def signed_message(key: str, data: bytes, meta: Mapping[str, str]) -> bytes:
    """What a batch's signature is of: its key, the link it carries and its bytes, as its successor's
    link digest covers them (`link_to`), so that none can change without the signature failing."""
    return f"jitaccess audit batch v1\n{link_to(key, data, meta).text()}".encode()


def user_metadata(raw: Mapping[str, str] | None) -> dict[str, str]:
    """S3 user metadata as boto3 returns it, with names lower-cased (S3 keeps them so; a stand-in
    or a proxy may not), to read the chain's names from."""
    return {str(k).lower(): str(v) for k, v in (raw or {}).items()}


def metadata(data: bytes, previous: Link | None) -> dict[str, str]:
    """The S3 user metadata of a batch holding `data`, written after `previous` (None: the first)."""
    return {DIGEST: digest(data), PREVIOUS: previous.text() if previous else ""}


@dataclass(frozen=True)
class Stored:
    """One key of the archive as the bucket holds it: its current version's bytes and metadata
    (None when the current version is a delete marker), and how many versions the bucket keeps."""

    key: str
    data: bytes | None
    metadata: dict[str, str]
    versions: int = 1

    @property
    def recorded(self) -> str:
        return self.metadata.get(DIGEST, "")

    @property
    def previous(self) -> str | None:
        """What the batch names as its previous one: `KEY DIGEST`, empty (the first), None (no chain)."""
        return self.metadata.get(PREVIOUS, "") if DIGEST in self.metadata else None


@dataclass(frozen=True)
class Finding:
    key: str
    problem: bool  # False: a fact worth saying (a chain starts), not a sign of tampering
    text: str


def verify(
    stored: Iterable[Stored],
    earlier: Callable[[str], str | None],
    signature_valid: Callable[[bytes, str], bool] | None = None,
) -> list[Finding]:
    """What the window's keys (`stored`) say about the chain, oldest key first. `earlier(key)`: the
    link digest (`link_to`) of the object at `key`, for a batch before the window that the first
    one in it names; None when there is no such object. With `signature_valid(message, signature)`
    (the check of a public key), every batch of the window must carry a signature it accepts."""
    batches = sorted(stored, key=lambda s: s.key)
    findings: list[Finding] = []
    if signature_valid is not None:
        findings += [f for s in batches if s.data is not None for f in _signature(s, signature_valid)]
    here = {s.key: s for s in batches if s.data is not None}
    followers: defaultdict[str, list[str]] = defaultdict(list)
    chained = [s for s in batches if s.data is not None and s.previous is not None]
    first_chained = chained[0].key if chained else None
    for s in batches:
        if s.versions > 1:
            findings.append(
                Finding(s.key, True, f"the bucket holds {s.versions} versions of it: jitaccess writes a key once")
            )
        if s.data is None:
            findings.append(Finding(s.key, True, "deleted (its current version is a delete marker)"))
            continue
        if s.previous is None:
            if first_chained is not None and s.key > first_chained:
                findings.append(Finding(s.key, True, "no jitaccess digest: not written by the operator"))
            else:
                findings.append(Finding(s.key, False, "no jitaccess digest (written before the chain began)"))
            continue
        if digest(s.data) != s.recorded:
            findings.append(Finding(s.key, True, "changed after it was written: its bytes no longer have its digest"))
        previous = s.previous
        if not previous:
            if s.key != first_chained:
                # The operator starts a chain only in an empty archive: the batches before it were there.
                findings.append(
                    Finding(s.key, True, f"starts a chain of its own after {first_chained}: it should follow one")
                )
            else:
                findings.append(Finding(s.key, False, "a chain starts here (the first batch of its writer's archive)"))
            continue
        link = Link.parse(previous)
        if link is None:
            findings.append(Finding(s.key, True, f"names its previous batch unreadably ({previous!r})"))
            continue
        followers[link.key].append(s.key)
        if link.key >= s.key:
            findings.append(Finding(s.key, True, f"names {link.key} as its previous batch, which is not older"))
            continue
        before = here.get(link.key)
        if before is not None and before.data is not None:  # `here` holds only keys with bytes
            held: str | None = link_to(before.key, before.data, before.metadata).sha256
        elif link.key >= batches[0].key:
            held = None  # in the window, and not there
        else:
            held = earlier(link.key)
        if held is None:
            findings.append(Finding(s.key, True, f"follows {link.key}, which is missing: deleted?"))
        elif held != link.sha256:
            findings.append(
                Finding(link.key, True, f"changed or replaced since {s.key} was written after it: its digest differs")
            )
    newest = chained[-1].key if chained else None
    for key, after in sorted(followers.items()):
        if len(after) > 1:
            findings.append(
                Finding(
                    key,
                    True,
                    f"{len(after)} batches follow it ({', '.join(after)}): one was slipped in, or two operators "
                    "wrote at once",
                )
            )
    for s in chained:
        if s.key != newest and s.key not in followers:
            findings.append(
                Finding(s.key, True, "no later batch follows it: the one after it is missing, or it was slipped in")
            )
    return sorted(findings, key=lambda f: (f.key, f.text))


def _signature(s: Stored, valid: Callable[[bytes, str], bool]) -> list[Finding]:
    assert s.data is not None
    signature = s.metadata.get(SIGNATURE)
    if not signature:
        return [Finding(s.key, True, "not signed: written before signing was turned on, or not by the operator")]
    if not valid(signed_message(s.key, s.data, s.metadata), signature):
        return [Finding(s.key, True, "its signature does not verify with the public key given: not signed by it")]
    return []

"""Multi-party approval: an Entitlement's `approval.approvalsRequired` distinct approvers.

Every approver approves the same way (`jitaccess.dev/approved=true`), and an annotation is one
key, so the mutating webhook keeps the list: each approval it admits is appended to the annotation
`jitaccess.dev/approvals` (JSON: `[{"by": user, "groups": [...]}]`, from the authenticated
caller, never from the client). While approvals are missing it removes `approved` (and
`decision-reason`, kept in the entry) again, so that the next approver writes it afresh; the
approval that completes the count stays, with the usual `approved-by` stamp.

Counted: distinct usernames, each an approver of the owner team (a backup approver only once the
request has escalated), never the requester. The operator re-derives the count from the stamped
list and the live TeamOwnership before it grants; `status.approvals` only records when it counted
each one. The webhook counts the same way, against the same live team: an approval stamped before
its approver left the team does not complete the count for the next one (who would otherwise stamp
`approved-by` on approvals the operator then finds short, and nobody could decide any more).
Nor does an approval whose approver's Identity Center account has since been disabled or deleted
(a leader who has left, whom the TeamOwnership may still name): the handlers ask Identity Center
(`handlers.eligibility.approvers_gone`) and pass its answers in as `gone`, so that the webhook and
the operator leave the same approvals out, and the request waits for another approver.
The approval that completes the count is the list's last entry, and `approved-by` names it.
Pure functions on wire dicts; admission wraps their answers (`domain.admission`).
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any

from jitaccess.api import names, wire
from jitaccess.api.models import Entitlement, TeamOwnershipSpec
from jitaccess.domain.teams import Caller, may_approve, stamped_groups

APPROVALS = names.ANNOTATION_APPROVALS
#: `gone` when nobody's approval stopped counting for their Identity Center account (`count`).
NOBODY_GONE: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True)
class Given:
    """One approval as the webhook stamped it."""

    by: str
    groups: frozenset[str]
    reason: str = ""


def required(entitlement: Entitlement | None) -> int:
    return entitlement.spec.approval.approvals_required if entitlement is not None else 1


def given(annotations: Mapping[str, str]) -> list[Given]:
    """The approvals stamped so far, in order. Anything malformed counts as none (fail closed):
    only the webhook writes the annotation."""
    try:
        raw = json.loads(annotations.get(APPROVALS) or "[]")
    except ValueError:
        return []
    if not isinstance(raw, list):
        return []
    found = []
    for entry in raw:
        if not isinstance(entry, dict) or not isinstance(entry.get("by"), str) or not entry["by"]:
            return []
        groups = entry.get("groups") or []
        reason = entry.get("reason") or ""
        if not isinstance(groups, list) or not isinstance(reason, str):
            return []
        found.append(Given(entry["by"], frozenset(str(g) for g in groups), reason))
    return found


def encode(approvals: Sequence[Given]) -> str:
    """The annotation's text: compact, keys sorted, so the same list is always the same string, and
    unicode kept as it is: the ValidatingAdmissionPolicy compares each new entry's `by` and `groups`
    with the caller's, as text (examples/admission-policy.yaml)."""
    entries = []
    for a in approvals:
        entry: dict[str, object] = {"by": a.by, "groups": sorted(a.groups)}
        if a.reason:
            entry["reason"] = a.reason
        entries.append(entry)
    return json.dumps(entries, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def appended(stored: str, approval: Given) -> str:
    """The stored list's text with `approval` added at its end, the stored part kept byte for byte:
    the admission policy lets the list only grow (the new text starts with the old one), and a list
    a previous release wrote (its non-ASCII escaped, `\\u00e9`) would not re-encode to the same text."""
    entry = encode([approval])[1:-1]
    text = stored.strip()
    if not text or text == "[]" or not text.endswith("]"):
        return f"[{entry}]"
    return f"{text[:-1]},{entry}]"


def progress(count: int, needed: int) -> str:
    """`1/2`: the APPROVALS column."""
    return f"{count}/{needed}"


@dataclass(frozen=True)
class Stamp:
    """What the webhook writes for an approval it admits: `annotations` set, `removed` taken out."""

    annotations: dict[str, str]
    removed: tuple[str, ...] = ()


def stamp(
    before: Mapping[str, str], caller: Caller, needed: int, reason: str, by_stamps: dict[str, str], counting: int
) -> Stamp | str:
    """The caller's approval added to the list (MUTATE); a refusal message when it may not count.

    `by_stamps` are the usual `approved-by` stamps, written when this approval completes the count:
    when `counting` (of the stored approvals, those that still count, `count`) and this one make
    `needed`.
    """
    so_far = given(before)
    if any(a.by == caller.username for a in so_far):
        return (
            f"{caller.username} has already approved this request ({progress(len(so_far), needed)}): each approver "
            f"counts once, and approvalsRequired is {needed}; another approver of the owner team must approve"
        )
    mine = Given(caller.username, stamped_groups(caller), reason)
    annotations = {APPROVALS: appended(before.get(APPROVALS, ""), mine) if so_far else encode([mine])}
    if counting + 1 >= needed:
        return Stamp({**annotations, **by_stamps})
    removed = (names.ANNOTATION_APPROVED,) + ((names.ANNOTATION_DECISION_REASON,) if reason else ())
    return Stamp(annotations, removed)


def validated(
    before: Mapping[str, str], after: Mapping[str, str], caller: Caller, needed: int, counting: int
) -> str | None:
    """At VALIDATE, an approvals list that changed without the approval itself in the object (the
    webhook took `approved` out again): it must be the stored list plus the caller's one entry,
    still short of the count (`counting`: the stored approvals that count, `count`). Why not, or None."""
    was, now = given(before), given(after)
    if any(a.by == caller.username for a in was):
        return f"{caller.username} has already approved this request"
    if len(now) != len(was) + 1 or now[:-1] != was or counting + 1 >= needed:
        return "the approvals list must be the stored one plus the caller's approval"
    last = now[-1]
    if last.by != caller.username or last.groups != stamped_groups(caller):
        return "the last approval in the list must be the authenticated caller's"
    return None


@dataclass(frozen=True)
class Count:
    """The approvals that count (distinct approvers allowed to approve), and why others do not."""

    counted: tuple[str, ...]
    rejected: tuple[str, ...]
    #: Each approver whose approval does not count, with why (`rejected`, by name).
    why_not: tuple[tuple[str, str], ...] = ()


def count(
    approvals: Sequence[Given],
    team: TeamOwnershipSpec,
    requester: str,
    escalated_at: Callable[[str], bool],
    gone: Mapping[str, str] = NOBODY_GONE,
) -> Count:
    """Which stamped approvals count: `escalated_at(by)` says whether the request had escalated when
    `by` approved (a backup approver's counts only then). `gone`: approvers whose Identity Center
    account is disabled or deleted, with why (`handlers.eligibility.approvers_gone`); theirs does not
    count, as an approval whose approver left the team does not."""
    counted: list[str] = []
    rejected: list[str] = []
    why_not: list[tuple[str, str]] = []
    for a in approvals:
        if a.by in counted:
            rejected.append(f"{a.by} approved twice and counts once")
            continue
        refusal = may_approve(team, Caller(a.by, a.groups), requester=requester, escalated=escalated_at(a.by))
        if refusal is None and a.by in gone:
            refusal = gone[a.by]
        if refusal is not None:
            rejected.append(refusal)
            why_not.append((a.by, refusal))
            continue
        counted.append(a.by)
    return Count(tuple(counted), tuple(rejected), tuple(why_not))


def completed_by(approvals: Sequence[Given], approved_by: str) -> str | None:
    """Why a stamped `approved-by` is not the approval that completed the list (its last entry): the
    webhook stamps both together, so anything else was written by hand. None when it is."""
    if not approvals or approvals[-1].by != approved_by:
        last = approvals[-1].by if approvals else "nobody"
        return (
            f"{names.ANNOTATION_APPROVED_BY} is {approved_by}, but the last approval in {APPROVALS} is {last}'s: "
            "the approval that completes the count is the last one listed, and only the admission webhook "
            "writes both"
        )
    return None


def approved_at(times: Mapping[str, datetime], by: str, now: datetime) -> datetime:
    """When the operator counted `by`'s approval (status.approvals), never later than `now`."""
    return min(times.get(by) or now, now)


def in_words(approvers: Sequence[str]) -> str:
    if len(approvers) <= 1:
        return "".join(approvers)
    return ", ".join(approvers[:-1]) + f" and {approvers[-1]}"


def completion_taken(by: str, withdraw: str, instead: str) -> str:
    """What is left of a request or extension whose approval stamped as completing the count (by
    `by`, when known) no longer completes it: nothing another approval can do, since a completion
    stamped is final; `withdraw` is the command that withdraws it, `instead` what follows."""
    who = f" by {by}" if by else ""
    return (
        f"the approval{who} that was to complete the count was taken, and the others no longer all count, so it "
        f"cannot be approved any more; withdraw it ({withdraw}) and {instead}"
    )


class Effect(enum.Enum):
    """What a decision the API server admitted did, as the object it returned shows it."""

    #: Stored as the clicker's: `approved-by` (`denied-by`) names them.
    DECIDED = "decided"
    #: One approval of several (approvalsRequired > 1): listed in `jitaccess.dev/approvals`, and the
    #: webhook took the approved flag out again, for the next approver to write.
    COUNTED = "counted"
    #: Nothing changed: the request was already decided the same way by someone else (the patch wrote
    #: what was there, which admission lets through as a no-op).
    UNCHANGED = "unchanged"
    #: Stored with nobody's stamp: no admission webhook saw it (a cluster without jitaccess's webhooks),
    #: and the operator takes no unstamped decision.
    UNSTAMPED = "unstamped"


def decision_effect(decided: Mapping[str, Any], username: str, *, approve: bool) -> Effect:
    """What `username`'s approval (or denial) did, read from the request the API server returned: an
    admitted patch is no proof of a decision, as `kubectl jit approve` knows (`cli.decisions`). Read by the
    Slack endpoint (`handlers.interactions`) for its reply to a click."""
    notes = wire.annotations_of(decided)
    flag, by = (
        (names.ANNOTATION_APPROVED, names.ANNOTATION_APPROVED_BY)
        if approve
        else (names.ANNOTATION_DENIED, names.ANNOTATION_DENIED_BY)
    )
    if wire.truthy(notes.get(flag)) and notes.get(by) == username:
        return Effect.DECIDED
    listed = given(notes)
    if approve and not notes.get(by) and not wire.truthy(notes.get(flag)) and any(a.by == username for a in listed):
        return Effect.COUNTED
    if notes.get(by):
        return Effect.UNCHANGED
    return Effect.UNSTAMPED

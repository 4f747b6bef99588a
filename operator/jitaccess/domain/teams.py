"""Who belongs to a team and who may approve for it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from jitaccess.api.models import TeamOwnershipSpec
from jitaccess.domain.durations import parse_duration
from jitaccess.domain.identities import confers_nothing, is_kubernetes_own, unreadable
from jitaccess.errors import InvalidInput


@dataclass(frozen=True)
class Caller:
    """An authenticated identity: the username and groups the API server vouched for."""

    username: str
    groups: frozenset[str] = field(default_factory=frozenset)


#: What separates the groups in a `...-by-groups` stamp (`groups_text`).
GROUPS_SEPARATOR = ","
#: Characters a group's name cannot hold to be recorded in a decision's stamps: the separator, and
#: what the admission policy cannot read in the approvals list's JSON text (a quote, a backslash,
#: a closing bracket), which it checks as text, CEL having no JSON parser.
_UNRECORDABLE = frozenset(GROUPS_SEPARATOR + '"\\]')


def stamped_groups(caller: Caller) -> frozenset[str]:
    """The caller's groups a decision records (`approved-by-groups`, the approvals list): those a
    stamp can carry. Others are left out and so never count for that decision: read back split on
    commas, a group named `x,payments-leads` would have counted as `payments-leads`, which the
    caller is not in; and one unrelated group such as `CORP\\dba` in an approvals list would have made
    the admission policy refuse every approval of its member. TeamOwnerships cannot name approver
    groups with a comma."""
    return frozenset(g for g in caller.groups if not _UNRECORDABLE & set(g))


def groups_text(caller: Caller) -> str:
    """How a caller's groups are stamped (`approved-by-groups`, `denied-by-groups`,
    `reviewed-by-groups`), read back by splitting on the separator (`stamped_groups`)."""
    return GROUPS_SEPARATOR.join(sorted(stamped_groups(caller)))


def conferring(names: Iterable[str], *, group: bool) -> frozenset[str]:
    """The names of a policy field (a team's groups or approvers, an Entitlement's on-call or
    break-glass groups; `group`: a field of groups) that confer what the field gives: all but those
    that confer nothing (`identities.confers_nothing`): Kubernetes' own, and names that read as
    someone else's. Admission refuses both when written; one stored before it did (an upgrade, the
    webhooks down) counts for nobody: `system:authenticated` would have made every user a member,
    an approver or on call, and `p\u0430ula@example.com` (a Cyrillic a) an approver the review read
    as paula."""
    return frozenset(n for n in names if not confers_nothing(n, group=group))


def has_approvers(team: TeamOwnershipSpec) -> bool:
    """Whether the team names anyone who may approve before an escalation: an approver or an
    approver group that confers (`conferring`). A team that names none can approve no request from
    outside it (backup approvers decide only after an escalation, which needs a pending request)."""
    return bool(conferring(team.approvers, group=False) or conferring(team.approver_groups, group=True))


def approves_nothing_note(team: TeamOwnershipSpec, *, backups: bool = False) -> str:
    """`; X and Y are Kubernetes' own (system:) and approve nothing; 'p\u0430ula@example.com' mixes the
    scripts Cyrillic and Latin and approves nothing`: why names among the team's approvers and
    approver groups (and its backup approvers' with `backups`) are not counted (`conferring`), for a
    message that says whom the team lacks; empty when there are none."""
    fields = [(team.approvers, False), (team.approver_groups, True)]
    if backups:
        fields += [(team.backup_approvers, False), (team.backup_approver_groups, True)]
    own = list(dict.fromkeys(n for names, _ in fields for n in names if is_kubernetes_own(n)))
    note = ""
    if own:
        one = len(own) == 1
        listed = own[0] if one else f"{', '.join(own[:-1])} and {own[-1]}"
        note = f"; {listed} {'is' if one else 'are'} Kubernetes' own (system:) and approve{'s' if one else ''} nothing"
    unread = {n: said for names, group in fields for n in names if (said := unreadable(n, group=group))}
    return note + "".join(f"; {n!r} {said} and approves nothing" for n, said in unread.items() if n not in own)


def is_member(team: TeamOwnershipSpec, caller: Caller) -> bool:
    return caller.username in conferring(team.members, group=False) or bool(
        caller.groups & conferring(team.member_groups, group=True)
    )


def is_approver(team: TeamOwnershipSpec, caller: Caller) -> bool:
    return caller.username in conferring(team.approvers, group=False) or bool(
        caller.groups & conferring(team.approver_groups, group=True)
    )


def is_backup_approver(team: TeamOwnershipSpec, caller: Caller) -> bool:
    return caller.username in conferring(team.backup_approvers, group=False) or bool(
        caller.groups & conferring(team.backup_approver_groups, group=True)
    )


def may_approve(team: TeamOwnershipSpec, caller: Caller, *, requester: str, escalated: bool) -> str | None:
    """Why `caller` may not decide on a request of `requester`; None when they may."""
    if caller.username == requester:
        return f"{caller.username} requested this access and cannot decide on it: ask an approver of the team"
    if is_approver(team, caller):
        return None
    if is_backup_approver(team, caller):
        if escalated:
            return None
        return f"{caller.username} is a backup approver: they may decide only after the request has escalated"
    return f"{caller.username} is not an approver of the owner team"


def team_problems(team: TeamOwnershipSpec) -> list[str]:
    """What makes a TeamOwnership unusable, each as a sentence that says the fix."""
    problems = []
    if team.escalate_after:
        try:
            parse_duration(team.escalate_after, "spec.escalateAfter")
        except InvalidInput as exc:
            # Stored before admission checked it: every request that needs an approver would end Invalid.
            problems.append(f"{exc}: requests that need an approver cannot be decided until it is fixed")
    if not has_approvers(team):
        problems.append(
            "the team has no approvers: set spec.approvers or spec.approverGroups, "
            "or requests from outside the team can never be approved" + approves_nothing_note(team)
        )
    return problems

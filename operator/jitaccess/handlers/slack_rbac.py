"""Is the Slack impersonator allowed to act as every approver, and as nobody else? Told on the
TeamOwnership when not.

The identity that applies Slack decisions may impersonate only the users its ClusterRole lists
(`domain.impersonation`, printed by `kubectl jit rbac slack`). When a TeamOwnership names an
approver that ClusterRole does not list (a new tech lead, a role not re-applied), that approver's
clicks are refused: this handler asks RBAC for each approver (a SelfSubjectAccessReview as the
impersonator) whenever a TeamOwnership is listed or its spec changes, and posts a Warning Event
on it and a log line naming the fix. A `system:` approver (stored before admission refused it) is
not asked about: it approves nothing, and the fix the warning names refuses it
(`impersonation.usernames` never yields one).

The other way round: someone taken out of a team's approvers in Git (lena, no longer ledger's tech
lead) stays in that ClusterRole, and with the chart bound to the approver ClusterRole too
(`slack.approvers`), until someone renders them again. At the same moments, and when a
TeamOwnership is deleted, the handler asks RBAC whom the impersonator may impersonate (a
SelfSubjectRulesReview) and compares that with the approvers and backup approvers of every team
(the teams index); those who are none are logged, naming the fix, and, when a team's change made
them so, a Warning Event is posted on that team. The same names are said once, not at every team
listed at start-up.

It writes (Events), so it runs on the leader only (the controller part); the endpoint itself runs on
every replica (`handlers.interactions`).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf

from jitaccess.adapters.impersonation import DecisionError, Impersonator
from jitaccess.api import names
from jitaccess.domain import impersonation
from jitaccess.handlers.common import NO_INDEX, Index
from jitaccess.handlers.interactions import impersonator_of
from jitaccess.settings import Settings, load

log = logging.getLogger(__name__)
_CHECKER, _CHECKED = "slack_impersonator_check", "slack_impersonator_checked"
#: Memo key: the users found last that the impersonator may act as but who are no approver.
_EXTRA = "slack_impersonator_extra"
REASON = "SlackApproverNotImpersonable"
EXTRA_REASON = "SlackNonApproverImpersonable"
#: The name `not_approvers_text` gives "any user" (an impersonate rule without resourceNames).
ANYONE = "any user"


@kopf.on.startup()
def impersonator_for_checks(memo: kopf.Memo, **_: Any) -> None:
    config: Settings = memo.get("settings") or load()
    if config.slack_interactions_port and config.slack_signing_secret:
        memo[_CHECKER] = impersonator_of(config)
        memo[_CHECKED] = {}


@kopf.on.cleanup()
def close_checks(memo: kopf.Memo, **_: Any) -> None:
    checker = memo.get(_CHECKER)
    if isinstance(checker, Impersonator):
        checker.close()


def missing_text(team: str, missing: list[str]) -> str:
    return (
        f"the Slack interactivity endpoint may not act as {', '.join(missing)} (approvers of team {team}): their "
        "Approve and Deny clicks in Slack are refused until the impersonator's ClusterRole lists them. Fix: "
        "`kubectl jit rbac slack | kubectl apply -f -`, or with the chart, `kubectl jit rbac slack -o values` into "
        "the release's values (slack.approvers) and upgrade"
    )


def not_approvers_text(extra: list[str]) -> str:
    if extra == [ANYONE]:
        who = (
            "any user: a rule of the impersonator's RBAC lets it impersonate users with no resourceNames, so a "
            "click could be applied as anyone"
        )
    else:
        who = (
            f"{', '.join(extra)}, who {'are' if len(extra) > 1 else 'is'} no approver or backup approver of any "
            "TeamOwnership now: the impersonator's ClusterRole lists them and, with the chart, slack.approvers also "
            "binds them to the approver ClusterRole, where nobody but approvers must be"
        )
    return (
        f"the Slack interactivity endpoint may still act as {who}. Fix: with the chart, "
        "`kubectl jit rbac slack -o values` into the release's values (slack.approvers) and upgrade; without, "
        "`kubectl jit rbac slack | kubectl apply -f -`"
    )


async def _check_not_approvers(
    checker: Impersonator, type: str | None, body: kopf.Body, teams: Index, memo: kopf.Memo
) -> None:
    """Report the users the impersonator may act as who are no approver of any team now, when one
    appears who was not reported last: on the TeamOwnership whose change (or creation) made it so,
    and in the log (a log line too once there are none)."""
    try:
        users = await asyncio.to_thread(checker.impersonable)
    except DecisionError as exc:
        log.warning("cannot tell whom the Slack impersonator may act as: %s", exc.message)
        return
    every_team = [{"spec": spec} for name in teams for spec in teams[name]]
    extra = [ANYONE] if users is None else impersonation.not_approvers(users, every_team)
    before: list[str] = memo.get(_EXTRA) or []
    memo[_EXTRA] = extra
    if not extra:
        if before:
            log.info("the Slack interactivity endpoint may act as approvers only again (%s before)", ", ".join(before))
        return
    if set(extra) <= set(before):
        return  # said already
    message = not_approvers_text(extra)
    if type in ("ADDED", "MODIFIED"):
        kopf.warn(body, reason=EXTRA_REASON, message=message[:1000])
    log.warning("TeamOwnership %s %s: %s", body.metadata.name, (type or "listed").lower(), message)


@kopf.on.event(names.GROUP, names.VERSION, names.TEAMS)
async def check_impersonation(
    type: str | None, body: kopf.Body, memo: kopf.Memo, teams: Index = NO_INDEX, **_: Any
) -> None:
    checker, checked = memo.get(_CHECKER), memo.get(_CHECKED)
    if not isinstance(checker, Impersonator) or not isinstance(checked, dict):
        return
    name = body.metadata.name
    if type == "DELETED":
        checked.pop(name, None)
        await _check_not_approvers(checker, type, body, teams, memo)
        return
    generation = body.metadata.get("generation")
    if checked.get(name) == generation:
        return  # a status write, or a re-listing: the spec was checked already
    checked[name] = generation
    await _check_not_approvers(checker, type, body, teams, memo)
    missing = []
    for username in impersonation.usernames([body]):
        try:
            allowed = await asyncio.to_thread(checker.may_impersonate, username)
        except DecisionError as exc:
            log.warning("cannot tell whether the Slack impersonator may act as %s: %s", username, exc.message)
            checked.pop(name, None)  # asked again at the next event
            continue
        if not allowed:
            missing.append(username)
    if missing:
        message = missing_text(name, missing)
        kopf.warn(body, reason=REASON, message=message[:1000])
        log.warning("TeamOwnership %s: %s", name, message)

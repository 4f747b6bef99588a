"""Is the Slack impersonator allowed to act as every approver? Told on the TeamOwnership when not.

The identity that applies Slack decisions may impersonate only the users its ClusterRole lists
(`domain.impersonation`, printed by `kubectl jit rbac slack`). When a TeamOwnership names an
approver that ClusterRole does not list (a new tech lead, a role not re-applied), that approver's
clicks are refused: this handler asks RBAC for each approver (a SelfSubjectAccessReview as the
impersonator) whenever a TeamOwnership is listed or its spec changes, and posts a Warning Event
on it and a log line naming the fix. A `system:` approver (stored before admission refused it) is
not asked about: it approves nothing, and the fix the warning names refuses it
(`impersonation.usernames` never yields one). It writes (Events), so it runs on the leader only (the
controller part); the endpoint itself runs on every replica (`handlers.interactions`).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf

from jitaccess.adapters.impersonation import DecisionError, Impersonator
from jitaccess.api import names
from jitaccess.domain import impersonation
from jitaccess.handlers.interactions import impersonator_of
from jitaccess.settings import Settings, load

log = logging.getLogger(__name__)
_CHECKER, _CHECKED = "slack_impersonator_check", "slack_impersonator_checked"
REASON = "SlackApproverNotImpersonable"


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


@kopf.on.event(names.GROUP, names.VERSION, names.TEAMS)
async def check_impersonation(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    checker, checked = memo.get(_CHECKER), memo.get(_CHECKED)
    if not isinstance(checker, Impersonator) or not isinstance(checked, dict):
        return
    name = body.metadata.name
    if type == "DELETED":
        checked.pop(name, None)
        return
    generation = body.metadata.get("generation")
    if checked.get(name) == generation:
        return  # a status write, or a re-listing: the spec was checked already
    checked[name] = generation
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

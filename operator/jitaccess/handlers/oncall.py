"""On-call approvers: members of an Entitlement's on-call groups get it at once, "auto (on call)".

`approval.autoApproveGroups` are Kubernetes groups, read from the requester's groups as admission
stamped them; `approval.autoApproveIdentityCenterGroups` are Identity Center groups (kept current by
the paging tool's own sync), asked live at the moment of the request and again right before access
begins: a membership is never cached across requests, so an on-call shift that ended a second
before the request approves nothing (the request waits for the approvers as any other).
"""

from __future__ import annotations

from jitaccess.domain import requests as request_rules
from jitaccess.errors import NotFound
from jitaccess.handlers.runtime import Runtime

#: `status.approvalSummary`, and how the approval's message begins.
SUMMARY = "auto (on call)"


def on_call_group(rt: Runtime, valid: request_rules.ValidRequest) -> str | None:
    """The on-call group that makes the requester auto-approved now, or None.

    Raises `RetryLater` when Identity Center does not answer: the handler tries again.
    """
    approval = valid.entitlement.spec.approval
    kubernetes = request_rules.on_call_kubernetes_groups(valid)
    if kubernetes:
        return f"{kubernetes[0]} (Kubernetes group)"
    wanted = approval.auto_approve_identity_center_groups
    if not wanted:
        return None
    ic = rt.identity_center
    try:
        user_id = valid.user_id or rt.cached("user", valid.requester, ic.resolve_user)
    except NotFound:
        return None
    ids: dict[str, str] = {}
    for name in wanted:
        try:
            # A group's id is stable (cached briefly); who is in it is asked afresh below.
            ids[rt.cached("group", name, ic.resolve_group)] = name
        except NotFound:
            continue  # a group that does not exist has nobody on call
    if not ids:
        return None
    try:
        ids, answer = rt.missing_groups(ic, user_id, ids)
        missing = set(answer)
    except NotFound:
        return None
    held = [name for group_id, name in ids.items() if group_id not in missing]
    return f"{held[0]} (Identity Center group)" if held else None

"""An AccessRequest deleted while the access it led to runs: the grant ends with it.

Admission refuses to delete such a request (it is the audit record of that access), so this
happens only when the webhook was bypassed, by a cluster administrator say. Access with no request
to account for it is not left behind until it expires: its grant is revoked, and says why.

A watch event is the only trace a deleted request leaves (requests carry no finalizer: one would
cost every request two more writes). A request deleted while the operator is down is not seen.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf

from jitaccess.api import names
from jitaccess.domain import requests as request_rules
from jitaccess.errors import RetryLater
from jitaccess.handlers.grants import end_grant
from jitaccess.handlers.runtime import runtime_of

log = logging.getLogger(__name__)
WHY = "its AccessRequest was deleted"


def _deleted_with_access(type: str | None, body: kopf.Body, **_: Any) -> bool:
    return type == "DELETED" and request_rules.access_not_ended(body) is not None


@kopf.on.event(names.GROUP, names.VERSION, names.REQUESTS, when=_deleted_with_access)
async def end_grant_of_deleted_request(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    rt, grant = runtime_of(memo), request_rules.access_not_ended(body)
    if grant is None:
        return
    log.warning(
        "AccessRequest %s was deleted while its access runs: revoking AccessGrant %s", body.metadata.name, grant
    )
    while True:
        try:
            await rt.run_blocking(end_grant, rt, grant, names.REVOKED, rt.holders, why=WHY)
            return
        except RetryLater as exc:
            # Nothing retries an event handler: keep at it until Identity Center answers.
            log.warning("revoking %s: Identity Center not answering (%s); retrying", grant, exc)
            await asyncio.sleep(1.0)

"""Operator start-up: kopf settings, and the Runtime (adapters) the handlers share."""

from __future__ import annotations

import logging
from typing import Any

import kopf

from jitaccess.adapters.identitycenter import IdentityCenter
from jitaccess.adapters.kube import Kube, load_client_config
from jitaccess.handlers.runtime import Runtime
from jitaccess.settings import Settings

log = logging.getLogger(__name__)


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    runtime = memo.get("runtime")
    config: Settings = runtime.settings if isinstance(runtime, Runtime) else memo.get("settings") or Settings()

    # kopf's bookkeeping lives in status, which only the operator may write (RBAC): a user who
    # could edit an annotation must not be able to mark a handler as done.
    settings.persistence.progress_storage = kopf.StatusProgressStorage(field="status.kopf.progress")
    settings.persistence.diffbase_storage = kopf.StatusDiffBaseStorage(field="status.kopf.diffbase")
    settings.persistence.finalizer = "jitaccess.dev/finalizer"
    # Our own Events carry the decisions; kopf's per-handler chatter is kept to errors.
    settings.posting.level = logging.WARNING
    settings.posting.reporting_component = "jitaccess"
    settings.execution.max_workers = config.max_workers
    settings.execution.default_backoff = 5
    settings.watching.server_timeout = 300
    settings.networking.request_timeout = 60
    settings.peering.standalone = config.standalone
    if not config.standalone:
        # Replicas elect one active operator through a ClusterKopfPeering object (the chart ships it).
        settings.peering.name = config.peering_name
        settings.peering.clusterwide = True
        settings.peering.mandatory = True

    if not isinstance(runtime, Runtime):
        load_client_config()
        memo["runtime"] = Runtime(
            settings=config,
            identity_center=IdentityCenter.connect(
                config.identity_store_id,
                region=config.region,
                endpoint_url=config.endpoint_url,
                rate_limit=config.rate_limit,
                max_attempts=config.aws_max_attempts,
            ),
            kube=Kube(),
        )
    rt: Runtime = memo["runtime"]
    log.info(
        "jitaccess started: identity store %s, rate limit %s/s, minimum duration %ss",
        rt.identity_center.identity_store_id,
        config.rate_limit,
        config.min_duration_seconds,
    )


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """In-cluster service account, else the kubeconfig named by KUBECONFIG *now*.

    kopf's default piggybacks on the `kubernetes` client, which reads KUBECONFIG once at import.
    """
    info: kopf.ConnectionInfo | None = kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)
    return info

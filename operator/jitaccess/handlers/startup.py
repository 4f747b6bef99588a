"""Operator start-up: kopf settings, the Runtime (adapters) the handlers share, and the admission
webhook server with its TLS and the identity it trusts as the operator.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ipaddress
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import kopf

from jitaccess import metrics
from jitaccess.adapters.identitycenter import IdentityCenter
from jitaccess.adapters.kube import Kube, load_client_config
from jitaccess.adapters.tls import temporary_serving_files
from jitaccess.adapters.webhooks import (
    Broadened,
    NotAsDefined,
    NoWebhookServer,
    ServiceRef,
    Unchecked,
    Unreadable,
    WebhookServer,
    configuration_problem,
    own_username,
    policy_problem,
)
from jitaccess.api import names, wire
from jitaccess.domain.admission import OperatorIdentity
from jitaccess.handlers import diffbase
from jitaccess.handlers.admission import OPERATOR_IDENTITY
from jitaccess.handlers.indexes import expiring, file_undecided, holdings
from jitaccess.handlers.leadership import Leadership
from jitaccess.handlers.runtime import Runtime
from jitaccess.listening import described
from jitaccess.settings import Settings, load

log = logging.getLogger(__name__)
#: Memo keys `jitaccess.main` sets: this kopf operator is the admission part (`handlers.parts`),
#: and the `Leadership` that says whether this replica may change Identity Center memberships.
ADMISSION_PART, LEADERSHIP = "admission_part", "leadership"
#: The admission part runs no handler that needs a finalizer, and kopf removes its configured
#: finalizer from every object when none does: it is given one that no object ever carries.
NO_FINALIZER = f"{names.GROUP}/none"


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    runtime = memo.get("runtime")
    config: Settings = runtime.settings if isinstance(runtime, Runtime) else memo.get("settings") or load()

    kopf_settings(settings, config)
    if memo.get(ADMISSION_PART):
        settings.persistence.finalizer = NO_FINALIZER
        # It handles no change of any object, but reads the diff-base of each it sees: what the
        # controller holds in memory (`diffbase`) is not for it, nor to be let go when it sees it.
        settings.persistence.diffbase_storage = diffbase.StatusDiffBase(field=diffbase.FIELD)

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
    if memo["runtime"].admission_identity_center is None:
        memo["runtime"].admission_identity_center = memo["runtime"].identity_center.quick()
    leadership = memo.get(LEADERSHIP)
    if isinstance(leadership, Leadership):
        memo["runtime"].identity_center.may_write = leadership.leading
    _configure_admission(settings, memo, config)
    rt: Runtime = memo["runtime"]
    know_what_is_stored(rt)
    log.info(
        "jitaccess started: identity store %s, rate limit %s/s, minimum duration %ss",
        rt.identity_center.identity_store_id,
        config.rate_limit,
        config.min_duration_seconds,
    )


def know_what_is_stored(rt: Runtime) -> None:
    """What the handlers and webhooks must know before the first of them runs, from a listing of the
    grants and requests, before kopf's watches start (they show the same again, and what changed since):

    - every grant's holding (`Runtime.holders`), so no grant can expire before the operator knows
      every holder, and the overdue grants first in the expiry scheduler, so they are the first it
      ends, before kopf adopts anything; every grant's name (`grant_names`);
    - the requests that wait for a decision (`Runtime.waiting`, `Runtime.pending`): kopf starts the
      webhook server with its watches, and this replica's webhooks answer before its requests' watch
      has listed them. Without them, a replica new in a rollout admitted a second request for an
      access that one waits for already, and more than maxPendingPerUser (`requests.waiting_problem`).

    And the grants not ended whose access is in another identity store than the one the operator
    points at now (`status.identityStoreId`): said at ERROR (`say_other_stores`), since none of
    them can end (`grants.in_operators_store`) until it points at that store again.
    """
    listed: list[str] = []
    stores: collections.Counter[str] = collections.Counter()  # of the grants not ended, by the store recorded
    for grant in rt.kube.each(names.GRANTS):
        name, expiration = grant["metadata"]["name"], expiring(grant)
        listed.append(name)
        recorded = wire.status(grant).get("identityStoreId")
        if recorded and wire.ready_reason(grant) not in names.GRANT_FINISHED:
            stores[str(recorded)] += 1
        rt.holders.file(name, holdings(grant), name)
        if expiration is not None:
            rt.expiries.schedule(name, expiration)
    rt.grant_names.listed(listed)
    for request in rt.kube.each(names.REQUESTS):
        file_undecided(rt, wire.name_of(request), None if wire.deleting(request) else request)
    if stores:
        configured = rt.identity_center.identity_store_id
        say_other_stores({store: count for store, count in stores.items() if store != configured}, configured)


def say_other_stores(elsewhere: Mapping[str, int], configured: str) -> None:
    """One ERROR line (counted in `jitaccess_errors_total{kind="operator"}`) when grants not ended
    hold access in other identity stores than `configured` (`elsewhere`: how many per store):
    config.identityStoreId (or the region) was changed while they ran. Their ends are refused and
    retried; once one is past its time, `JitaccessExpiryLate` fires and its `ExpiryOverdue` Event
    says the same."""
    if not elsewhere:
        return
    stores = ", ".join(f"{count} in {store}" for store, count in sorted(elsewhere.items()))
    log.error(
        "%d grant(s) not ended hold access in another identity store than %s, the one the operator points at "
        "now (%s): none of them can end, nor is any removed from %s. Set config.identityStoreId (and "
        "config.region) back until every grant given there has ended, or remove their access there by hand "
        "(docs/upgrading.md#changing-the-identity-store-or-region)",
        sum(elsewhere.values()),
        configured,
        stores,
        configured,
    )


def kopf_settings(settings: kopf.OperatorSettings, config: Settings) -> None:
    """kopf's settings for the handlers (both parts of the operator: `handlers.parts`)."""
    # kopf's bookkeeping lives in status, which only the operator may write (RBAC): a user who
    # could edit an annotation must not be able to mark a handler as done.
    settings.persistence.progress_storage = kopf.StatusProgressStorage(field=diffbase.PROGRESS_FIELD)
    # A handler's last status write may carry kopf's diff-base, sparing kopf's own PATCH (`diffbase`).
    settings.persistence.diffbase_storage = diffbase.CarriedDiffBase(field=diffbase.FIELD)
    settings.persistence.finalizer = names.FINALIZER
    # Our own Events carry the decisions. kopf posts none of its log lines (`posting.loggers` is off
    # by default); should that change, its per-handler chatter is kept to warnings and errors.
    settings.posting.level = logging.WARNING
    settings.posting.reporting_component = "jitaccess"
    settings.execution.max_workers = config.max_workers
    settings.execution.default_backoff = 5
    settings.watching.server_timeout = 300
    # Memory (bench/README.md): kopf hands each listed object to a worker of its own that keeps the
    # whole body until it has been idle `idle_timeout`; at kopf's 5 s and one unpaged listing,
    # every grant and request body was alive at once at start-up (~9 KB each, in both parts), and
    # the freed memory stayed with the process. Paged listings and workers that go once done keep
    # only a few pages of bodies at a time; a worker awaiting its own write's echo stays regardless.
    settings.watching.chunk_size = 100
    settings.queueing.idle_timeout = 0.1
    settings.networking.request_timeout = 60
    # No kopf peering: replicas elect a leader on a Lease (`handlers.leadership`).
    settings.peering.standalone = True


# --- admission webhooks ---------------------------------------------------------------------


def _configure_admission(settings: kopf.OperatorSettings, memo: kopf.Memo, config: Settings) -> None:
    identity = memo[OPERATOR_IDENTITY] = _operator_identity(config)
    # The configurations are ours (`adapters.webhooks.configurations`), not kopf's: kopf's cannot skip
    # the webhook calls for the operator's own writes (matchConditions).
    settings.admission.managed = None
    if not config.webhook_port:
        log.warning(
            "admission webhooks are off (JITACCESS_WEBHOOK_PORT=0): requests get no requester and decisions "
            "no approver, so nothing will be granted; this is only for testing the handlers alone"
        )
        settings.admission.server = NoWebhookServer()
        return
    service = ServiceRef.parse(config.webhook_service) if config.webhook_service else None
    host = config.webhook_host or (service.hostnames[0] if service else "127.0.0.1")
    certfile, keyfile, cafile = config.webhook_certfile, config.webhook_keyfile, config.webhook_cafile
    if not certfile or not keyfile:
        files = temporary_serving_files([host, *(service.hostnames if service else []), "localhost"])
        certfile, keyfile, cafile = str(files.certfile), str(files.keyfile), str(files.cafile)
        if service is not None:
            # Each process makes its own CA, and the last to start writes its caBundle into the
            # webhook configurations: a second replica behind the same Service would fail TLS.
            log.warning(
                "the webhook certificate is generated per process: run one replica, or mount a shared "
                "certificate (JITACCESS_WEBHOOK_CERTFILE, _KEYFILE, _CAFILE)"
            )
    try:
        # Listen only where the API server calls when that is an address of this machine (a local
        # run); in a pod, or behind a DNS name, on the bind address (`listening`).
        addr = str(ipaddress.ip_address(host)) if service is None else config.bind_address
    except ValueError:
        addr = config.bind_address
    # Checked with the webhook configurations (`_keep_checking`), from the same task.
    _trust_of(memo).policy_name = config.admission_policy
    settings.admission.server = WebhookServer(
        addr=addr,
        port=config.webhook_port,
        host=host,
        certfile=certfile,
        pkeyfile=keyfile,
        cafile=cafile,
        service=service,
        operator_usernames=identity.usernames,
        configuration_name=config.webhook_configuration,
        # Applied at start-up in a local run (the chart renders them), and left in place when the
        # operator stops: with failurePolicy Fail, a stopped operator means refused writes, never
        # unchecked ones.
        apply=config.webhook_managed,
    )
    where = (
        f"Service {service.namespace}/{service.name}:{service.port}"
        if service
        else f"https://{host}:{config.webhook_port}"
    )
    log.info("admission webhooks served on %s, called at %s", described(addr, config.webhook_port), where)


def _operator_identity(config: Settings) -> OperatorIdentity:
    """Who the webhooks trust as the operator: the configured names and the one it runs as."""
    names = set(config.operator_usernames)
    try:
        names.add(own_username())
    except Exception as exc:  # any failure means only that the configured names stand alone
        log.error("cannot ask the API server who the operator is (SelfSubjectReview): %s", exc)
    if not names and config.webhook_port:
        # Without it the webhooks would refuse the operator's own writes: better to start again.
        raise kopf.TemporaryError(
            "cannot tell which username is the operator's: the API server did not answer a SelfSubjectReview, "
            "and JITACCESS_OPERATOR_USERNAMES is empty",
            delay=5,
        )
    log.info("admission treats %s as the operator", ", ".join(sorted(names)) or "nobody")
    return OperatorIdentity(frozenset(names))


# --- whether the API server can call the webhooks -------------------------------------------
# Not only at start-up: the caBundle can be replaced (a `kubectl apply` of an old copy, a CA
# rotation half done), and a renewed certificate from another CA is loaded in place while the
# configurations still trust the old one (`WebhookServer._renewed`). Every user's write is then
# refused with x509 errors while this process runs on. Or a webhook is narrowed (a matchCondition
# or selector added), or the admission policy (`JITACCESS_ADMISSION_POLICY`) deleted or bound
# without Deny: writes then go through unchecked, and nothing else fails. So every replica checks
# again every `TRUST_CHECK_SECONDS`, and at once when its certificate changes; the gauge
# `jitaccess_webhook_configured`, the alert JitaccessWebhookNotTrusted and a log line when a
# problem appears and when it goes say so.

#: How often the configurations are checked while they trust this server...
TRUST_CHECK_SECONDS = 30.0
#: ... and while they do not: their repair is seen within seconds.
UNTRUSTED_CHECK_SECONDS = 5.0
#: How often a renewed certificate is looked for (an attribute read, no call).
LOOK_SECONDS = 1.0
_TRUST = "webhook_trust"


@dataclass
class WebhookTrust:
    """What the last check of the webhook configurations found (`problem`; None: in place), and
    whether they were ever in place since this process started (`confirmed`); what the last check of
    the admission policy `policy_name` found (`policy_problem`; never checked without a name)."""

    problem: str | None = "not checked yet"
    confirmed: bool = False
    task: asyncio.Task[None] | None = None
    policy_name: str = ""
    policy_problem: str | None = None

    def _gauge(self) -> None:
        metrics.export(metrics.WEBHOOK_CONFIGURED)
        metrics.WEBHOOK_CONFIGURED.set(0 if self.problem or self.policy_problem else 1)

    def found_policy(self, problem: str | None) -> None:
        """Record a check of the admission policy: the gauge, and a log line when it changes. Not
        part of the readiness of this replica (`webhooks_configured`): without the policy the
        webhooks still check every write, and a replica out of the Service would not bring it back."""
        before, self.policy_problem = self.policy_problem, problem
        self._gauge()
        if problem == before:
            return
        if problem is None:
            log.info("admission policy in place again: its binding denies what it finds (%s before)", before)
        else:
            log.error(
                "admission policy: %s; the API server's own check of the approval stamps and the requester "
                "(under the webhooks, and alone while they are down) lets writes through until the policy and its "
                "binding are as the chart installs them (`helm upgrade` renders them again; docs/operations.md: "
                "'An admission layer is narrowed')",
                problem,
            )

    def found(self, problem: str | None) -> None:
        """Record a check's finding: the gauge, and a log line when it changes. The first finding
        with which the API server can call this server (none, or `NotAsDefined`) confirms it."""
        before, self.problem = self.problem, problem
        self._gauge()
        if problem is None:
            if self.confirmed and before is not None:
                log.info(
                    "admission webhooks: the API server can call this server again, for every write they are "
                    "defined for (%s before)",
                    before,
                )
            self.confirmed = True
            return
        if isinstance(problem, NotAsDefined):
            self.confirmed = True
        if problem == before:
            return
        if isinstance(problem, Unchecked):
            log.error(
                "admission webhooks: %s; the API server does not call them for every write the operator defines "
                "them for, and the writes left out go through unchecked, until the configurations are as defined "
                "again (`helm upgrade` renders them again; docs/operations.md: 'An admission layer is narrowed')",
                problem,
            )
        elif isinstance(problem, Broadened):
            log.warning(
                "admission webhooks: %s; nothing goes through unchecked, until the configurations are as defined "
                "again (`helm upgrade` renders them again; docs/operations.md: 'An admission layer is narrowed')",
                problem,
            )
        elif not self.confirmed:
            # Until then only /healthz said why the replica is not ready, and nobody reads its body:
            # a wrong setting (a Service or CA the chart's configurations do not name) went unexplained.
            log.warning(
                "admission webhooks not in place yet: %s; this replica reports itself not ready (/healthz) until "
                "the webhook configurations call it and trust its certificate",
                problem,
            )
        elif isinstance(problem, Unreadable):
            log.error(
                "admission webhooks: %s; whether the API server can call this server is not known until they can "
                "be read again (the operator's RBAC: get on both webhook configurations)",
                problem,
            )
        else:
            log.error(
                "admission webhooks: %s; the API server cannot call this server, so every user's write to "
                "jitaccess objects is refused (failurePolicy Fail) until the configurations trust its certificate "
                "again (docs/operations.md: 'The webhooks are not trusted')",
                problem,
            )


def _trust_of(memo: kopf.Memo) -> WebhookTrust:
    trust = memo.get(_TRUST)
    if not isinstance(trust, WebhookTrust):
        trust = memo[_TRUST] = WebhookTrust()
    return trust


def _problem(expected: list[dict[str, Any]]) -> str | None:
    try:
        return configuration_problem(expected)
    except Exception as exc:  # the API server not answering: nothing says the webhooks can be called
        return Unreadable(f"the webhook configurations cannot be read ({exc})")


def _policy_problem(name: str) -> str | None:
    try:
        return policy_problem(name)
    except Exception as exc:  # the API server not answering: nothing says the policy is there
        return Unchecked(f"the admission policy {name} cannot be read ({exc})")


@kopf.on.startup()
async def check_webhook_trust(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    """Check the webhook configurations again and again, for as long as the process runs."""
    trust = _trust_of(memo)
    if trust.task is None:  # `configure` may not have put the server in place yet: the task waits for it
        trust.task = asyncio.get_running_loop().create_task(_keep_checking(settings, trust), name="webhook trust")


async def _keep_checking(settings: kopf.OperatorSettings, trust: WebhookTrust) -> None:
    loop = asyncio.get_running_loop()
    checked: list[dict[str, Any]] | None = None
    due = 0.0
    while True:
        server = settings.admission.server
        if isinstance(server, NoWebhookServer):
            return  # webhooks off: nothing to check, and no gauge
        expected = server.expected if isinstance(server, WebhookServer) else None
        # A renewed certificate gives a new `expected` (`WebhookServer._advertise`): checked at once.
        if expected is not None and (expected is not checked or loop.time() >= due):
            checked = expected
            problem = await asyncio.to_thread(_problem, expected)
            trust.found(problem)
            if trust.policy_name:
                trust.found_policy(await asyncio.to_thread(_policy_problem, trust.policy_name))
            fine = trust.problem is None and trust.policy_problem is None
            due = loop.time() + (TRUST_CHECK_SECONDS if fine else UNTRUSTED_CHECK_SECONDS)
        await asyncio.sleep(min(LOOK_SECONDS, max(0.05, due - loop.time())))


@kopf.on.cleanup()
async def stop_checking_webhook_trust(memo: kopf.Memo, **_: Any) -> None:
    trust = memo.get(_TRUST)
    if isinstance(trust, WebhookTrust) and trust.task is not None:
        trust.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await trust.task


# A failing probe is retried within the same liveness call: a few quick tries, then a 500.
@kopf.on.probe(id="webhooks", retries=10, backoff=0.2)
def webhooks_configured(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> str:
    """Healthy only once the webhook configurations reach this server (new port, new certificate):
    until then, writes would be refused, and whoever waits for the operator to be ready must wait.

    Once they have, the probe says what the last check found (`WebhookTrust`), but no longer fails:
    the chart's liveness and readiness probes are this one endpoint, and neither a restart nor a
    Pod out of the Service puts the right caBundle in the configurations. A failing liveness probe
    would restart every replica over and over (each new one failing its start-up probe on the same
    caBundle); a failing readiness probe would take every replica out of the webhook Service,
    refusing the writes just the same, and on a passing fault of the API server's reads, all at
    once. The gauge and its alert are what tell somebody.

    Nor does it fail, even before, for a webhook not as defined (`NotAsDefined`: narrowed, called
    for more writes, missing): the API server can call this server, and a replica held out of the
    Service would change nothing of it. A cluster that changes every webhook configuration (a
    policy engine adding a selector) would otherwise keep every replica unready, at every restart,
    and the webhooks, failing closed, would refuse every write."""
    server = settings.admission.server
    if not isinstance(server, WebhookServer):
        return "off"
    trust = _trust_of(memo)
    if not trust.confirmed:
        if server.expected is None:
            raise kopf.TemporaryError("the admission webhook server is not serving yet", delay=0.2)
        problem = configuration_problem(server.expected)
        if problem is not None and not isinstance(problem, NotAsDefined):
            raise kopf.TemporaryError(f"admission webhooks not in place yet: {problem}", delay=0.2)
        trust.found(problem)
    return said(trust.problem)


def said(problem: str | None) -> str:
    """What /healthz says of the webhooks once the API server could call this server."""
    if problem is None:
        return "configured"
    if isinstance(problem, NotAsDefined):
        return f"NOT AS DEFINED: {problem}"
    return f"{'NOT CHECKED' if isinstance(problem, Unreadable) else 'NOT CALLABLE'}: {problem}"


@kopf.on.probe(id="leadership")
def leadership_state(memo: kopf.Memo, **_: Any) -> str:
    """Whether this replica leads, and why it cannot while its Lease is refused (an admission policy,
    a quota, RBAC) or out of reach (`handlers.leadership`): "NOT ABLE TO LEAD: <the API server's
    words>". Never a failure, for the reasons `webhooks_configured` gives: every replica serves the
    webhooks, leader or not, and a restarted Pod meets the same refusal. `JitaccessNoLeader` alerts."""
    leadership = memo.get(LEADERSHIP)
    if not isinstance(leadership, Leadership):
        return "unknown"
    if leadership.leading():
        return "leading"
    return "standby" if leadership.problem is None else f"NOT ABLE TO LEAD: {leadership.problem}"


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """In-cluster service account, else the kubeconfig named by KUBECONFIG *now*.

    kopf's default piggybacks on the `kubernetes` client, which reads KUBECONFIG once at import.
    """
    info: kopf.ConnectionInfo | None = kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)
    return info

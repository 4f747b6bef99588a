"""What the admission webhooks need from Kubernetes and from kopf's webhook server.

- `configurations`: the one definition of the Validating- and MutatingWebhookConfiguration (which
  webhook is called for which writes, failing closed, and skipped only for the operator's own writes
  where its rule admits them unseen); applied by the operator in a local run, rendered by the chart
  from `chart_file` (kopf's managed configuration cannot express `matchConditions`).
- `WebhookServer`: kopf's HTTPS server, which in a cluster advertises a Service (the API server
  reaches pods through one) instead of its own URL, and computes (and in a local run applies) the
  configurations that call it. It never cuts a connection the API server keeps while it serves: a
  renewed certificate is loaded in place, and before it stops it drains (`WebhookServer.drain`).
- `NoWebhookServer`: stands in when webhooks are off; kopf refuses to start with admission
  handlers registered and no server.
- `own_username`: who the operator authenticates as (SelfSubjectReview), the identity the
  webhooks trust with the operator's own writes.
- `configuration_problem`: whether the webhook configurations in the cluster are the ones this
  server expects (their CA bundle holding its CA, alone or with others), so the operator reports
  itself healthy only once its webhooks can answer, and says so when one is called for fewer
  writes than defined (a `matchCondition` or selector added, the configuration deleted: `Unchecked`)
  or for more (a `matchCondition` removed: `Broadened`).
- `policy_problem`: whether the ValidatingAdmissionPolicy under the webhooks, and its binding, are
  there and refuse what it finds for every write it is defined for.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import re
import ssl
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp.web
import kopf
import kubernetes
import yaml
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from kubernetes.client.exceptions import ApiException

from jitaccess.api import names

log = logging.getLogger(__name__)
#: The name of the Validating- and MutatingWebhookConfiguration: the API group's.
CONFIGURATION_NAME = names.GROUP
#: The API server's limit; a webhook that asks Identity Center may need a good part of it.
TIMEOUT_SECONDS = 15
VALIDATING, MUTATING = "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"
_FIELD_MANAGER = "jitaccess"
#: Seconds an API call of this module may take: a read held open must not stop a check for good.
READ_TIMEOUT = 10


@dataclass(frozen=True)
class ServiceRef:
    """The Service in front of the operator's pods: `namespace/name`, optionally `:port` (443)."""

    namespace: str
    name: str
    port: int = 443

    @classmethod
    def parse(cls, text: str) -> ServiceRef:
        where, _, port = text.strip().partition(":")
        namespace, _, name = where.partition("/")
        if not namespace or not name or (port and not port.isdigit()):
            raise ValueError(
                f"JITACCESS_WEBHOOK_SERVICE={text!r} must be namespace/name or namespace/name:port "
                "(the Service in front of the operator's webhook port)"
            )
        return cls(namespace, name, int(port) if port else 443)

    @property
    def hostnames(self) -> list[str]:
        """The DNS names the API server may use for the Service, for the serving certificate."""
        return [
            f"{self.name}.{self.namespace}.svc",
            f"{self.name}.{self.namespace}.svc.cluster.local",
            f"{self.name}.{self.namespace}",
            self.name,
        ]


class WebhookServer(kopf.WebhookServer):
    """kopf's webhook server; with `service`, the webhook configurations name the Service, not a URL.

    `expected` are the configurations that call this server and skip the calls for the writes of
    `operator_usernames`; with `apply`, the server applies them as soon as it serves.
    """

    def __init__(
        self,
        *,
        operator_usernames: Iterable[str],
        configuration_name: str = CONFIGURATION_NAME,
        apply: bool = False,
        service: ServiceRef | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.service = service
        self.operator_usernames = frozenset(operator_usernames)
        self.configuration_name = configuration_name
        self.apply = apply
        self.expected: list[dict[str, Any]] | None = None
        self.draining = False
        #: Calls answered while draining (each closed its connection).
        self.drained_calls = 0
        self._in_flight = 0
        self._last_call = time.monotonic()
        self._site: aiohttp.web.TCPSite | None = None

    # kopf's is a staticmethod, but kopf calls it as `self._serve(fn, request)`: a method works.
    async def _serve(  # type: ignore[override]
        self, fn: kopf.WebhookFn, request: aiohttp.web.Request
    ) -> aiohttp.web.Response:
        """kopf's serving of one call, counted; while draining, the answer closes its connection."""
        self._in_flight += 1
        try:
            response = await super()._serve(fn, request)
        except aiohttp.web.HTTPException as refusal:  # kopf's answer to a malformed call, raised
            if self.draining:
                refusal.force_close()
                self.drained_calls += 1
            raise
        finally:
            self._in_flight -= 1
            self._last_call = time.monotonic()
        if self.draining:
            response.force_close()
            self.drained_calls += 1
        return response

    async def drain(self, *, quiet: float, limit: float) -> None:
        """Stop accepting connections, and answer every call on those open with `Connection: close`
        until none has come for `quiet` seconds (and none is in flight), or for at most `limit`
        seconds; then the server can stop.

        Why: the API server keeps its connections to a Pod open and reuses them, whatever the
        Service's endpoints say. A server that stops by closing them races the API server's next
        call on one: a call written as the connection closes gets no answer (EOF), and the API
        server does not retry a POST, so a user's write is refused. A call answered with
        `Connection: close` has its connection closed by the client itself, which then calls again
        through the Service, reaching a Pod that stays."""
        self.draining = True
        if self._site is not None:
            # New connections go to a replica that stays (through the Service, or to the other
            # listeners of a shared port); the ones open here are kept until answered.
            await self._site.stop()
            self._site = None
        started = time.monotonic()
        while True:
            now = time.monotonic()
            idle_since = max(started, self._last_call)
            if now - started >= limit or (self._in_flight == 0 and now - idle_since >= quiet):
                return
            wait = quiet - (now - idle_since) if self._in_flight == 0 else quiet / 10
            await asyncio.sleep(max(0.01, min(wait, limit - (now - started))))

    async def __call__(self, fn: kopf.WebhookFn) -> AsyncIterator[kopf.WebhookClientConfig]:
        """Serve kopf's webhook route until cancelled; yield the client config at once and again
        whenever the certificate files change.

        Not kopf's own loop, which on a renewed certificate (cert-manager's, mounted from a Secret)
        stops the server and starts another: every connection the API server keeps is cut, calls
        written on them get no answer, and new ones are refused until it listens again, on every
        replica at about the same time. Here the renewed certificate is loaded into the same TLS
        context: new connections get it, kept ones go on, and nothing stops serving."""

        async def serve(request: aiohttp.web.Request) -> aiohttp.web.Response:
            return await self._serve(fn, request)

        # Read before the files are loaded: a change in between is only loaded once more, never missed.
        loaded = self._files_digest()
        cadata, context = self._build_ssl()
        app = aiohttp.web.Application()
        app.add_routes([aiohttp.web.post(f"{(self.path or '').rstrip('/')}/{{id:.*}}", serve)])
        runner = aiohttp.web.AppRunner(app, handle_signals=False)
        await runner.setup()
        try:
            port = self.port or self._allocate_free_port()
            site = aiohttp.web.TCPSite(
                runner, self.addr or None, port, ssl_context=context, reuse_port=True, reuse_address=True
            )
            await site.start()
            self._site = site
            host = self.host or self.DEFAULT_HOST or self._get_accessible_addr(self.addr)
            url = self._build_url("http" if context is None else "https", host, port, self.path or "")
            while True:
                yield await self._advertise(url, cadata)
                cadata, loaded = await self._renewed(context, loaded)
        finally:
            await runner.cleanup()

    async def _advertise(self, url: str, cadata: bytes | None) -> kopf.WebhookClientConfig:
        """The client config for `url` (or the Service) and `cadata`, with the configurations that
        call it computed (`expected`) and, in a local run, applied."""
        config = kopf.WebhookClientConfig(url=url)
        if cadata is not None:
            config["caBundle"] = base64.b64encode(cadata).decode("ascii")
        if self.service is not None:
            # Each webhook appends its handler's id to this path, as to a URL (`configurations`).
            config = kopf.WebhookClientConfig(
                service=kopf.WebhookClientConfigService(
                    namespace=self.service.namespace,
                    name=self.service.name,
                    port=self.service.port,
                    path=(self.path or "").rstrip("/"),
                ),
                caBundle=config.get("caBundle"),
            )
        expected = configurations(config, self.operator_usernames, name=self.configuration_name)
        if self.apply:
            await asyncio.to_thread(apply_configurations, expected)
        self.expected = expected
        return config

    def _load(self, context: ssl.SSLContext, certfile: Path, pkeyfile: Path) -> bytes:
        """Load the certificate and key into the serving `context` if they are a pair; the CA bundle.

        A pair that does not load would leave `context` half-changed (OpenSSL has taken the new
        certificate when it refuses the key), and every handshake would fail: so the same bytes are
        loaded first into a context of their own, from private copies that cannot change between
        the two loads."""
        with tempfile.TemporaryDirectory(prefix="jitaccess-tls-") as directory:
            cert, key = Path(directory, "tls.crt"), Path(directory, "tls.key")
            cert.write_bytes(certfile.read_bytes())
            key.write_bytes(pkeyfile.read_bytes())
            ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert, key, self.password)
            context.load_cert_chain(cert, key, self.password)
            return Path(self.cafile).read_bytes() if self.cafile else cert.read_bytes()

    def _files_digest(self) -> str:
        digest = hashlib.sha256()
        for path in (self.certfile, self.pkeyfile, self.cafile):
            if path is not None:
                digest.update(Path(path).read_bytes())
        return digest.hexdigest()

    async def _renewed(self, context: ssl.SSLContext | None, loaded: str) -> tuple[bytes | None, str]:
        """Wait until the certificate files differ from those `loaded` (their digest) and load them
        into `context`; the new CA bundle, and the new files' digest.

        A Secret's files are replaced together, but a poll can still meet a certificate without its
        key (or files edited by hand one at a time): a pair that does not load is tried again at
        the next poll, and the server keeps the certificate it has meanwhile."""
        certfile, pkeyfile = self.certfile, self.pkeyfile
        if context is None or certfile is None or pkeyfile is None:
            await asyncio.Event().wait()  # plain HTTP, or a certificate made in memory: never renewed
            raise AssertionError("unreachable: nobody sets that Event")
        while True:
            await asyncio.sleep(self.file_check_interval)
            try:
                digest = self._files_digest()
                if digest == loaded:
                    continue
                cadata = self._load(context, Path(certfile), Path(pkeyfile))
            except (OSError, ssl.SSLError) as problem:  # a file missing, or not the key of the certificate
                log.warning("the renewed webhook certificate does not load yet (%s): serving the one before", problem)
                continue
            log.info("the webhook certificate was renewed: new connections get it, kept ones go on")
            return cadata, digest


class NoWebhookServer:
    """A webhook server that never serves: webhooks are off (JITACCESS_WEBHOOK_PORT=0)."""

    async def __call__(self, fn: kopf.WebhookFn) -> AsyncIterator[kopf.WebhookClientConfig]:
        await asyncio.Event().wait()
        yield kopf.WebhookClientConfig()


def own_username() -> str:
    """The username the API server authenticates the operator as (needs a configured client)."""
    review = kubernetes.client.AuthenticationV1Api().create_self_subject_review(
        body=kubernetes.client.V1SelfSubjectReview(api_version="authentication.k8s.io/v1", kind="SelfSubjectReview"),
        _request_timeout=READ_TIMEOUT,
    )
    user = review.status.user_info if review.status is not None else None
    if user is None or not user.username:
        raise RuntimeError("the API server's SelfSubjectReview names no user")
    return str(user.username)


def _pem(bundle: bytes | str | None) -> bytes | None:
    """A caBundle as PEM, whether a client hands it over base64-encoded or decoded."""
    if bundle is None:
        return None
    raw = bundle if isinstance(bundle, bytes) else bundle.encode()
    return raw if raw.lstrip().startswith(b"-----") else base64.b64decode(raw)


def _trusts(configured: bytes | str | None, own: bytes | str | None) -> bool:
    """Whether a webhook's configured caBundle trusts this server's CA: every certificate of `own` is
    one of the bundle's. While the chart rotates the certificate, the bundle holds the new CA and
    the previous one, and a replica serving either is trusted (docs/install.md)."""
    mine, theirs = _pem(own), _pem(configured)
    if mine == theirs:
        return True
    if not mine or not theirs:
        return False
    try:
        wanted, there = (
            {cert.public_bytes(Encoding.DER) for cert in x509.load_pem_x509_certificates(pem)} for pem in (mine, theirs)
        )
    except ValueError:  # no certificate in it, or one that does not parse: nothing the API server could trust
        return False
    return wanted <= there


class NotAsDefined(str):
    """A problem with which the API server can still call this server, but not for the writes defined:
    a webhook (or the admission policy) missing or narrowed (`Unchecked`), or one called for more
    writes than defined (`Broadened`). It never holds a replica's readiness, not even before its
    first: a replica out of the Service would change nothing of it (`handlers.startup`)."""

    __slots__ = ()


class Unchecked(NotAsDefined):
    """A problem that lets writes through unchecked rather than refused: a webhook missing, or called
    for fewer writes than defined (or otherwise not as defined), or the admission policy missing or
    not refusing. The API server can still call this server: the log line says so, where for a
    certificate it does not trust it says that every write is refused (`handlers.startup`)."""

    __slots__ = ()


class Broadened(NotAsDefined):
    """A webhook called for more writes than defined: a `matchCondition` of the definition removed.
    Nothing goes through unchecked, but the writes the condition skips (the operator's own) wait on
    the webhook answering, and are refused while no replica does."""

    __slots__ = ()


class Unreadable(str):
    """The webhook configurations cannot be read (refused, the API server failing or not answering):
    whether the API server can call this server is not known, and nothing is said of the writes."""

    __slots__ = ()


#: What in a webhook narrows the writes it is called for besides its `rules`, whether or not the
#: definition sets it: each must be exactly the definition's (absent, or an empty selector, where it
#: has none). Someone allowed to edit the configurations (an administrator's mistake, a GitOps tool,
#: cert-manager's CA injector) adding `request.userInfo.username != "mallory@example.com"` as a
#: matchCondition, or an objectSelector on a label mallory sets, would let her writes skip the
#: checks, with the webhook still calling this server for everyone else's. Every other field of a
#: ValidatingWebhook and MutatingWebhook is one the definition sets, and is compared as such, but
#: for `namespaceSelector`, which narrows nothing here: every jitaccess kind is cluster-scoped, and
#: the API server never skips a webhook by it for a cluster-scoped object but a Namespace. Some
#: clusters add one to every webhook (AKS's Admissions Enforcer, without `ENFORCER_DISABLED`).
NARROWING = ("matchConditions", "objectSelector")
#: The label that keeps AKS's Admissions Enforcer from adding a namespaceSelector to the webhooks:
#: it would narrow nothing (`NARROWING`), but the configurations stay as the chart renders them.
ENFORCER_DISABLED = {"admissions.enforcer/disabled": "true"}


def _narrowing(value: Any) -> Any:
    """A narrowing field as compared: an empty selector or list (the API server's default) is none."""
    return value if value not in (None, {}, []) else None


#: A condition `not_the_operator` writes: the usernames skipped (a JSON list), and what follows.
_OPERATOR_SKIP = re.compile(r"!\(request\.userInfo\.username in (\[[^\]]*\])\)(.*)", re.DOTALL)


def _holds_whenever(live: Mapping[str, Any], defined: Mapping[str, Any]) -> bool:
    """Whether the `matchCondition` `live` is true for every write `defined` is true for: the same
    expression, or the operator's skip (`not_the_operator`) naming only some of its usernames."""
    if live.get("expression") == defined.get("expression"):
        return True
    skips, defined_skips = (_OPERATOR_SKIP.fullmatch(str(c.get("expression") or "")) for c in (live, defined))
    if skips is None or defined_skips is None or skips[2] != defined_skips[2]:
        return False
    try:
        return set(json.loads(skips[1])) <= set(json.loads(defined_skips[1]))
    except (ValueError, TypeError):  # not a list of usernames: nothing says what it skips
        return False


def _broadened(live: Any, defined: Any) -> bool:
    """Whether the live `matchConditions` call the webhook for every write the defined ones do, and
    more (every condition must hold for a call): a condition removed, or the operator's skip naming
    fewer usernames (one JITACCESS_OPERATOR_USERNAMES adds, that the chart does not render)."""
    return all(isinstance(c, Mapping) and any(_holds_whenever(c, d) for d in defined or []) for c in live or [])


def configuration_problem(expected: Iterable[Mapping[str, Any]]) -> str | None:
    """Why the webhook configurations in the cluster are not yet `expected` (every webhook there, as
    defined, calling this server and trusting its certificate); None when they are. A webhook
    missing or narrowed is `Unchecked`, one called for more writes `Broadened`; a configuration
    that cannot be read is `Unreadable`; one not calling this server, or not trusting its
    certificate, is a plain problem: the API server refuses every write it is called for. That one
    and `Unreadable` are said before any other: they are what holds a replica's readiness."""
    problems = list(_problems(expected))
    return next((p for p in problems if not isinstance(p, NotAsDefined)), problems[0] if problems else None)


def _problems(expected: Iterable[Mapping[str, Any]]) -> Iterator[str]:
    """Every problem `configuration_problem` finds, configuration by configuration, webhook by webhook."""
    api = kubernetes.client.AdmissionregistrationV1Api()
    readers: dict[str, Callable[..., Any]] = {
        VALIDATING: api.read_validating_webhook_configuration,
        MUTATING: api.read_mutating_webhook_configuration,
    }
    for obj in expected:
        kind, name = obj["kind"], obj["metadata"]["name"]
        try:
            live = api.api_client.sanitize_for_serialization(readers[kind](name, _request_timeout=READ_TIMEOUT))
        except ApiException as exc:
            if exc.status == 404:
                # Deleted (the emergency way out, operations.md): every write skips its webhooks.
                yield Unchecked(
                    f"{kind} {name} does not exist: no write is checked by its webhooks, every one goes through "
                    "(`helm upgrade` installs it again; a local run applies it when it starts)"
                )
            else:
                yield Unreadable(f"{kind} {name} cannot be read ({exc.status} {exc.reason})")
            continue
        found = {str(w.get("name")): w for w in live.get("webhooks") or []}
        for webhook in obj["webhooks"]:
            problem = _webhook_problem(f"{kind} {name}", webhook, found.get(webhook["name"]))
            if problem is not None:
                yield problem


def _webhook_problem(configuration: str, webhook: Mapping[str, Any], there: Mapping[str, Any] | None) -> str | None:
    """Why the live webhook `there` of `configuration` is not the defined `webhook`; None when it is."""
    if there is None:
        return Unchecked(f"{configuration} has no webhook {webhook['name']}: no write is checked by it")
    where = f"{configuration} webhook {webhook['name']}"
    wanted, client = dict(webhook["clientConfig"]), dict(there.get("clientConfig") or {})
    if not _trusts(client.pop("caBundle", None), wanted.pop("caBundle", None)):
        return f"{where} does not trust this server's certificate yet"
    if client != wanted:
        return f"{where} calls {client}, not this server ({wanted})"
    for key, value in webhook.items():
        if key != "clientConfig" and key not in NARROWING and there.get(key) != value:
            return Unchecked(f"{where} has {key} {there.get(key)!r}, not {value!r}")
    for key in NARROWING:
        live, defined = _narrowing(there.get(key)), _narrowing(webhook.get(key))
        if live == defined:
            continue
        if key == "matchConditions" and _broadened(live, defined):
            # The conditions defined skip the operator's own writes, which its rule admits unseen.
            return Broadened(
                f"{where} has matchConditions {live!r}, not {defined!r}: not as defined, called for more writes "
                "than defined (the operator's own it skipped go through it too, and are refused while no replica "
                "answers it)"
            )
        should = f"not {defined!r}" if defined is not None else "where the operator defines none"
        return Unchecked(
            f"{where} has {key} {live!r}, {should}: narrowed, the API server does not call it for the writes "
            "that do not match"
        )
    return None


# --- the admission policy ------------------------------------------------------------------------

#: The writes the ValidatingAdmissionPolicy (examples/admission-policy.yaml, the chart's copy) is
#: defined for: a unit test keeps these its `matchConstraints`.
POLICY_WRITES: dict[str, tuple[str, ...]] = {
    names.REQUESTS: ("CREATE", "UPDATE"),
    names.GRANTS: ("CREATE", "UPDATE"),
    names.EXTENSIONS: ("CREATE", "UPDATE"),
}


def _rule_covers(rule: Mapping[str, Any], resource: str, operation: str) -> bool:
    """Whether one `resourceRules` entry (a NamedRuleWithOperations) matches `operation` on `resource`."""

    def has(key: str, wanted: str, *wildcards: str) -> bool:
        return bool({wanted, "*", *wildcards} & set(rule.get(key) or []))

    return (
        has("apiGroups", names.GROUP)
        and has("apiVersions", names.VERSION)
        and has("operations", operation)
        and has("resources", resource, "*/*")
        and rule.get("scope") in (None, "*", "Cluster")
        and not rule.get("resourceNames")
    )


def _left_out(match: Mapping[str, Any], *, rules_required: bool) -> str | None:
    """What a policy's `matchConstraints`, or a binding's `matchResources`, leaves out of
    `POLICY_WRITES`, in words; None when it leaves out nothing. A binding's may name no rules (then
    the policy's stand); a policy's must."""
    rules = match.get("resourceRules") or []
    if rules or rules_required:
        for resource, operations in POLICY_WRITES.items():
            for operation in operations:
                if not any(_rule_covers(rule, resource, operation) for rule in rules):
                    return f"resourceRules {rules!r} leave out {operation} of {resource}"
    # Not namespaceSelector: the policy's kinds are cluster-scoped, which it never skips (`NARROWING`).
    for key in ("excludeResourceRules", "objectSelector"):
        if _narrowing(match.get(key)) is not None:
            return f"{key} is {match[key]!r}"
    return None


def policy_problem(name: str) -> Unchecked | None:
    """Why the ValidatingAdmissionPolicy `name` and its binding of the same name (the chart names both
    after the release) do not refuse what the policy finds for every write it is defined for; None
    when they do. Its validations themselves are not compared: an identity that may rewrite them
    may as well delete the policy, which this says."""
    api = kubernetes.client.AdmissionregistrationV1Api()
    found: dict[str, dict[str, Any]] = {}
    for kind, read in (
        ("ValidatingAdmissionPolicy", api.read_validating_admission_policy),
        ("ValidatingAdmissionPolicyBinding", api.read_validating_admission_policy_binding),
    ):
        try:
            found[kind] = api.api_client.sanitize_for_serialization(read(name, _request_timeout=READ_TIMEOUT))
        except ApiException as exc:
            if exc.status == 404:
                return Unchecked(f"{kind} {name} does not exist")
            return Unchecked(f"{kind} {name} cannot be read ({exc.status} {exc.reason})")
    policy = found["ValidatingAdmissionPolicy"].get("spec") or {}
    binding = found["ValidatingAdmissionPolicyBinding"].get("spec") or {}
    where = f"ValidatingAdmissionPolicy {name}"
    if policy.get("failurePolicy") not in (None, "Fail"):
        return Unchecked(f"{where} has failurePolicy {policy['failurePolicy']!r}, not 'Fail'")
    if _narrowing(policy.get("matchConditions")) is not None:
        return Unchecked(
            f"{where} has matchConditions {policy['matchConditions']!r}: it skips the writes they leave out"
        )
    narrowed = _left_out(policy.get("matchConstraints") or {}, rules_required=True)
    if narrowed is not None:
        return Unchecked(f"{where} has matchConstraints whose {narrowed}: it skips those writes")
    where = f"ValidatingAdmissionPolicyBinding {name}"
    if binding.get("policyName") != name:
        return Unchecked(f"{where} binds policy {binding.get('policyName')!r}, not {name!r}")
    if "Deny" not in (binding.get("validationActions") or []):
        return Unchecked(
            f"{where} has validationActions {binding.get('validationActions')!r}, without 'Deny': what the policy "
            "finds is let through"
        )
    narrowed = _left_out(binding.get("matchResources") or {}, rules_required=False)
    if narrowed is not None:
        return Unchecked(f"{where} has matchResources whose {narrowed}: the policy is skipped for those writes")
    return None


# --- the webhook configurations ----------------------------------------------------------------


@dataclass(frozen=True)
class Hook:
    """One admission webhook: kopf serves the handler `id` at `/<id>`, and the API server calls it
    for these operations on `plural` (or its `subresource`)."""

    id: str
    plural: str
    operations: tuple[str, ...]
    subresource: str | None = None
    #: The API server skips the call when the operator itself writes (`matchConditions`): the rule
    #: behind this webhook admits every write of the operator without looking at it
    #: (`domain.admission`: `review_grant`, `review_status` and `review_catalog` begin with it), so
    #: the call could only ever answer "allowed". Users' writes are all still sent.
    skips_operator: bool = False
    #: Skip the operator's writes only when they leave `spec` as it was: the operator changes the
    #: policy kinds' finalizers, annotations and status, never their spec, and its credentials in
    #: anyone else's hands must not rewrite who may have what, unseen (`review_catalog`).
    unless_spec_changes: bool = False


_WRITES = ("CREATE", "UPDATE")
#: Every webhook, by configuration kind. AccessRequests are checked whoever writes them, the
#: operator too (it writes only their status in the course of a grant; its deletions at retention
#: are refused while the access runs, like anyone's).
HOOKS: dict[str, tuple[Hook, ...]] = {
    MUTATING: (
        Hook("accessrequests-stamp", names.REQUESTS, _WRITES),
        Hook("accessgrants-stamp", names.GRANTS, _WRITES, skips_operator=True),
        Hook("accessextensions-stamp", names.EXTENSIONS, _WRITES, skips_operator=True),
    ),
    VALIDATING: (
        Hook("accessrequests-check", names.REQUESTS, (*_WRITES, "DELETE")),
        Hook("accessgrants-check", names.GRANTS, (*_WRITES, "DELETE"), skips_operator=True),
        Hook("teamownerships-check", names.TEAMS, _WRITES, skips_operator=True, unless_spec_changes=True),
        Hook("entitlements-check", names.ENTITLEMENTS, _WRITES, skips_operator=True, unless_spec_changes=True),
        # DELETE, and UPDATE removing a tier: refused while grants hold the permission sets that would go
        # (`domain.assignments.catalog_removal_refusal`).
        Hook(
            "permissioncatalogs-check",
            names.CATALOGS,
            (*_WRITES, "DELETE"),
            skips_operator=True,
            unless_spec_changes=True,
        ),
        Hook("accessextensions-check", names.EXTENSIONS, (*_WRITES, "DELETE"), skips_operator=True),
        *(
            Hook(f"{plural}-status", plural, ("UPDATE",), "status", skips_operator=True)
            for plural in (
                names.REQUESTS,
                names.GRANTS,
                names.TEAMS,
                names.ENTITLEMENTS,
                names.EXTENSIONS,
                names.CATALOGS,
            )
        ),
    ),
}


def not_the_operator(usernames: Iterable[str], *, unless_spec_changes: bool = False) -> dict[str, str]:
    """The `matchCondition` true for everyone but the operator (its usernames, as a CEL list), and,
    `unless_spec_changes`, for the operator too when it creates an object or changes its spec (not
    when it deletes one: `object` is null then, and `has()` of a null an error, which a webhook
    that fails closed would turn into a refusal)."""
    # A JSON list of strings is a CEL list literal of the same strings.
    expression = f"!(request.userInfo.username in {json.dumps(sorted(usernames))})"
    if unless_spec_changes:
        expression += (
            " || oldObject == null || (object != null && (!has(object.spec) || !has(oldObject.spec)"
            " || object.spec != oldObject.spec))"
        )
        return {"name": "not-the-operator-or-a-spec-change", "expression": expression}
    return {"name": "not-the-operator", "expression": expression}


def _client_config(client: Mapping[str, Any], hook_id: str) -> dict[str, Any]:
    """Where the API server calls the handler `hook_id`: kopf's server routes by handler id."""
    config: dict[str, Any] = {}
    if client.get("url"):
        config["url"] = f"{str(client['url']).rstrip('/')}/{hook_id}"
    if client.get("service"):
        service = dict(client["service"])
        config["service"] = {**service, "path": f"{str(service.get('path') or '').rstrip('/')}/{hook_id}"}
        config["service"].setdefault("port", 443)
    if client.get("caBundle"):
        config["caBundle"] = client["caBundle"]
    return config


def configurations(
    client: Mapping[str, Any], operator_usernames: Iterable[str], *, name: str = CONFIGURATION_NAME
) -> list[dict[str, Any]]:
    """The Validating- and MutatingWebhookConfiguration, as the operator applies them in a local run
    and the chart renders them (`chart_file`): every webhook fails closed (`failurePolicy: Fail`),
    has no side effects, and is called for every user's write; `client` is kopf's client config
    (`url` or `service`, and `caBundle`)."""
    usernames = sorted(operator_usernames)
    objects = []
    for kind, hooks in HOOKS.items():
        webhooks = []
        for hook in hooks:
            resource = f"{hook.plural}/{hook.subresource}" if hook.subresource else hook.plural
            webhook: dict[str, Any] = {
                "name": f"{hook.id}.{names.GROUP}",
                "admissionReviewVersions": ["v1"],
                "clientConfig": _client_config(client, hook.id),
                "failurePolicy": "Fail",
                "matchPolicy": "Equivalent",
                "rules": [
                    {
                        "apiGroups": [names.GROUP],
                        "apiVersions": [names.VERSION],
                        "operations": list(hook.operations),
                        "resources": [resource],
                        "scope": "Cluster",
                    }
                ],
                "sideEffects": "None",
                "timeoutSeconds": TIMEOUT_SECONDS,
            }
            if hook.skips_operator:
                webhook["matchConditions"] = [not_the_operator(usernames, unless_spec_changes=hook.unless_spec_changes)]
            if kind == MUTATING:
                webhook["reinvocationPolicy"] = "Never"
            webhooks.append(webhook)
        objects.append(
            {
                "apiVersion": "admissionregistration.k8s.io/v1",
                "kind": kind,
                "metadata": {"name": name, "labels": dict(ENFORCER_DISABLED)},
                "webhooks": webhooks,
            }
        )
    return objects


#: What the chart's copy says where a release fills in its own values (templates/webhooks.yaml).
CHART_SERVICE = {"namespace": "RELEASE-NAMESPACE", "name": "WEBHOOK-SERVICE", "port": 443}
CHART_OPERATOR = "OPERATOR-SERVICE-ACCOUNT"


def chart_file() -> str:
    """charts/jitaccess/files/webhooks.yaml: `configurations` for a Service, with placeholders."""
    header = (
        "# Generated by `python -m jitaccess.adapters.webhooks` from jitaccess/adapters/webhooks.py\n"
        "# (a unit test keeps it in sync); templates/webhooks.yaml fills in the release's values.\n"
    )
    objects = configurations({"service": CHART_SERVICE}, [CHART_OPERATOR])
    return header + "---\n".join(yaml.safe_dump(obj, sort_keys=False) for obj in objects)


def apply_configurations(objects: Iterable[Mapping[str, Any]]) -> None:
    """Server-side apply: the fields these objects set become the operator's, whoever set them before."""
    api = kubernetes.client.AdmissionregistrationV1Api()
    for obj in objects:
        patch = (
            api.patch_validating_webhook_configuration
            if obj["kind"] == VALIDATING
            else api.patch_mutating_webhook_configuration
        )
        patch(
            obj["metadata"]["name"],
            dict(obj),
            field_manager=_FIELD_MANAGER,
            force=True,
            _content_type="application/apply-patch+yaml",
        )


if __name__ == "__main__":
    sys.stdout.write(chart_file())

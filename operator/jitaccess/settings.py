"""Operator settings, from environment variables (`JITACCESS_*`) or command-line flags.

Durations are given in seconds here (they are operator tuning, not user input), so tests and
benchmarks can run seconds-long grants with `JITACCESS_MIN_DURATION_SECONDS=1`.

The operator reads them with `load()`: a bad value stops it before it does anything, with one line
per bad variable saying what is wrong and what the setting is for, not a traceback; outside a pod,
`kubeconfig_files` likewise refuses a `KUBECONFIG` that names no kubeconfig it can read. A `JITACCESS_*`
variable that is no setting (a misspelling, a retired setting) is read by nobody: `warn_of_unknown`
logs each at start with the setting it is closest to. A warning, not a refusal: retiring a setting
must not stop a running fleet whose manifests still set it.
"""

from __future__ import annotations

import difflib
import ipaddress
import itertools
import logging
import os
import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Annotated, Final, Self

from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from jitaccess.adapters.eventsink import require_https
from jitaccess.api.limits import NAME_MAX_LENGTH
from jitaccess.api.models import SLACK_CHANNEL_PATTERN
from jitaccess.domain.identities import KUBERNETES_PREFIX, is_kubernetes_own
from jitaccess.domain.notifications import DRIFT_NOTICES_HOLD_DELETION
from jitaccess.domain.requests import Limits

#: The longest time a setting may give (`le=`), far beyond any sensible one: a date computed from a
#: much longer time (a request's deadline, a grant's retention) passes the year 9999 and overflows
#: where it is computed, long after the operator started; refused at start instead, like any typo.
TEN_YEARS = 10 * 365 * 24 * 3600

#: The lowest value (`ge=`) of each setting that is an interval, how often something is done, with
#: what each round costs: a tiny one (1e-9) is a busy loop against what it calls. Said in the message.
INTERVAL_FLOORS: Final = {
    "resync_seconds": (1.0, "each pass reads Identity Center for every Entitlement and PermissionCatalog"),
    "eligibility_recheck_seconds": (1.0, "each pass reads Identity Center for every grant's user and requester"),
    "retry_period_seconds": (0.1, "each try writes the Lease to the API server"),
    "audit_batch_seconds": (0.1, "each batch is one object written to the archive's bucket"),
}
#: A relative distinguished name, one part of an LDAP distinguished name (RFC 4514: an attribute
#: type, `=`, a value), such as `CN=SRE` or `DC=corp`.
_RDN: Final = re.compile(r"([A-Za-z][A-Za-z0-9-]*|[0-9]+(\.[0-9]+)+)=.*")
#: Highest TCP port.
PORT_MAX = 65535
#: Kubernetes names, as the API server checks them (apimachinery's validation), with the message:
#: a DNS-1123 subdomain (most objects: Leases, ServiceAccounts, webhook configurations), a DNS-1123
#: label (namespaces) and a DNS-1035 label (Services).
DNS_1123_SUBDOMAIN: Final = (
    re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"),
    NAME_MAX_LENGTH,
    "a DNS-1123 subdomain: lowercase letters, digits, '-' and '.', starting and ending with a letter or digit",
)
DNS_1123_LABEL: Final = (
    re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"),
    63,
    "a DNS-1123 label: lowercase letters, digits and '-', starting and ending with a letter or digit",
)
DNS_1035_LABEL: Final = (
    re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?"),
    63,
    "a DNS-1035 label: lowercase letters, digits and '-', starting with a letter and ending with a letter or digit",
)
#: The longest `JITACCESS_LEADER_IDENTITY`: a pod's name (the chart's identity) is at most this long,
#: and the fallback (hostname and pid) shorter. The API server takes any string as the Lease's
#: holderIdentity; one longer, or not a printable line, is a mistake that would be written into it.
IDENTITY_MAX_LENGTH: Final = NAME_MAX_LENGTH
#: Settings that name a file the operator reads as it starts (the webhook's certificate, key and CA,
#: the Slack impersonator's kubeconfig or token): checked readable at start, so that a wrong path or
#: a Secret not mounted is refused by its variable's name rather than with a traceback once read.
#: Empty means unset to their readers, and is left to them.
FILE_SETTINGS: Final = (
    "webhook_certfile",
    "webhook_keyfile",
    "webhook_cafile",
    "slack_impersonator_kubeconfig",
    "slack_impersonator_token_file",
)

#: Why a webhook certificate without its key (or the reverse) is refused, and the fix.
_HALF_A_CERTIFICATE = (
    "the webhook serves a certificate with its private key, and with one of them alone it would serve a "
    "temporary self-signed certificate instead, which an API server trusting your CA refuses (every write "
    "refused, with a TLS error): set both (tls.crt and tls.key of a kubernetes.io/tls Secret), or neither"
)
#: Settings that only work with others: (setting, the settings it needs, the message when one is
#: missing). Each is certainly a mistake, and one the operator would otherwise make the best of in
#: silence, far from the setting's name: the webhook's with a temporary certificate the API server
#: does not trust (every write refused, fail-closed, with a TLS error), the others by doing nothing
#: they ask. Empty means unset, as to the settings' readers. The first missing is said.
GIVEN_TOGETHER: Final = (
    (
        "webhook_certfile",
        ("webhook_keyfile",),
        f"JITACCESS_WEBHOOK_CERTFILE is set and JITACCESS_WEBHOOK_KEYFILE is not: {_HALF_A_CERTIFICATE}",
    ),
    (
        "webhook_keyfile",
        ("webhook_certfile",),
        f"JITACCESS_WEBHOOK_KEYFILE is set and JITACCESS_WEBHOOK_CERTFILE is not: {_HALF_A_CERTIFICATE}",
    ),
    (
        "webhook_cafile",
        ("webhook_certfile", "webhook_keyfile"),
        "JITACCESS_WEBHOOK_CAFILE is the CA of the webhook's certificate, and none is given: the operator "
        "would serve a temporary certificate of a CA of its own and ignore this one; set "
        "JITACCESS_WEBHOOK_CERTFILE and JITACCESS_WEBHOOK_KEYFILE too (the certificate it signed and its key), "
        "or unset the CA file",
    ),
    (
        "event_sink_url",
        ("event_sink_secret",),
        "JITACCESS_EVENT_SINK_URL is set and JITACCESS_EVENT_SINK_SECRET is not: every event is signed with "
        "the secret, and without it none would be sent: set the secret too, or unset the URL",
    ),
    (
        "event_sink_secret",
        ("event_sink_url",),
        "JITACCESS_EVENT_SINK_SECRET signs the events sent to JITACCESS_EVENT_SINK_URL, and there is none: "
        "set the URL too, or unset the secret",
    ),
    (
        "audit_signing_key",
        ("audit_bucket",),
        "JITACCESS_AUDIT_SIGNING_KEY signs the batches of the audit archive, and there is none: "
        "set JITACCESS_AUDIT_BUCKET too, or unset the signing key",
    ),
)

PREFIX: Final = "JITACCESS_"
#: The first line of a refusal; one line per bad variable follows.
REFUSAL: Final = "jitaccess cannot start: fix these settings (environment variables; the chart's config values):"
#: A pod's ServiceAccount token. With `KUBERNETES_SERVICE_HOST`, the operator logs in with it (the
#: kubernetes client and kopf's login alike) and reads no kubeconfig.
SERVICE_ACCOUNT_TOKEN: Final = "/var/run/secrets/kubernetes.io/serviceaccount/token"
#: The kubeconfig read when `KUBECONFIG` is unset or empty, as by kubectl.
DEFAULT_KUBECONFIG: Final = "~/.kube/config"

#: `JITACCESS_*` variables that other programs of this repository read, not the operator: a shell
#: that runs the operator beside them (a developer's, the tests') has them set, and they are no
#: misspelling. tests/unit/test_settings_unknown.py checks that the repository reads no other.
OTHER_PROGRAMS: Final = frozenset(
    {
        "JITACCESS_AUDIT_ARCHIVE",  # kubectl jit audit (cli/parser.py)
        "JITACCESS_CACHE",  # the tests' and devenv's built binaries (tests/gobuild.sh)
        "JITACCESS_CONTROLPLANE_BIN",  # devenv/controlplane.py
        "JITACCESS_KEEP_CONTROLPLANE",
        "JITACCESS_DEV_CONTROLPLANE",  # devenv/mint.py
        "JITACCESS_NODE_BIN",  # devenv/node.py
        "JITACCESS_HELM_BIN",  # tests/helm/chart.py
        "JITACCESS_SLACK_STATE",  # devenv/slack.py, the Slack stand-in
        "JITACCESS_UPDATE_GOLDEN",  # the unit tests' golden files
    }
)
#: The end-to-end tier's switches (`JITACCESS_E2E_REPLICAS`, ...): the tests start the operator from
#: their own environment, and a switch they add must not make every operator they start warn.
TESTS_PREFIX: Final = "JITACCESS_E2E_"

log = logging.getLogger("jitaccess.settings")


class Settings(BaseSettings):
    # `nan` and `inf` parse as floats: nan fails every bound with a misleading message, and `inf` slips
    # past those without an upper bound (a rate limit of inf is "no limit" by accident, not by design).
    model_config = SettingsConfigDict(env_prefix=PREFIX, extra="ignore", allow_inf_nan=False)

    identity_store_id: str | None = Field(
        default=None, description="IdentityStoreId (d-xxxxxxxxxx); found with sso-admin when unset"
    )
    region: str | None = Field(default=None, description="AWS region of the Identity Center instance")
    endpoint_url: str | None = Field(default=None, description="Identity Center endpoint (the emulator)")
    rate_limit: float = Field(default=20.0, ge=0, description="Identity Store calls per second; 0 = no limit")
    aws_max_attempts: int = Field(default=3, ge=1, description="SDK attempts per call before kopf retries")
    sso_instance_arn: str | None = Field(
        default=None,
        description="Identity Center instance ARN (PermissionCatalogs); found with ListInstances when unset",
    )
    sso_rate_limit: float = Field(default=20.0, ge=0, description="sso-admin calls per second, per API; 0 = no limit")
    revocation_hold_seconds: float | None = Field(
        default=None,
        gt=0,
        le=TEN_YEARS,
        description="How long a revoked user's sessions stay denied; unset = the permission set's session duration "
        "(tests shorten it)",
    )

    pending_timeout_seconds: float = Field(default=24 * 3600, gt=0, le=TEN_YEARS)
    requests_per_user_per_minute: int = Field(
        default=30,
        ge=0,
        description="AccessRequests and AccessExtensions one user may create per minute on each replica (each request "
        "asks Identity Center); 0 = any",
    )
    approval_requests_per_user_per_hour: int = Field(
        default=12,
        ge=0,
        description="Requests and extensions that go to an approver one user may create per hour on each replica, withdrawn ones "
        "included (approval fatigue); 0 = any",
    )
    max_pending_per_user: int = Field(
        default=5,
        ge=0,
        description="Requests waiting for an approver one user may have at once, and one per entitlement; 0 = neither",
    )
    min_duration_seconds: float = Field(default=60, gt=0, le=TEN_YEARS)
    max_start_ahead_seconds: float = Field(
        default=7 * 24 * 3600,
        gt=0,
        le=TEN_YEARS,
        description="How far ahead a request's spec.startTime may lie (from its creation)",
    )
    retention_seconds: float = Field(
        default=90 * 24 * 3600,
        gt=0,
        le=TEN_YEARS,
        description="Finished grants and requests kept this long after they ended",
    )
    resync_seconds: float = Field(
        default=60,
        ge=INTERVAL_FLOORS["resync_seconds"][0],
        le=TEN_YEARS,
        description="Entitlement re-check and drift scan interval",
    )
    eligibility_recheck_seconds: float = Field(
        default=300,
        ge=INTERVAL_FLOORS["eligibility_recheck_seconds"][0],
        le=TEN_YEARS,
        description="How often the eligibility of every Active grant's user and pending requester is re-checked",
    )
    remove_unbacked_members: bool = Field(
        default=True, description="Drift scan removes group members that no active grant backs"
    )

    webhook_port: int = Field(default=0, ge=0, le=PORT_MAX, description="Admission webhook port; 0 = webhooks off")
    webhook_host: str | None = Field(default=None, description="Host the API server calls the webhook on")
    webhook_certfile: str | None = None
    webhook_keyfile: str | None = None
    webhook_cafile: str | None = None
    webhook_service: str | None = Field(
        default=None, description="namespace/name of the webhook Service (in-cluster); else a URL is used"
    )
    webhook_managed: bool = Field(
        default=True,
        description="The operator applies its webhook configurations at start-up (a local run); false: it only "
        "checks the ones installed (the chart renders them)",
    )
    webhook_configuration: str = Field(
        default="jitaccess.dev", min_length=1, description="Name of the Validating- and MutatingWebhookConfiguration"
    )
    admission_policy: str = Field(
        default="",
        description="Name of the ValidatingAdmissionPolicy under the webhooks and of its binding (the chart's "
        "<release>-identity), which the operator checks with the webhook configurations; empty: not checked",
    )
    operator_usernames: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated usernames that act as the operator at admission (kopf bookkeeping, "
        "AccessGrant writes, status), besides the one the operator authenticates as (SelfSubjectReview)",
    )
    responder_groups: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated Kubernetes groups of incident responders: on any team's objects they may "
        "revoke grants, deny pending requests and extensions and withdraw requests not yet granted (never approve); "
        "empty = none",
    )

    audit_bucket: str | None = Field(
        default=None, description="S3 bucket of the audit archive (docs/audit.md); unset = audit records to stdout only"
    )
    audit_prefix: str = Field(default="jitaccess", description="Key prefix of the audit archive in the bucket")
    audit_region: str | None = Field(default=None, description="Region of the audit bucket; defaults to `region`")
    audit_endpoint_url: str | None = Field(default=None, description="S3 endpoint (the emulator)")
    audit_batch_records: int = Field(default=500, ge=1, le=10000, description="Most records in one archive object")
    audit_batch_seconds: float = Field(
        default=5.0,
        ge=INTERVAL_FLOORS["audit_batch_seconds"][0],
        le=TEN_YEARS,
        description="Records wait at most this long for a batch",
    )
    audit_signing_key: str | None = Field(
        default=None,
        description="KMS key (id, ARN or alias; asymmetric, SIGN_VERIFY, ECC_NIST_P256 or RSA) that signs each audit "
        "batch; `kubectl jit audit --verify --public-key` checks the signatures (docs/audit.md); unset = not signed",
    )
    audit_kms_endpoint_url: str | None = Field(default=None, description="KMS endpoint (the emulator)")

    slack_token: str | None = Field(
        default=None, description="Slack bot token (xoxb-...); unset = no Slack messages (docs/notifications.md)"
    )
    slack_signing_secret: str | None = Field(
        default=None, description="Slack app signing secret: verifies button clicks; unset = no interactivity"
    )
    slack_api_url: str = Field(default="https://slack.com/api/", description="Slack Web API base URL")
    slack_default_channel: str | None = Field(
        default=None, description="Channel id for teams whose TeamOwnership names no slackChannel"
    )
    slack_security_channel: str | None = Field(
        default=None, description="Channel id told of standing access the drift scan removed"
    )
    slack_interactions_port: int = Field(
        default=0,
        ge=0,
        le=PORT_MAX,
        description="Port of the Slack interactivity endpoint (POST /slack/interactions); 0 = off",
    )
    slack_impersonator_kubeconfig: str | None = Field(
        default=None,
        description="Kubeconfig of the narrow identity that applies Slack decisions as the clicking user "
        "(may impersonate the approvers, nothing else): a local run",
    )
    slack_impersonator_token_file: str | None = Field(
        default=None,
        description="A bearer token file of the impersonating identity, used against the in-cluster API server "
        "(the chart uses slack_impersonator_service_account instead)",
    )
    slack_impersonator_service_account: str | None = Field(
        default=None,
        description="namespace/name of the ServiceAccount that applies Slack decisions: the operator obtains "
        "short-lived tokens of it with the TokenRequest API (the chart's way; docs/security.md)",
    )
    notify_expiring_before_seconds: float = Field(
        default=600, ge=0, le=TEN_YEARS, description="Tell a grantee this long before their access ends; 0 = never"
    )
    event_sink_url: str | None = Field(
        default=None, description="CloudEvents webhook sink (HTTPS URL); unset = none (docs/notifications.md)"
    )
    event_sink_secret: str | None = Field(default=None, description="HMAC-SHA256 key signing each event")
    drift_notices_hold_deletion_seconds: float = Field(
        default=DRIFT_NOTICES_HOLD_DELETION.total_seconds(),
        ge=1,
        le=TEN_YEARS,
        description="How long a deleted Entitlement or PermissionCatalog waits from its deletion for the Slack and "
        "event sink notices of its drift removals, then goes without them, with a DriftRemovalsUntold Warning Event "
        "naming them",
    )

    metrics_port: int = Field(default=0, ge=0, le=PORT_MAX, description="Prometheus /metrics port; 0 = off")
    bind_address: str = Field(
        default="",
        description="The address the webhooks, /metrics, the Slack endpoint and /healthz listen on: empty = every "
        "address, IPv4 and IPv6; 0.0.0.0 = every IPv4 address, :: = every IPv6 address",
    )
    log_format: str = Field(default="text", pattern="^(text|json)$")
    leader_election: bool = Field(
        default=False,
        description="Replicas elect a leader on a Lease; only the leader acts, every replica serves the webhooks. "
        "Off: this process acts alone (one replica only)",
    )
    lease_name: str = Field(default="jitaccess", description="Name of the leader-election Lease")
    lease_namespace: str | None = Field(
        default=None, description="Namespace of the Lease; unset = the pod's own namespace, else `default`"
    )
    leader_identity: str | None = Field(
        default=None, description="This replica's name in the Lease (the pod name); unset = hostname and pid"
    )
    lease_duration_seconds: float = Field(
        default=12.0, gt=0, le=TEN_YEARS, description="A standby takes over this long after the last renewal"
    )
    renew_deadline_seconds: float = Field(
        default=8.0, gt=0, le=TEN_YEARS, description="The leader stops acting this long after its last renewal"
    )
    retry_period_seconds: float = Field(
        default=2.0,
        ge=INTERVAL_FLOORS["retry_period_seconds"][0],
        le=TEN_YEARS,
        description="How often the Lease is renewed (or tried)",
    )
    max_workers: int = Field(
        default=32,
        ge=1,
        description="Threads for blocking calls (AWS, Kubernetes); grants have half as many again of their own",
    )

    @field_validator("operator_usernames", "responder_groups", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [name.strip() for name in value.split(",") if name.strip()]
        return value

    @field_validator("operator_usernames", "responder_groups")
    @classmethod
    def _whole_names(cls, names: list[str]) -> list[str]:
        """A comma separates the names, so none can hold one: an LDAP group's distinguished name
        (CN=SRE,OU=Groups,DC=corp) would be split into names nobody is in (the chart refuses the comma too)."""
        fix = (
            "the names are separated by commas, so no name can hold one: have your authenticator give the "
            "group (or user) a name without commas, such as its cn alone"
        )
        holding = [name for name in names if "," in name]
        if holding:
            raise ValueError(f"{', '.join(map(repr, holding))} holds a comma: {fix}")
        for first, second in itertools.pairwise(names):
            if _RDN.fullmatch(first) and _RDN.fullmatch(second):
                raise ValueError(
                    f"{first} and {second} look like two parts of one distinguished name (an LDAP group's, such as "
                    f"CN=SRE,OU=Groups,DC=corp) split at its comma, and nobody is in either: {fix}"
                )
        return names

    @field_validator("responder_groups")
    @classmethod
    def _no_system_groups(cls, groups: list[str]) -> list[str]:
        system = [group for group in groups if is_kubernetes_own(group)]
        if system:
            raise ValueError(
                f"{', '.join(system)} is a group of Kubernetes itself ({KUBERNETES_PREFIX}authenticated is every "
                f"user, {KUBERNETES_PREFIX}serviceaccounts every ServiceAccount, {KUBERNETES_PREFIX}masters the "
                "cluster's admins), and every member would be an incident responder: name a group of your own "
                "that holds the responders only"
            )
        return groups

    @field_validator("bind_address")
    @classmethod
    def _ip_address(cls, address: str) -> str:
        if address:
            try:
                ipaddress.ip_address(address)
            except ValueError:
                raise ValueError(
                    "not an IP address: give one of this host's addresses (0.0.0.0 for every IPv4 address, :: for "
                    "every IPv6 address, without brackets), or leave it empty for every address of both"
                ) from None
        return address

    @field_validator("slack_default_channel", "slack_security_channel")
    @classmethod
    def _slack_channel_id(cls, channel: str | None) -> str | None:
        if channel is not None and not re.fullmatch(SLACK_CHANNEL_PATTERN, channel):
            raise ValueError(
                "not a Slack channel id: give the channel's id (C or G and 2-20 capitals or digits, such as "
                "C0123ABCDEF; Slack shows it at the bottom of the channel's details), not its name"
            )
        return channel

    @field_validator("event_sink_url", "slack_api_url")
    @classmethod
    def _https(cls, url: str | None, info: ValidationInfo) -> str | None:
        if url is not None:
            require_https(url, f"{PREFIX}{str(info.field_name).upper()}")
        return url

    @field_validator("lease_name", "webhook_configuration")
    @classmethod
    def _object_name(cls, name: str) -> str:
        _require_name(name, DNS_1123_SUBDOMAIN, "an object name")
        return name

    @field_validator("admission_policy")
    @classmethod
    def _policy_name(cls, name: str) -> str:
        if name:
            _require_name(name, DNS_1123_SUBDOMAIN, "an object name")
        return name

    @field_validator("lease_namespace")
    @classmethod
    def _namespace(cls, namespace: str | None) -> str | None:
        if namespace is not None:
            _require_name(namespace, DNS_1123_LABEL, "a namespace")
        return namespace

    @field_validator("webhook_service")
    @classmethod
    def _service(cls, service: str | None) -> str | None:
        if service is not None:
            where, colon, port = service.partition(":")
            namespace, _, name = where.partition("/")
            _require_name(namespace, DNS_1123_LABEL, "namespace/name[:port] of a Service: the namespace")
            _require_name(name, DNS_1035_LABEL, "namespace/name[:port] of a Service: the name")
            if colon and not (port.isdigit() and 1 <= int(port) <= PORT_MAX):
                raise ValueError(f"must be namespace/name[:port] of a Service, and the port a number 1-{PORT_MAX}")
        return service

    @field_validator("slack_impersonator_service_account")
    @classmethod
    def _service_account(cls, account: str | None) -> str | None:
        if account is not None:
            namespace, _, name = account.partition("/")
            _require_name(namespace, DNS_1123_LABEL, "namespace/name of a ServiceAccount: the namespace")
            _require_name(name, DNS_1123_SUBDOMAIN, "namespace/name of a ServiceAccount: the name")
        return account

    @field_validator("leader_identity")
    @classmethod
    def _holder_identity(cls, identity: str | None) -> str | None:
        # Empty is refused rather than read as unset: a Lease with an empty holder is a free one, and
        # a variable set empty (a value missing from a manifest) is a mistake, not a wish for the default.
        if identity is not None and (
            not identity
            or identity != identity.strip()
            or not identity.isprintable()
            or len(identity) > IDENTITY_MAX_LENGTH
        ):
            raise ValueError(
                "must be this replica's name in the Lease (spec.holderIdentity), unique among the replicas: "
                f"1-{IDENTITY_MAX_LENGTH} printable characters, no line breaks or control characters, no space "
                "at either end (the chart gives the pod's name); unset it for hostname and pid"
            )
        return identity

    @field_validator(*FILE_SETTINGS)
    @classmethod
    def _readable_file(cls, path: str | None) -> str | None:
        if path:
            try:
                with open(path, "rb"):
                    pass
            except OSError as exc:
                raise ValueError(
                    f"cannot read this file ({exc.strerror or exc}): give the path of a file this process "
                    "may read (in a pod, one of a mounted Secret), or unset the setting"
                ) from None
        return path

    @model_validator(mode="after")
    def _given_together(self) -> Self:
        for name, needs, message in GIVEN_TOGETHER:
            if getattr(self, name) and not all(getattr(self, need) for need in needs):
                raise ValueError(message)
        return self

    @model_validator(mode="after")
    def _installed_webhooks_need_a_certificate(self) -> Self:
        if self.webhook_port and not self.webhook_managed and not self.webhook_certfile:
            raise ValueError(
                "JITACCESS_WEBHOOK_MANAGED=false: the webhook configurations are installed by someone else (the "
                "chart), trusting a CA of theirs, and no certificate is given: the operator would serve a "
                "temporary one of a CA made as it starts, which they cannot trust (every write refused); set "
                "JITACCESS_WEBHOOK_CERTFILE, _KEYFILE and _CAFILE to the certificate they trust, or let the "
                "operator apply them (JITACCESS_WEBHOOK_MANAGED=true)"
            )
        return self

    @model_validator(mode="after")
    def _one_impersonator(self) -> Self:
        given = [f"{PREFIX}{name.upper()}" for name, _ in self.slack_impersonators]
        if len(given) > 1:
            raise ValueError(
                f"{' and '.join(given)} each name the identity that applies Slack decisions, and the operator "
                f"would use {given[0]} only: set one (with the chart, _SERVICE_ACCOUNT)"
            )
        return self

    @model_validator(mode="after")
    def _election_timing(self) -> Self:
        timing = (self.retry_period_seconds, self.renew_deadline_seconds, self.lease_duration_seconds)
        if self.leader_election and not timing[0] < timing[1] < timing[2]:
            raise ValueError(
                "leader election needs JITACCESS_RETRY_PERIOD_SECONDS < JITACCESS_RENEW_DEADLINE_SECONDS < "
                f"JITACCESS_LEASE_DURATION_SECONDS, and they are {timing[0]:g}, {timing[1]:g} and {timing[2]:g}: "
                "a leader must stop acting before anyone else may take its Lease"
            )
        return self

    @property
    def slack_impersonators(self) -> list[tuple[str, str]]:
        """The settings given (empty is unset) that name the identity applying Slack decisions, as
        (setting, value), in the order `handlers.interactions` takes the first: more than one is
        refused (`_one_impersonator`), as one of them would be ignored."""
        named = (
            ("slack_impersonator_kubeconfig", self.slack_impersonator_kubeconfig),
            ("slack_impersonator_service_account", self.slack_impersonator_service_account),
            ("slack_impersonator_token_file", self.slack_impersonator_token_file),
        )
        return [(name, value) for name, value in named if value]

    @property
    def retention(self) -> timedelta:
        return timedelta(seconds=self.retention_seconds)

    @property
    def limits(self) -> Limits:
        return Limits(
            min_duration=timedelta(seconds=self.min_duration_seconds),
            pending_timeout=timedelta(seconds=self.pending_timeout_seconds),
            max_start_ahead=timedelta(seconds=self.max_start_ahead_seconds),
            max_pending_per_user=self.max_pending_per_user,
        )


def _require_name(name: str, rule: tuple[re.Pattern[str], int, str], what: str) -> None:
    """Refuse at start what the API server would refuse as a name once the operator first uses it."""
    pattern, longest, form = rule
    if len(name) > longest or not pattern.fullmatch(name):
        raise ValueError(f"must be {what}, {form}, at most {longest} characters")


class SettingsError(SystemExit):
    """Settings that do not validate. A `SystemExit`: the process stops with this message and no
    traceback, wherever the settings are first read (some handler modules read them on import)."""


def load() -> Settings:
    """The settings from the environment, or a `SettingsError` naming each bad variable."""
    try:
        return Settings()
    except ValidationError as exc:
        raise SettingsError(describe(exc)) from None


def kubeconfig_files(environ: Mapping[str, str]) -> list[str] | None:
    """The kubeconfig files the operator logs in with, or a `SettingsError` saying why there are none;
    None in a pod, which logs in with its ServiceAccount (`SERVICE_ACCOUNT_TOKEN`) and reads none.

    Read as kubectl and the kubernetes client read them: `KUBECONFIG` is a list separated by
    `os.pathsep` (else `DEFAULT_KUBECONFIG`), a listed file that does not exist is skipped, and one
    that exists but cannot be read (a directory, no permission) fails, as does a list of which none
    exists. Checked at start: both failed later, in kopf's login or a start-up activity, with a
    traceback (one retried forever)."""
    if environ.get("KUBERNETES_SERVICE_HOST") and os.path.isfile(SERVICE_ACCOUNT_TOKEN):
        return None
    variable = environ.get("KUBECONFIG", "")
    listed = [os.path.expanduser(path) for path in variable.split(os.pathsep) if path]
    default = os.path.expanduser(DEFAULT_KUBECONFIG)
    named = f"KUBECONFIG={variable!r}" if listed else f"KUBECONFIG is unset, and {DEFAULT_KUBECONFIG} ({default})"
    fix = (
        "give the kubeconfig this process logs in to the API server with (as kubectl reads KUBECONFIG: "
        f"a list separated by {os.pathsep!r}, whose files that do not exist are skipped), or run the operator "
        "in a pod with its ServiceAccount token mounted"
    )
    found = []
    for path in listed or [default]:
        if not os.path.exists(path):
            continue
        try:
            with open(path, "rb"):
                pass
        except OSError as exc:
            raise SettingsError(f"{REFUSAL}\n- {named}: cannot read {path} ({exc.strerror or exc}): {fix}") from None
        found.append(path)
    if not found:
        missing = "none of its files exists" if len(listed) > 1 else "no such file"
        raise SettingsError(f"{REFUSAL}\n- {named}: {missing}: {fix}")
    return found


def unknown_variables(environ: Mapping[str, str]) -> dict[str, str | None]:
    """Each `JITACCESS_*` variable of `environ` that no setting reads, with the setting's variable it
    is closest to (None when none is close). Names are matched as pydantic-settings matches them,
    whatever their case; those of `OTHER_PROGRAMS` and `TESTS_PREFIX` are not the operator's to judge."""
    # Compared without the prefix, which every name shares and would make anything look close.
    fields = [name.upper() for name in Settings.model_fields]
    unknown: dict[str, str | None] = {}
    for name in sorted(environ):
        upper = name.upper()
        if not upper.startswith(PREFIX) or upper.startswith(TESTS_PREFIX) or upper in OTHER_PROGRAMS:
            continue
        if upper.removeprefix(PREFIX) in fields:
            continue
        closest = difflib.get_close_matches(upper.removeprefix(PREFIX), fields, n=1)
        unknown[name] = f"{PREFIX}{closest[0]}" if closest else None
    return unknown


def warn_of_unknown(environ: Mapping[str, str]) -> None:
    """Log a warning for each variable of `unknown_variables`, by name only: a value may be a secret."""
    for name, closest in unknown_variables(environ).items():
        hint = f"did you mean {closest}?" if closest else "the settings are in docs/install.md#values"
        log.warning("%s is set but is no setting of the operator, and is ignored: %s", name, hint)


def describe(exc: ValidationError) -> str:
    lines = [REFUSAL]
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else ""
        if not field:
            lines.append(f"- {error['msg'].removeprefix('Value error, ')}")
            continue
        info = Settings.model_fields.get(field)
        what = f" ({info.description})" if info is not None and info.description else ""
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "less_than_equal" and (error.get("ctx") or {}).get("le") == TEN_YEARS:
            message = f"Input should be at most ten years, {TEN_YEARS} seconds"
        if error["type"] == "greater_than_equal" and field in INTERVAL_FLOORS:
            floor, cost = INTERVAL_FLOORS[field]
            message = f"Input should be at least {floor:g} s: {cost}"
        lines.append(f"- JITACCESS_{field.upper()}={error.get('input')!r}: {message}{what}")
    return "\n".join(lines)

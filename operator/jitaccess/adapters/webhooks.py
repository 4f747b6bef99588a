"""What the admission webhooks need from Kubernetes and from kopf's webhook server.

- `WebhookServer`: kopf's HTTPS server, which in a cluster advertises a Service (the API server
  reaches pods through one) instead of its own URL, and remembers what it advertised.
- `NoWebhookServer`: stands in when webhooks are off; kopf refuses to start with admission
  handlers registered and no server.
- `own_username`: who the operator authenticates as (SelfSubjectReview), the identity the
  webhooks trust with the operator's own writes.
- `configuration_problem`: whether the webhook configurations in the cluster point at this
  server yet, so the operator reports itself healthy only once its webhooks can answer.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import kopf
import kubernetes
from kubernetes.client.exceptions import ApiException


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
    """kopf's webhook server; with `service`, the webhook configurations name the Service, not a URL."""

    def __init__(self, *, service: ServiceRef | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.service = service
        self.advertised: kopf.WebhookClientConfig | None = None

    async def __call__(self, fn: kopf.WebhookFn) -> AsyncIterator[kopf.WebhookClientConfig]:
        async for config in super().__call__(fn):
            if self.service is not None:
                # kopf appends each handler's id to this path, as it does to a URL.
                config = kopf.WebhookClientConfig(
                    service=kopf.WebhookClientConfigService(
                        namespace=self.service.namespace,
                        name=self.service.name,
                        port=self.service.port,
                        path=(self.path or "").rstrip("/"),
                    ),
                    caBundle=config.get("caBundle"),
                )
            self.advertised = config
            yield config


class NoWebhookServer:
    """A webhook server that never serves: webhooks are off (JITACCESS_WEBHOOK_PORT=0)."""

    async def __call__(self, fn: kopf.WebhookFn) -> AsyncIterator[kopf.WebhookClientConfig]:
        await asyncio.Event().wait()
        yield kopf.WebhookClientConfig()


def own_username() -> str:
    """The username the API server authenticates the operator as (needs a configured client)."""
    review = kubernetes.client.AuthenticationV1Api().create_self_subject_review(
        body=kubernetes.client.V1SelfSubjectReview(api_version="authentication.k8s.io/v1", kind="SelfSubjectReview")
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


def configuration_problem(name: str, advertised: kopf.WebhookClientConfig) -> str | None:
    """Why the webhook configurations `name` do not reach the server that `advertised` itself yet."""
    api = kubernetes.client.AdmissionregistrationV1Api()
    readers: dict[str, Callable[[str], Any]] = {
        "ValidatingWebhookConfiguration": api.read_validating_webhook_configuration,
        "MutatingWebhookConfiguration": api.read_mutating_webhook_configuration,
    }
    for kind, read in readers.items():
        try:
            webhooks = read(name).webhooks or []
        except ApiException as exc:
            return f"{kind} {name} cannot be read ({exc.status} {exc.reason})"
        if not webhooks:
            return f"{kind} {name} has no webhooks yet"
        for webhook in webhooks:
            client = webhook.client_config
            if _pem(client.ca_bundle) != _pem(advertised.get("caBundle")):
                return f"{kind} {name} webhook {webhook.name} does not trust this server's certificate yet"
            url = advertised.get("url")
            if url is not None and not str(client.url or "").startswith(str(url).rstrip("/")):
                return f"{kind} {name} webhook {webhook.name} calls {client.url}, not this server ({url})"
    return None

"""The narrow identity that applies Slack decisions: it acts as the clicking approver, nothing more.

A decision from Slack is a patch of an AccessRequest's annotations sent with
`Impersonate-User: <username>` and no `Impersonate-Group`: the API server authenticates this
identity, checks that its RBAC lets it impersonate exactly that user (`domain.impersonation`),
and then authorizes, admits and audits the patch as that user, as for `kubectl annotate`. The
audit log records both: this identity as `user`, the approver as `impersonatedUser`.

It is a different identity from the operator's, with credentials of its own:

- a kubeconfig (`JITACCESS_SLACK_IMPERSONATOR_KUBECONFIG`): a local run, the tests;
- a ServiceAccount (`JITACCESS_SLACK_IMPERSONATOR_SERVICE_ACCOUNT`, namespace/name; the chart's):
  the operator asks the TokenRequest API for a token of it, valid 10 minutes, kept in memory only
  and renewed before it expires. A Pod can mount a token only of its own ServiceAccount, and a
  long-lived token Secret would outlive its use on disk; the operator's RBAC allows a token of
  that one ServiceAccount only (`resourceNames`). Whoever holds the operator's identity can thus
  obtain this one too: the separation keeps `impersonate` out of the operator's own ClusterRole
  (so no bug in the operator's other code paths can impersonate anyone), and makes every Slack
  decision stand out in the audit log under a name of its own;
- a token file (`JITACCESS_SLACK_IMPERSONATOR_TOKEN_FILE`), re-read as it rotates, against the
  in-cluster API server: a token provisioned by other means.

Blocking calls (the `kubernetes` client), each bounded by `timeout`: callers run them in a thread.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast

import kubernetes
from kubernetes.client.exceptions import ApiException
from kubernetes.config.incluster_config import SERVICE_CERT_FILENAME, InClusterConfigLoader
from urllib3.exceptions import HTTPError

from jitaccess.api import names
from jitaccess.domain import impersonation

#: Lifetime asked of the TokenRequest API (its minimum), renewed when a fifth of it is left.
TOKEN_SECONDS = 600
_RENEW_BEFORE_SECONDS = TOKEN_SECONDS / 5
# The API server's prefix on a webhook's refusal: the webhook's own words follow it.
_WEBHOOK_PREFIX = re.compile(r'^admission webhook "[^"]*" denied the request: ')


class DecisionError(Exception):
    """The API server did not apply the change: its HTTP `status` (0: no answer) and `message`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message

    @property
    def replaced(self) -> bool:
        """The object of that name is not the one the change was for (the uid precondition failed)."""
        return self.status == 422 and "metadata.uid" in self.message

    @property
    def impersonation_refused(self) -> bool:
        """RBAC refused to let this identity act as the user (not the user's own permissions)."""
        return self.status == 403 and "cannot impersonate" in self.message


def _error(exc: ApiException) -> DecisionError:
    message = str(exc.reason or "")
    try:
        status = json.loads(exc.body or "{}")
        message = str(status.get("message") or message) if isinstance(status, dict) else message
    except ValueError:
        pass
    return DecisionError(int(exc.status or 0), _WEBHOOK_PREFIX.sub("", message))


@dataclass(frozen=True)
class ServiceAccountRef:
    namespace: str
    name: str

    @classmethod
    def parse(cls, text: str) -> ServiceAccountRef:
        namespace, _, name = text.partition("/")
        if not namespace or not name or "/" in name:
            raise ValueError(f"{text!r} is not namespace/name of a ServiceAccount")
        return cls(namespace, name)


class _TokenRequests:
    """A token of `account` from the TokenRequest API, renewed before it expires (the client's
    `refresh_api_key_hook`, called before every request, in the calling thread)."""

    def __init__(self, account: ServiceAccountRef, operator: kubernetes.client.ApiClient, timeout: float) -> None:
        self._account, self._core, self._timeout = account, kubernetes.client.CoreV1Api(operator), timeout
        self._lock = threading.Lock()
        self._renew_at = 0.0

    def __call__(self, config: kubernetes.client.Configuration) -> None:
        with self._lock:
            if time.monotonic() < self._renew_at:
                return
            body = kubernetes.client.AuthenticationV1TokenRequest(
                spec=kubernetes.client.V1TokenRequestSpec(audiences=[], expiration_seconds=TOKEN_SECONDS)
            )
            try:
                answer: Any = self._core.create_namespaced_service_account_token(
                    self._account.name, self._account.namespace, body, _request_timeout=self._timeout
                )
            except ApiException as exc:
                problem = _error(exc)
                raise DecisionError(
                    problem.status,
                    f"no token of ServiceAccount {self._account.namespace}/{self._account.name} for the Slack "
                    f"impersonator (TokenRequest): {problem.message}",
                ) from exc
            config.api_key = {"authorization": f"Bearer {answer.status.token}"}
            self._renew_at = time.monotonic() + TOKEN_SECONDS - _RENEW_BEFORE_SECONDS


class Impersonator:
    """Patches AccessRequests as a given user, and asks RBAC whom it may impersonate."""

    def __init__(self, api_client: kubernetes.client.ApiClient, *, timeout: float = 2.0) -> None:
        self._client = api_client
        self._objects = kubernetes.client.CustomObjectsApi(api_client)
        self._authz = kubernetes.client.AuthorizationV1Api(api_client)
        self._timeout = timeout

    @classmethod
    def from_kubeconfig(cls, path: str, *, timeout: float = 2.0) -> Impersonator:
        config = kubernetes.client.Configuration()
        kubernetes.config.load_kube_config(config_file=path, client_configuration=config, persist_config=False)  # type: ignore[no-untyped-call]
        return cls(kubernetes.client.ApiClient(config), timeout=timeout)

    @classmethod
    def from_service_account(
        cls, account: str, *, timeout: float = 2.0, operator: kubernetes.client.Configuration | None = None
    ) -> Impersonator:
        """The API server and its CA as the operator reaches them (its client configuration, by default
        the process's); the credentials tokens of `account`, which the operator asks for."""
        operator = operator or kubernetes.client.Configuration.get_default_copy()
        config = kubernetes.client.Configuration(host=operator.host)
        config.ssl_ca_cert, config.verify_ssl = operator.ssl_ca_cert, operator.verify_ssl
        config.tls_server_name = operator.tls_server_name
        # The client calls the hook only for a key it has: this one, which the hook fills before each call.
        config.api_key = {"authorization": ""}
        config.refresh_api_key_hook = _TokenRequests(  # type: ignore[assignment]
            ServiceAccountRef.parse(account), kubernetes.client.ApiClient(operator), timeout
        )
        return cls(kubernetes.client.ApiClient(config), timeout=timeout)

    @classmethod
    def from_token_file(cls, path: str, *, timeout: float = 2.0) -> Impersonator:
        config = kubernetes.client.Configuration()
        InClusterConfigLoader(token_filename=path, cert_filename=SERVICE_CERT_FILENAME).load_and_set(config)  # type: ignore[no-untyped-call]
        return cls(kubernetes.client.ApiClient(config), timeout=timeout)

    def annotate_request(
        self, name: str, username: str, annotations: Mapping[str, str], *, uid: str | None = None, dry_run: bool = False
    ) -> dict[str, Any]:
        """Merge-patch `annotations` onto AccessRequest `name` as `username`, only if it is still the
        object of `uid` (a uid in an update must match the stored one: the API server refuses the
        change, `DecisionError.replaced`, when the name now belongs to another object); `DecisionError`
        when refused."""
        metadata: dict[str, Any] = {"annotations": dict(annotations)}
        if uid:
            metadata["uid"] = uid
        try:
            patched = self._objects.patch_cluster_custom_object(
                names.GROUP,
                names.VERSION,
                names.REQUESTS,
                name,
                {"metadata": metadata},
                dry_run="All" if dry_run else None,
                field_manager="jitaccess-slack",
                _headers={"Impersonate-User": username},
                _request_timeout=self._timeout,
            )
        except ApiException as exc:
            raise _error(exc) from exc
        except (HTTPError, OSError) as exc:
            raise DecisionError(0, f"the API server did not answer ({type(exc).__name__}: {exc})") from exc
        return cast(dict[str, Any], patched)

    def may_impersonate(self, username: str) -> bool:
        """Whether RBAC lets this identity impersonate `username` (a SelfSubjectAccessReview)."""
        review = kubernetes.client.V1SelfSubjectAccessReview(
            spec=kubernetes.client.V1SelfSubjectAccessReviewSpec(
                resource_attributes=kubernetes.client.V1ResourceAttributes(
                    verb="impersonate", resource="users", name=username
                )
            )
        )
        return bool(self._ask(self._authz.create_self_subject_access_review, review).status.allowed)

    def impersonable(self) -> list[str] | None:
        """The users RBAC lets this identity impersonate (a SelfSubjectRulesReview, which any
        authenticated identity may ask, of its cluster-wide rules as seen from kube-system, where no
        binding of it belongs); None: any user (`domain.impersonation.impersonable`)."""
        review = kubernetes.client.V1SelfSubjectRulesReview(
            spec=kubernetes.client.V1SelfSubjectRulesReviewSpec(namespace="kube-system")
        )
        answer = self._ask(self._authz.create_self_subject_rules_review, review)
        found = answer.status.resource_rules or []
        rules: list[dict[str, Any]] = self._client.sanitize_for_serialization(found)  # type: ignore[no-untyped-call]
        return impersonation.impersonable(rules)

    def _ask(self, create: Callable[..., Any], review: Any) -> Any:
        """The API server's answer to `review`, a question this identity asks about itself (`create`,
        an AuthorizationV1Api call); `DecisionError` when it refuses or does not answer."""
        try:
            return create(review, _request_timeout=self._timeout)
        except ApiException as exc:
            raise _error(exc) from exc
        except (HTTPError, OSError) as exc:
            raise DecisionError(0, f"the API server did not answer ({type(exc).__name__}: {exc})") from exc

    def close(self) -> None:
        self._client.close()  # type: ignore[no-untyped-call]

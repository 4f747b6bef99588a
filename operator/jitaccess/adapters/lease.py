"""The leader-election Lease (`coordination.k8s.io/v1`) in the operator's namespace.

Every call is bounded by `timeout`: a replica cut off from the API server must learn so within
its renew deadline, not after a TCP timeout of minutes. Writes carry the resourceVersion they
were decided on, so two replicas racing for the Lease cannot both win (`LeaseConflict`). A write
the API server refuses (`LeaseRefused`: an admission policy, a quota, RBAC) is its own exception,
in the API server's words, so that the elector says so plainly and tries again at its usual pace.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import kubernetes
from kubernetes.client.exceptions import ApiException

from jitaccess.adapters.kube import api_words
from jitaccess.domain.election import LeaseRecord

#: What the API server answers for a write it refuses rather than fails: 400 BadRequest, 403
#: Forbidden (RBAC, a quota, an admission policy or webhook denying) and 422 Invalid.
REFUSALS = frozenset({400, 403, 422})


class LeaseConflict(Exception):
    """Someone else wrote the Lease first (409): read it again."""


class LeaseRefused(Exception):
    """The API server refused the Lease's read or write (`REFUSALS`): `words` are its own."""

    def __init__(self, status: int, words: str) -> None:
        super().__init__(f"{status}: {words}")
        self.status, self.words = status, words


class LeaseStore:
    def __init__(
        self, namespace: str, name: str, timeout: float, api_client: kubernetes.client.ApiClient | None = None
    ) -> None:
        self.namespace, self.name, self.timeout = namespace, name, timeout
        self._api = kubernetes.client.CoordinationV1Api(api_client or kubernetes.client.ApiClient())

    def read(self) -> tuple[LeaseRecord, str] | None:
        """The record and its resourceVersion, or None when there is no Lease yet."""
        try:
            lease = self._api.read_namespaced_lease(self.name, self.namespace, _request_timeout=self.timeout)
        except ApiException as exc:
            if exc.status == 404:
                return None
            _raise_if_refused(exc)
            raise
        spec = lease.spec or kubernetes.client.V1LeaseSpec()
        record = LeaseRecord(
            holder=spec.holder_identity or None,
            duration_seconds=int(spec.lease_duration_seconds or 0),
            acquire_time=_aware(spec.acquire_time),
            renew_time=_aware(spec.renew_time),
            transitions=int(spec.lease_transitions or 0),
        )
        return record, _version(lease)

    def create(self, record: LeaseRecord) -> str:
        """Create the Lease holding `record`; its resourceVersion. `LeaseConflict` if it exists."""
        body: Any = {"metadata": {"name": self.name, "namespace": self.namespace}, "spec": _spec(record)}
        return self._write(
            lambda: self._api.create_namespaced_lease(self.namespace, body, _request_timeout=self.timeout)
        )

    def replace(self, record: LeaseRecord, resource_version: str) -> str:
        """Write `record` over the version it was decided on; `LeaseConflict` if that changed."""
        metadata = {"name": self.name, "namespace": self.namespace, "resourceVersion": resource_version}
        body: Any = {"metadata": metadata, "spec": _spec(record)}
        return self._write(
            lambda: self._api.replace_namespaced_lease(self.name, self.namespace, body, _request_timeout=self.timeout)
        )

    @staticmethod
    def _write(call: Any) -> str:
        try:
            lease = call()
        except ApiException as exc:
            if exc.status == 409:
                raise LeaseConflict(str(exc.reason)) from exc
            _raise_if_refused(exc)
            raise
        return _version(lease)


def _raise_if_refused(exc: ApiException) -> None:
    if exc.status in REFUSALS:
        raise LeaseRefused(int(exc.status), api_words(exc)) from exc


def _version(lease: Any) -> str:
    return str(lease.metadata.resource_version) if lease.metadata is not None else ""


def _spec(record: LeaseRecord) -> dict[str, Any]:
    return {
        "holderIdentity": record.holder,
        "leaseDurationSeconds": record.duration_seconds,
        "acquireTime": _micro(record.acquire_time),
        "renewTime": _micro(record.renew_time),
        "leaseTransitions": record.transitions,
    }


def _micro(value: dt.datetime | None) -> str | None:
    """A MicroTime as the API server parses it: always six fractional digits (the client's own
    serialisation drops them when they are zero, which the API server refuses)."""
    return None if value is None else value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)

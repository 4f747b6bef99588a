"""Kubernetes API access for the jitaccess kinds (the `kubernetes` client, blocking calls).

kopf applies patches to the object a handler was called for; everything else (creating the
AccessGrant, following a grant's state onto its AccessRequest) goes through here.
"""

from __future__ import annotations

import enum
import json
import logging
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Final, cast, overload

import kopf
import kubernetes
from kubernetes.client.exceptions import ApiException

from jitaccess.api import names, wire

log = logging.getLogger(__name__)

StatusChange = Callable[[dict[str, Any]], dict[str, Any] | None]


class ByName(enum.Enum):
    """The type of `BY_NAME` alone."""

    BY_NAME = "by name"


#: The `uid` of a write meant for whatever object is stored under the name now, not the one a
#: decision was taken on (attacks 130-134, docs/security.md): each use says why that is right.
BY_NAME: Final = ByName.BY_NAME
#: Which object a write may land on: the uid of the object the caller's decision was taken on, or
#: `BY_NAME`. Required of every write, so that none goes by name by forgetting it.
Only = str | ByName
#: Objects as listed (`Kube.list` names this class's method `list`, whose annotations cannot say it).
Listed = list[dict[str, Any]]

POOL_CONNECTIONS = 64
#: What a listing asks for to be answered with the objects' metadata alone (a PartialObjectMetadataList,
#: as client-go's metadata client asks), or, from a server that cannot answer so, the whole objects.
METADATA_ONLY = "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io, application/json"
#: What the API server answers for a write that no retry of it can make valid: 422 Invalid (a
#: schema bound, a CEL rule, a label value, an admission policy refusing with reason Invalid) and
#: 400 BadRequest. Not 403: a webhook that is down and fails closed, or RBAC being changed, refuses
#: with it for a while only; nor 409, 429, 5xx or a timeout, which pass.
NO_RETRY = frozenset({400, 422})
#: A handler whose write was refused as invalid is tried again this often (seconds), not kopf's 5:
#: only somebody changing the object, the policy or the operator ends it, and each try says so.
INVALID_RETRY_SECONDS = 60.0


class Refused(kopf.TemporaryError):
    """The API server refused the write as invalid (`NO_RETRY`): `message` is its own words, `what`
    the write ("the status of accessgrants/NAME"). A kopf handler that lets it pass is retried once a
    minute (`INVALID_RETRY_SECONDS`), its ERROR line in these words, no traceback (kopf posts no Event
    for its log lines: `settings.posting.loggers` is off)."""

    def __init__(self, status: int, message: str, what: str = "") -> None:
        said = f"the API server refused {what} as invalid ({status}): {message}" if what else f"{status}: {message}"
        super().__init__(said, delay=INVALID_RETRY_SECONDS)
        self.status = status
        self.message = message


def refusal(exc: ApiException, what: str = "") -> Refused | None:
    """`exc` as a refusal no retry can change, or None when trying again may succeed."""
    if exc.status not in NO_RETRY:
        return None
    return Refused(int(exc.status), api_words(exc), what)


def api_words(exc: ApiException) -> str:
    """What the API server said: the `message` of the Status it answered with, else the HTTP reason
    (not `str(exc)`, which spans lines of headers and the raw body)."""
    said = str(exc.reason or "")
    try:
        status = json.loads(exc.body or "{}")
    except ValueError:
        status = None
    if isinstance(status, dict) and status.get("message"):
        said = str(status["message"])
    return said


def load_client_config() -> None:
    """In-cluster credentials when running in a pod, else the kubeconfig (KUBECONFIG)."""
    try:
        kubernetes.config.load_incluster_config()  # type: ignore[no-untyped-call]
    except kubernetes.config.ConfigException:
        # The client reads KUBECONFIG once, at import: read it again now. Empty is unset (kubectl's
        # reading: ~/.kube/config), which the client would take for a file named "".
        kubernetes.config.load_kube_config(config_file=os.environ.get("KUBECONFIG") or None)  # type: ignore[no-untyped-call]


class Kube:
    """Cluster-scoped custom objects of the `jitaccess.dev` group."""

    def __init__(self, api_client: kubernetes.client.ApiClient | None = None) -> None:
        if api_client is None:
            config = kubernetes.client.Configuration.get_default_copy()
            # The client's default pool (5 per CPU) is smaller than the threads that share it
            # (handlers and admission): every call past it opened a new TLS connection, a
            # handshake's CPU on both sides, and dropped it.
            config.connection_pool_maxsize = POOL_CONNECTIONS
            api_client = kubernetes.client.ApiClient(config)
        self._api = kubernetes.client.CustomObjectsApi(api_client)
        # Said once per process: a server without selectable fields refuses every listing by field.
        self._said_unsupported = False

    def get(self, plural: str, name: str) -> dict[str, Any] | None:
        try:
            obj = cast(dict[str, Any], self._api.get_cluster_custom_object(names.GROUP, names.VERSION, plural, name))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return obj

    def list(
        self,
        plural: str,
        label_selector: str = "",
        *,
        fields: Mapping[str, str] | None = None,
        missing_ok: bool = False,
    ) -> list[dict[str, Any]]:
        """Every object of a kind, or those whose `fields` (selectable spec fields) have these values;
        with `missing_ok`, none when the kind is not installed (yet).

        A server that cannot select by those fields answers with every object instead, filtered
        here (`wire.selected_by`): callers read only the objects selected, either way."""
        return self.list_any(plural, [fields or {}], label_selector, missing_ok=missing_ok)

    def list_any(
        self,
        plural: str,
        selections: Sequence[Mapping[str, str]],
        label_selector: str = "",
        *,
        missing_ok: bool = False,
    ) -> Listed:
        """The objects whose fields have the values of any of `selections` (each as `list`'s
        `fields`), each once: one listing per selection (a field selector ORs nothing), a few
        objects each. A server that cannot select by a selection's fields answers with every
        object: that one listing then serves for all of them, filtered here."""
        found: dict[str, dict[str, Any]] = {}
        for fields in selections:
            listed = self._listing(plural, label_selector, fields, missing_ok)
            if listed is None:
                everything = self._listing(plural, label_selector, {}, missing_ok) or []
                return [obj for obj in everything if any(wire.selected_by(obj, f) for f in selections)]
            if len(selections) == 1:
                return listed
            found.update((wire.name_of(obj), obj) for obj in listed)
        return list(found.values())

    def _listing(self, plural: str, label_selector: str, fields: Mapping[str, str], missing_ok: bool) -> Listed | None:
        """One listing, selected by `fields` on the server; None when it cannot select by them."""
        selector = wire.field_selector(fields) if fields else ""
        try:
            result: Any = self._api.list_cluster_custom_object(
                names.GROUP, names.VERSION, plural, label_selector=label_selector, field_selector=selector
            )
        except ApiException as exc:
            if missing_ok and exc.status == 404:
                return []
            if selector and exc.status == 400 and names.FIELD_LABEL_UNSUPPORTED in str(exc.body or ""):
                # Asked again each time (listings by field are rare): CRDs upgraded meanwhile are used at once.
                self._fields_unsupported(plural)
                return None
            raise
        return list(result.get("items", []))

    def _fields_unsupported(self, plural: str) -> None:
        if not self._said_unsupported:
            self._said_unsupported = True
            log.warning(
                "the API server cannot select %s by field (its CRD has no selectableFields: Kubernetes before "
                "1.31, the CustomResourceFieldSelectors feature gate off, or CRDs older than the operator): "
                "listing every object instead, which grows with the records kept (upgrade the CRDs, then "
                "Kubernetes)",
                plural,
            )

    def each(self, plural: str, page: int = 500) -> Iterator[dict[str, Any]]:
        """Every object of a kind, read a page at a time (none when the kind is not installed):
        thousands of grants never sit in memory at once."""
        return self._pages(plural, page, {})

    def each_metadata(self, plural: str, page: int = 500) -> Iterator[dict[str, Any]]:
        """`each`, with only each object's `metadata` (name, uid, labels, annotations, resourceVersion,
        creationTimestamp, deletionTimestamp), no spec or status: for a caller that needs no more
        (`indexes.reconcile`, which keeps only names), so the API server sends a fraction of each
        object and no more is parsed here."""
        return self._pages(plural, page, {"Accept": METADATA_ONLY})

    def _pages(self, plural: str, page: int, headers: dict[str, str]) -> Iterator[dict[str, Any]]:
        token = ""
        while True:
            try:
                result: Any = self._api.list_cluster_custom_object(
                    names.GROUP, names.VERSION, plural, limit=page, _continue=token or None, _headers=headers or None
                )
            except ApiException as exc:
                if exc.status == 404:
                    return
                raise
            yield from result.get("items", [])
            token = (result.get("metadata") or {}).get("continue") or ""
            if not token:
                return

    def create(self, plural: str, body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Create the object, or return the one already there: (object, created). Raises `Refused`
        when the API server refuses the object as invalid (no retry can create it)."""
        try:
            created = cast(
                dict[str, Any], self._api.create_cluster_custom_object(names.GROUP, names.VERSION, plural, body)
            )
            return created, True
        except ApiException as exc:
            refused = refusal(exc)
            if refused is not None:
                raise refused from exc
            if exc.status != 409:
                raise
        existing = self.get(plural, body["metadata"]["name"])
        if existing is None:
            raise RuntimeError(f"{plural}/{body['metadata']['name']} conflicted on create but is gone")
        return existing, False

    def delete(self, plural: str, name: str, *, uid: Only) -> bool:
        """Delete the object named `name` if it is still the one with `uid` (the API server's
        precondition; `BY_NAME`: whatever is stored under the name). False when it is not there, or
        another has taken its name since."""
        client = kubernetes.client
        checked = checked_uid(uid, f"the deletion of {plural}/{name}")
        only = None if checked is None else client.V1DeleteOptions(preconditions=client.V1Preconditions(uid=checked))
        try:
            self._api.delete_cluster_custom_object(names.GROUP, names.VERSION, plural, name, body=only)
        except ApiException as exc:
            if exc.status == 404 or (checked is not None and exc.status == 409):
                return False
            raise
        return True

    def remove_finalizer(self, plural: str, name: str, uid: str, finalizer: str) -> bool:
        """Remove `finalizer` from the object named `name` if it is still the one with `uid`, under
        optimistic locking. False when there was nothing to remove: the object is gone, is another
        one now, or no longer has it."""

        def without(obj: dict[str, Any]) -> dict[str, Any] | None:
            meta = obj.get("metadata") or {}
            finalizers = list(meta.get("finalizers") or [])
            if meta.get("uid") != uid or finalizer not in finalizers:
                return None
            return {"metadata": {"finalizers": [f for f in finalizers if f != finalizer]}}

        patch = self._api.patch_cluster_custom_object
        return self._read_modify_write(patch, plural, name, without, None, "its finalizers") is not None

    def annotate(self, plural: str, name: str, uid: str, change: StatusChange) -> dict[str, Any] | None:
        """Read-modify-write of the annotations of the object named `name`, if it is still the one
        with `uid`, under optimistic locking. `change` gets the object and returns the annotations to
        merge (None: nothing to do). The object as written; None when nothing was (or it is gone)."""

        def merged(obj: dict[str, Any]) -> dict[str, Any] | None:
            if (obj.get("metadata") or {}).get("uid") != uid:
                return None
            annotations = change(obj)
            return None if annotations is None else {"metadata": {"annotations": annotations}}

        patch = self._api.patch_cluster_custom_object
        return self._read_modify_write(patch, plural, name, merged, None, "its annotations")

    # `uid` may be left out only where `current` is given (the object the caller read).
    @overload
    def update_status(
        self, plural: str, name: str, change: StatusChange, current: dict[str, Any], *, uid: Only | None = None
    ) -> dict[str, Any] | None: ...

    @overload
    def update_status(
        self, plural: str, name: str, change: StatusChange, current: None = None, *, uid: Only
    ) -> dict[str, Any] | None: ...

    def update_status(
        self,
        plural: str,
        name: str,
        change: StatusChange,
        current: dict[str, Any] | None = None,
        *,
        uid: Only | None = None,
    ) -> dict[str, Any] | None:
        """Read-modify-write of `status` under optimistic locking.

        `change` gets the object and returns the status fields to merge (None: nothing to do).
        `current` spares the first read. `uid`: write only to that object (`BY_NAME`: to whatever
        is stored under `name`); required unless `current` is given, whose uid it then is. One
        deleted and created again under `name` since the caller's view of it is another object,
        and counts as gone (a conflict reads the object again by name, and a decision taken for the
        first must not land on the second). Returns the object as this write left it; None when
        nothing was written (the object is gone or another, or `change` found nothing to do,
        typically because a concurrent call did it), so that only the caller whose write made the
        change posts the event and counts the metric.
        """
        if uid is None:
            if current is None:
                raise TypeError(f"the status write of {plural}/{name} needs uid= (or BY_NAME) or current=")
            uid = wire.uid_of(current)
        checked = checked_uid(uid, f"the status write of {plural}/{name}")

        def merged(obj: dict[str, Any]) -> dict[str, Any] | None:
            if checked is not None and wire.metadata(obj).get("uid") != checked:
                return None
            fields = change(obj)
            return None if fields is None else {"status": fields}

        patch = self._api.patch_cluster_custom_object_status
        return self._read_modify_write(patch, plural, name, merged, current, "status")

    def _read_modify_write(
        self,
        patch: Callable[..., Any],
        plural: str,
        name: str,
        change: Callable[[dict[str, Any]], dict[str, Any] | None],
        current: dict[str, Any] | None,
        what: str,
    ) -> dict[str, Any] | None:
        """Patch what `change` makes of the object (None: nothing to do), carrying the
        resourceVersion it was computed from: a concurrent writer makes it fail with 409, and it is
        computed again from a fresh read. The object as written; None when nothing was (or it is gone).
        Raises `Refused` when the API server refuses the write as invalid: no read makes it valid."""
        for _ in range(8):
            obj = current if current is not None else self.get(plural, name)
            current = None
            if obj is None:
                return None
            body = change(obj)
            if body is None:
                return None
            version = {"resourceVersion": obj["metadata"]["resourceVersion"]}
            body = {**body, "metadata": {**(body.get("metadata") or {}), **version}}
            try:
                return cast(dict[str, Any], patch(names.GROUP, names.VERSION, plural, name, body))
            except ApiException as exc:
                if exc.status == 404:
                    return None
                refused = refusal(exc, f"the {what.removeprefix('its ')} of {plural}/{name}")
                if refused is not None:
                    raise refused from exc
                if exc.status != 409:
                    raise
        raise RuntimeError(f"{plural}/{name}: {what} kept changing under us; giving up for now")


def checked_uid(uid: Only, what: str) -> str | None:
    """The uid a write must find (None: `BY_NAME`). An empty one is a caller that lost it: it
    would silently go by name, so it is refused instead."""
    if isinstance(uid, ByName):
        return None
    if not uid:
        raise ValueError(f"{what} has an empty uid: pass the uid of the object read, or BY_NAME")
    return uid

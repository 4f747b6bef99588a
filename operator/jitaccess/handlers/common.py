"""Helpers the handler modules share: the index type, time, index reads, status writes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from jitaccess.adapters.kube import BY_NAME, Only
from jitaccess.api import names, wire
from jitaccess.api.models import AccessGrant, Condition, invalid_field
from jitaccess.domain import conditions as cond
from jitaccess.errors import InvalidInput

M = TypeVar("M", bound=BaseModel)
#: What a handler receives for one of kopf's indexes (or a Runtime `ObjectIndex`): values by key.
Index = Mapping[Any, Iterable[Any]]
# kopf passes every registered index to every handler, by keyword. This default is never used: it
# lets a handler that reads an index match the signature kopf declares (which has no index), so
# strict mypy checks each handler against kopf's protocols.
NO_INDEX: Index = MappingProxyType({})


def now() -> dt.datetime:
    # Whole seconds: that is all a Kubernetes timestamp keeps, and decisions must agree with it.
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def doubled(previous: float, first: float, most: float) -> float:
    """The pause after one more failure in a row: twice the `previous` one, at least `first`, at
    most `most` (0 after a success: `first` again)."""
    return min(most, max(first, previous * 2))


def parse(model: type[M], body: Mapping[str, Any]) -> M:
    """Parse an object; a malformed one raises `InvalidInput` naming the field."""
    try:
        return model.model_validate(dict(body))
    except ValidationError as exc:
        raise InvalidInput(*invalid_field(exc)) from exc


def first(index: Index | None, key: Any) -> Any | None:
    """The one value a kopf index holds under `key` (names are unique), or None."""
    if index is None or key not in index:
        return None
    return next(iter(index[key]), None)


def live(obj: dict[str, Any] | None) -> dict[str, Any] | None:
    """`obj` unless it is being deleted: a deleted Entitlement, kept until its grants end, is read as
    gone when an index miss is confirmed with the API server, as the index itself has it."""
    return None if obj is None or wire.deleting(obj) else obj


def conditions_after(
    conditions: list[Condition],
    changes: Iterable[tuple[str, bool, str, str]],
    generation: int | None = None,
) -> list[dict[str, Any]]:
    """Apply several (type, status, reason, message) changes at once, in wire form. A change that
    ends the object (`Ready` to Denied, Failed, Expired...) is dated now, even when its status
    stays: the reason says so (`domain.conditions.ENDINGS`)."""
    current = list(conditions)
    stamp = now()
    for type_, status, reason, message in changes:
        current = cond.set_condition(current, type_, status, reason, message, stamp, generation)
    return [c.wire() for c in current]


def status_change(model: type[M], build: Callable[[M], dict[str, Any] | None]) -> Callable[[dict[str, Any]], Any]:
    """Adapt a function of the parsed model into a `Kube.update_status` change."""

    def change(obj: dict[str, Any]) -> dict[str, Any] | None:
        return build(model.model_validate(obj))

    return change


def request_uid(grant: AccessGrant) -> Only:
    """Which request a write on behalf of `grant` may land on: the one it was created for (its
    `jitaccess.dev/request` label), never another created under that name since. A grant without
    the label (made by hand) is taken at its word, `spec.request` by name (`following.belongs_to`)."""
    return grant.metadata.labels.get(names.LABEL_REQUEST) or BY_NAME


#: How the handlers write a time into status, records and messages.
ts = wire.rfc3339

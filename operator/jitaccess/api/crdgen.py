"""Generate the CustomResourceDefinitions in `crds/` from the pydantic models.

Pydantic's JSON Schema is not a valid structural CRD schema: it uses `$ref`/`$defs`, `anyOf`
with `null` for optionals, `const`, `title` and `additionalProperties: false`. `to_structural`
rewrites it into the subset the API server accepts. Everything else a CRD carries (names,
printer columns, CEL rules on whole objects) is declared here next to the model it belongs to.

Run `python -m jitaccess.api.crdgen` to rewrite `crds/` and the chart's copy; tests fail when they drift.
"""

from __future__ import annotations

import copy
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from jitaccess.api import limits, models, names

READY_REASON = f'.status.conditions[?(@.type=="{names.READY}")].reason'
READY_STATUS = f'.status.conditions[?(@.type=="{names.READY}")].status'
OVERLAPPING_STATUS = f'.status.conditions[?(@.type=="{names.OVERLAPPING}")].status'
# What `kubectl explain` shows for the fields every object has (the words are ours, the facts Kubernetes').
_API_VERSION = f"The versioned schema of this object: {names.GROUP}/{names.VERSION}"
_KIND = "The kind of object this is (CamelCase), as in the resource's name"
IMMUTABLE_SPEC = {"rule": "self == oldSelf", "message": "spec is immutable: create a new object instead"}
#: An Entitlement's name is the value of the label `names.LABEL_ENTITLEMENT` on each of its grants:
#: refused by the API server itself where the webhook does not run (attack 117). A rule at the root,
#: the only place CEL may read `metadata.name`.
_NAME_BOUND = limits.LABEL_VALUE_MAX_LENGTH
#: The webhook's words (`domain.admission`), bar the length: a `messageExpression` with it is beyond the
#: cost budget the API server allows a rule at the root. Checked at creation only (no `oldSelf`): the name
#: never changes, and a rule at the root is not ratcheted (every write changes the object), so one stored
#: before it would take no write, not even its finalizer's removal, and could never be deleted.
ENTITLEMENT_NAME: dict[str, Any] = {
    "rule": f"oldSelf.hasValue() || self.metadata.name.size() <= {_NAME_BOUND}",
    "optionalOldSelf": True,
    "message": f"metadata.name is longer than {_NAME_BOUND} characters, the limit: each of its AccessGrants "
    f"carries the name as the value of the label {names.LABEL_ENTITLEMENT}, which Kubernetes bounds to "
    f"{_NAME_BOUND} characters, so no grant of it could be created: name it in {_NAME_BOUND} characters or fewer",
}


@dataclass(frozen=True)
class Kind:
    """Everything about one kind that is not in its pydantic model."""

    kind: str
    plural: str
    short_names: list[str]
    spec: type[BaseModel]
    status: type[BaseModel]
    columns: list[dict[str, Any]]
    spec_rules: list[dict[str, str]] = field(default_factory=list)
    #: Rules on the whole object (they may read `metadata.name`).
    object_rules: list[dict[str, Any]] = field(default_factory=list)
    description: str = ""
    #: Fields `--field-selector` may name (`selectableFields`; of spec or status, never metadata):
    #: what the operator, the webhooks and `kubectl jit` look objects up by, so that the API server
    #: filters 90 days of records instead of sending them all.
    selectable: list[str] = field(default_factory=list)


def _age() -> dict[str, Any]:
    return {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}


KINDS = [
    Kind(
        kind=names.TEAM_OWNERSHIP,
        plural=names.TEAMS,
        short_names=["towner"],
        spec=models.TeamOwnershipSpec,
        status=models.TeamOwnershipStatus,
        description="A team: its members, its approvers (tech leads) and its backup approvers.",
        columns=[
            {"name": "Approvers", "type": "string", "jsonPath": ".spec.approvers"},
            {"name": "Escalate-After", "type": "string", "jsonPath": ".spec.escalateAfter"},
            {"name": names.READY, "type": "string", "jsonPath": READY_STATUS},
            _age(),
        ],
    ),
    Kind(
        kind=names.ENTITLEMENT,
        plural=names.ENTITLEMENTS,
        short_names=["ent"],
        spec=models.EntitlementSpec,
        status=models.EntitlementStatus,
        object_rules=[ENTITLEMENT_NAME],
        description="A requestable role: an Identity Center group, its owner team, limits and eligibility.",
        selectable=["spec.owner"],
        columns=[
            {"name": "Owner", "type": "string", "jsonPath": ".spec.owner"},
            {"name": "Group", "type": "string", "jsonPath": ".spec.identityCenter.groupName"},
            {"name": "Max", "type": "string", "jsonPath": ".spec.maxDuration"},
            {"name": names.READY, "type": "string", "jsonPath": READY_STATUS},
            {"name": "Reason", "type": "string", "jsonPath": READY_REASON, "priority": 1},
            # Another Entitlement grants the same access (`domain.overlaps`); empty: it never has.
            {"name": names.OVERLAPPING, "type": "string", "jsonPath": OVERLAPPING_STATUS, "priority": 1},
            _age(),
        ],
    ),
    Kind(
        kind=names.ACCESS_REQUEST,
        plural=names.REQUESTS,
        short_names=["areq"],
        spec=models.AccessRequestSpec,
        status=models.AccessRequestStatus,
        spec_rules=[IMMUTABLE_SPEC],
        description="A request for an Entitlement, for a limited time, with a reason.",
        selectable=["spec.requester", "spec.entitlement", "spec.breakGlass"],
        columns=[
            {"name": "Requester", "type": "string", "jsonPath": ".spec.requester"},
            {"name": "Entitlement", "type": "string", "jsonPath": ".spec.entitlement"},
            {"name": "Duration", "type": "string", "jsonPath": ".status.duration"},
            # type string, as Expires below: `date` renders future times as <invalid>.
            {"name": "Start", "type": "string", "jsonPath": ".spec.startTime"},
            {"name": "Status", "type": "string", "jsonPath": READY_REASON},
            # `1/2` while approvals are collected; `auto`, `auto (on call)` or `break-glass`.
            {"name": "Approvals", "type": "string", "jsonPath": ".status.approvalSummary"},
            {"name": "Approved-By", "type": "string", "jsonPath": ".status.approvedBy", "priority": 1},
            {"name": "Reason", "type": "string", "jsonPath": ".spec.reason", "priority": 1},
            _age(),
        ],
    ),
    Kind(
        kind=names.ACCESS_GRANT,
        plural=names.GRANTS,
        short_names=["agrant"],
        spec=models.AccessGrantSpec,
        status=models.AccessGrantStatus,
        spec_rules=[IMMUTABLE_SPEC],
        description="One grant, written by the operator only: user U is in group G from T1 to T2.",
        selectable=["spec.user", "spec.entitlement", "spec.request", "spec.groupName", "status.groupId"],
        columns=[
            {"name": "User", "type": "string", "jsonPath": ".spec.user"},
            {"name": "Entitlement", "type": "string", "jsonPath": ".spec.entitlement"},
            {"name": "Status", "type": "string", "jsonPath": READY_REASON},
            # type string: `date` renders future times as <invalid>.
            {"name": "Expires", "type": "string", "jsonPath": ".status.expirationTime"},
            {"name": "Started", "type": "string", "jsonPath": ".status.activationTime"},
            {"name": "Extended", "type": "integer", "jsonPath": ".status.extensionCount"},
            {"name": "Group", "type": "string", "jsonPath": ".spec.groupName", "priority": 1},
            _age(),
        ],
    ),
    Kind(
        kind=names.ACCESS_EXTENSION,
        plural=names.EXTENSIONS,
        short_names=["aext"],
        spec=models.AccessExtensionSpec,
        status=models.AccessExtensionStatus,
        spec_rules=[IMMUTABLE_SPEC],
        description="More time for one Active AccessGrant, asked by its grantee, approved as its entitlement says.",
        selectable=["spec.grant", "spec.requester"],
        columns=[
            {"name": "Grant", "type": "string", "jsonPath": ".spec.grant"},
            {"name": "By", "type": "string", "jsonPath": ".spec.duration"},
            {"name": "Status", "type": "string", "jsonPath": READY_REASON},
            {"name": "Approvals", "type": "string", "jsonPath": ".status.approvalSummary"},
            {"name": "Requester", "type": "string", "jsonPath": ".spec.requester", "priority": 1},
            {"name": "Approved-By", "type": "string", "jsonPath": ".status.approvedBy", "priority": 1},
            {"name": "Ends", "type": "string", "jsonPath": ".status.expirationTime", "priority": 1},
            {"name": "Reason", "type": "string", "jsonPath": ".spec.reason", "priority": 1},
            _age(),
        ],
    ),
    Kind(
        kind=names.PERMISSION_CATALOG,
        plural=names.CATALOGS,
        short_names=["pcat"],
        spec=models.PermissionCatalogSpec,
        status=models.PermissionCatalogStatus,
        description="What a team's roles may do (one per team, named after its TeamOwnership): baseline, and "
        "what production adds, rendered into IAM Identity Center permission sets.",
        columns=[
            {"name": "Baseline-Group", "type": "string", "jsonPath": ".spec.baseline.groupName"},
            {"name": "Production-Group", "type": "string", "jsonPath": ".spec.production.groupName"},
            {"name": names.READY, "type": "string", "jsonPath": READY_STATUS},
            {"name": "Status", "type": "string", "jsonPath": READY_REASON},
            {"name": "Last-Result", "type": "string", "jsonPath": ".status.lastResult.outcome"},
            {"name": "Baseline-Set", "type": "string", "jsonPath": ".status.baseline.permissionSetArn", "priority": 1},
            {
                "name": "Production-Set",
                "type": "string",
                "jsonPath": ".status.production.permissionSetArn",
                "priority": 1,
            },
            _age(),
        ],
    ),
]

_DROP = {"title", "additionalProperties", "$defs", "discriminator"}


def to_structural(schema: dict[str, Any], defs: dict[str, Any] | None = None) -> dict[str, Any]:
    """Rewrite a pydantic JSON schema node into a structural OpenAPI v3 CRD schema node."""
    defs = schema.get("$defs", {}) if defs is None else defs
    if "$ref" in schema:
        target = copy.deepcopy(defs[schema["$ref"].split("/")[-1]])
        target.update({k: v for k, v in schema.items() if k != "$ref"})
        return to_structural(target, defs)
    if "anyOf" in schema:
        # Optional[X] is anyOf [X, null]: absence already means "unset" in Kubernetes.
        branches = [b for b in schema["anyOf"] if b.get("type") != "null"]
        if len(branches) != 1:
            raise ValueError(f"cannot express a union in a structural schema: {schema}")
        merged = {k: v for k, v in schema.items() if k != "anyOf"}
        merged.update(branches[0])
        if merged.get("default", 0) is None:
            del merged["default"]
        return to_structural(merged, defs)
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "default" and value is None:
            # A null default is meaningless here, and makes server-side apply managers conflict.
            continue
        if key in _DROP:
            if key == "additionalProperties" and isinstance(value, dict):
                out[key] = to_structural(value, defs)
            continue
        if key == "const":
            out["enum"] = [value]
        elif key == "properties":
            out[key] = {name: to_structural(sub, defs) for name, sub in value.items()}
        elif key == "items":
            out[key] = to_structural(value, defs)
        else:
            out[key] = value
    if "properties" in out:
        out.setdefault("type", "object")
    if "enum" in out and "type" not in out:
        out["type"] = "string"
    return out


def _conditions_list(node: dict[str, Any]) -> None:
    conditions = node["properties"].get("conditions")
    if conditions is not None:
        conditions["x-kubernetes-list-type"] = "map"
        conditions["x-kubernetes-list-map-keys"] = ["type"]


def crd(kind: Kind) -> dict[str, Any]:
    """The full CRD manifest of one kind."""
    spec = to_structural(kind.spec.model_json_schema(by_alias=True))
    if kind.spec_rules:
        spec["x-kubernetes-validations"] = kind.spec_rules
    status = to_structural(kind.status.model_json_schema(by_alias=True))
    _conditions_list(status)
    # kopf keeps its handler progress in status (users cannot write status: RBAC), never in
    # annotations, so a user cannot forge "handler already done" bookkeeping.
    status["properties"]["kopf"] = {
        "type": "object",
        "description": "The operator's handler progress (kopf); written by the operator only",
        "x-kubernetes-preserve-unknown-fields": True,
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{kind.plural}.{names.GROUP}"},
        "spec": {
            "group": names.GROUP,
            "scope": "Cluster",
            "names": {
                "kind": kind.kind,
                "listKind": f"{kind.kind}List",
                "plural": kind.plural,
                "singular": kind.kind.lower(),
                "shortNames": kind.short_names,
                "categories": ["jit"],
            },
            "versions": [
                {
                    "name": names.VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": kind.columns,
                    **(
                        {"selectableFields": [{"jsonPath": f".{p}"} for p in kind.selectable]}
                        if kind.selectable
                        else {}
                    ),
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": kind.description,
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string", "description": _API_VERSION},
                                "kind": {"type": "string", "description": _KIND},
                                # The API server refuses anything but name and generateName here: metadata's schema is its own.
                                "metadata": {"type": "object"},
                                "spec": spec,
                                "status": status,
                            },
                            **({"x-kubernetes-validations": kind.object_rules} if kind.object_rules else {}),
                        }
                    },
                }
            ],
        },
    }


def render(kind: Kind) -> str:
    header = "# Generated by `python -m jitaccess.api.crdgen` from jitaccess/api/models.py. Do not edit.\n"
    return header + yaml.safe_dump(crd(kind), sort_keys=False, width=120)


def write(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for kind in KINDS:
        path = directory / f"{names.GROUP}_{kind.plural}.yaml"
        path.write_text(render(kind))
        written.append(path)
    return written


def main() -> None:
    """Write `crds/` and the Helm chart's copy of them (or only the directory given)."""
    repo = Path(__file__).parents[3]
    targets = [Path(sys.argv[1])] if len(sys.argv) > 1 else [repo / "crds", repo / "charts/jitaccess/files/crds"]
    for target in targets:
        for path in write(target):
            print(path)


if __name__ == "__main__":
    main()

"""The CRDs in crds/ are generated from the models, stay in sync, and are structural."""

import ast
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from jitaccess.api import crdgen, limits, models, names

CRDS = Path(__file__).resolve().parents[2] / "crds"


@pytest.mark.parametrize("kind", crdgen.KINDS, ids=lambda k: k.kind)
def test_committed_crd_matches_the_models(kind: crdgen.Kind) -> None:
    path = CRDS / f"{names.GROUP}_{kind.plural}.yaml"
    assert path.read_text() == crdgen.render(kind), f"{path.name} is out of date: run `python -m jitaccess.api.crdgen`"


def test_no_stray_files_in_crds() -> None:
    expected = {f"{names.GROUP}_{k.plural}.yaml" for k in crdgen.KINDS}
    assert {p.name for p in CRDS.glob("*.yaml")} == expected


def _walk(node: Any, path: str = "") -> list[str]:
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in {"$ref", "$defs", "anyOf", "oneOf", "allOf", "const", "title"}:
                found.append(f"{path}.{key}")
            if key == "additionalProperties" and value is False:
                found.append(f"{path}.additionalProperties")
            found += _walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, item in enumerate(node):
            found += _walk(item, f"{path}[{i}]")
    return found


@pytest.mark.parametrize("kind", crdgen.KINDS, ids=lambda k: k.kind)
def test_schema_has_no_constructs_the_api_server_rejects(kind: crdgen.Kind) -> None:
    assert _walk(crdgen.crd(kind)) == []


@pytest.mark.parametrize("kind", crdgen.KINDS, ids=lambda k: k.kind)
def test_every_object_node_has_a_type(kind: crdgen.Kind) -> None:
    def check(node: Any, path: str) -> None:
        if isinstance(node, dict) and "properties" in node:
            assert node.get("type") == "object", path
            for name, sub in node["properties"].items():
                assert "type" in sub or sub.get("x-kubernetes-preserve-unknown-fields"), f"{path}.{name}"
                check(sub, f"{path}.{name}")
        if isinstance(node, dict) and "items" in node:
            check(node["items"], f"{path}[]")

    check(crdgen.crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"], kind.kind)


def _undescribed(node: Any, path: str) -> list[str]:
    """The properties under `node` (nested objects, list items, map values) that carry no description."""
    if not isinstance(node, dict):
        return []
    found = []
    for name, sub in (node.get("properties") or {}).items():
        if not sub.get("description"):
            found.append(f"{path}.{name}")
        found += _undescribed(sub, f"{path}.{name}")
    found += _undescribed(node.get("items"), f"{path}[]")
    found += _undescribed(node.get("additionalProperties"), f"{path}{{}}")
    return found


@pytest.mark.parametrize("kind", crdgen.KINDS, ids=lambda k: k.kind)
def test_every_field_says_what_it_is(kind: crdgen.Kind) -> None:
    """`kubectl explain` is where a user meets a field first: none reads `<empty>`."""
    schema = crdgen.crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    # metadata's schema (and description) is the API server's own: it refuses a CRD that gives one.
    assert _undescribed(schema, kind.kind) == [f"{kind.kind}.metadata"]
    assert crdgen.crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["metadata"] == {
        "type": "object"
    }


def test_an_undescribed_field_is_found() -> None:
    schema = {"properties": {"a": {"description": "x", "items": {"properties": {"b": {"type": "string"}}}}}}
    assert _undescribed(schema, "K") == ["K.a[].b"]


def test_contract_names_from_api_md() -> None:
    by_kind = {k.kind: crdgen.crd(k) for k in crdgen.KINDS}
    assert {k: v["spec"]["names"]["shortNames"] for k, v in by_kind.items()} == {
        "TeamOwnership": ["towner"],
        "Entitlement": ["ent"],
        "AccessRequest": ["areq"],
        "AccessGrant": ["agrant"],
        "AccessExtension": ["aext"],
        "PermissionCatalog": ["pcat"],
    }
    for crd in by_kind.values():
        assert crd["spec"]["scope"] == "Cluster"
        assert crd["spec"]["names"]["categories"] == ["jit"]
        assert crd["spec"]["versions"][0]["subresources"] == {"status": {}}
    grant_columns = {c["name"]: c for c in by_kind["AccessGrant"]["spec"]["versions"][0]["additionalPrinterColumns"]}
    assert {"User", "Entitlement", "Status", "Expires", "Age"} <= set(grant_columns)
    assert grant_columns["Expires"]["type"] == "string"
    request_columns = {c["name"] for c in by_kind["AccessRequest"]["spec"]["versions"][0]["additionalPrinterColumns"]}
    assert {"Requester", "Entitlement", "Duration", "Status", "Age"} <= request_columns
    assert grant_columns["Extended"]["jsonPath"] == ".status.extensionCount"
    extension_columns = [
        c["name"] for c in by_kind["AccessExtension"]["spec"]["versions"][0]["additionalPrinterColumns"]
    ]
    assert [c for c in extension_columns if c in {"Grant", "By", "Status", "Age"}] == ["Grant", "By", "Status", "Age"]


@pytest.mark.parametrize("kind", ["AccessRequest", "AccessGrant", "AccessExtension"])
def test_spec_is_immutable_by_cel(kind: str) -> None:
    crd = next(crdgen.crd(k) for k in crdgen.KINDS if k.kind == kind)
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert {"rule": "self == oldSelf", "message": "spec is immutable: create a new object instead"} in spec[
        "x-kubernetes-validations"
    ]


def test_examples_parse_with_the_models() -> None:
    kinds = {
        "TeamOwnership": models.TeamOwnership,
        "Entitlement": models.Entitlement,
        "AccessRequest": models.AccessRequest,
        "PermissionCatalog": models.PermissionCatalog,
    }
    examples = Path(__file__).resolve().parents[2] / "examples"
    seen = 0
    for path in sorted([*examples.glob("0*.yaml"), *examples.glob("requests/*.yaml")]):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") in kinds:
                kinds[doc["kind"]].model_validate(doc)
                seen += 1
    assert seen >= 5


@pytest.mark.parametrize("kind", [k for k in crdgen.KINDS if k.selectable], ids=lambda k: k.kind)
def test_selectable_fields_are_spec_or_status_scalars_and_at_most_eight(kind: crdgen.Kind) -> None:
    # The API server takes at most 8, each a simple path to a string, boolean or integer, not in metadata.
    version = crdgen.crd(kind)["spec"]["versions"][0]
    paths = [f["jsonPath"] for f in version["selectableFields"]]
    assert len(paths) <= 8 and paths == [f".{p}" for p in kind.selectable]
    schema = version["schema"]["openAPIV3Schema"]["properties"]
    for path in kind.selectable:
        part, _, key = path.partition(".")
        assert part in ("spec", "status") and "." not in key and "[" not in key, path
        assert schema[part]["properties"][key]["type"] in ("string", "boolean", "integer"), path


def test_what_the_operator_selects_by_is_selectable() -> None:
    from jitaccess.domain import assignments, breakglass

    by_plural = {k.plural: set(k.selectable) for k in crdgen.KINDS}
    assert set(breakglass.selecting("a@example.com")) <= by_plural[names.REQUESTS]
    assert {"spec.grant"} <= by_plural[names.EXTENSIONS] and {"spec.requester"} <= by_plural[names.REQUESTS]
    # The catalog webhook's grants that may hold a tier (`handlers.admission._grants_of`).
    assert {"spec.groupName", "spec.user"} <= by_plural[names.GRANTS]
    assert {assignments.GRANT_GROUP_FIELD, assignments.GRANT_GROUP_ID_FIELD} <= by_plural[names.GRANTS]


def test_every_list_of_account_ids_in_a_spec_is_a_set() -> None:
    """An account twice is refused by the API server by name ("Duplicate value"), in a catalog's
    tiers as in an Entitlement's accountAssignment."""
    found: dict[str, Any] = {}

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            for name, sub in (node.get("properties") or {}).items():
                if name == "accounts" and sub.get("type") == "array" and sub["items"].get("type") == "string":
                    found[f"{path}.{name}"] = sub.get("x-kubernetes-list-type")
                walk(sub, f"{path}.{name}")

    for kind in crdgen.KINDS:
        schema = crdgen.crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        walk(schema["properties"]["spec"], f"{kind.kind}.spec")
    assert found == {
        "AccessGrant.spec.accountAssignment.accounts": "set",
        "Entitlement.spec.identityCenter.accountAssignment.accounts": "set",
        "PermissionCatalog.spec.baseline.accounts": "set",
        "PermissionCatalog.spec.production.accounts": "set",
    }


def _unbounded(node: dict[str, Any], path: str) -> Iterator[str]:
    """The paths of lists, maps and strings under `node` the schema does not bound."""
    kind = node.get("type")
    if kind == "array" and "maxItems" not in node:
        yield path
    if kind == "string" and not {"maxLength", "enum", "pattern"} & set(node):
        yield path
    if kind == "object" and "additionalProperties" in node and "maxProperties" not in node:
        yield path
    for name, sub in (node.get("properties") or {}).items():
        yield from _unbounded(sub, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from _unbounded(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _unbounded(node["additionalProperties"], f"{path}{{}}")


@pytest.mark.parametrize(
    "kind", [k for k in crdgen.KINDS if k.kind in ("TeamOwnership", "Entitlement")], ids=lambda k: k.kind
)
def test_every_list_and_name_of_a_policy_spec_is_bounded(kind: crdgen.Kind) -> None:
    """A team's (or an Entitlement's) spec is copied into its status by kopf: unbounded, its owners
    could store one whose status write etcd refuses, or whose people no message can list."""
    spec = crdgen.crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert list(_unbounded(spec, "spec")) == []


def test_a_teams_lists_carry_the_bounds_of_api_limits() -> None:
    team = next(k for k in crdgen.KINDS if k.kind == "TeamOwnership")
    spec = crdgen.crd(team)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    assert (spec["members"]["maxItems"], spec["members"]["items"]["maxLength"]) == (1000, limits.KUBE_NAME_MAX_LENGTH)
    assert spec["approvers"]["maxItems"] == spec["backupApprovers"]["maxItems"] == limits.TEAM_APPROVERS_MAX == 100
    assert spec["backupApproverGroups"]["maxItems"] == limits.POLICY_GROUPS_MAX == 100
    slack_users = spec["notifications"]["properties"]["slackUsers"]
    assert slack_users["maxProperties"] == limits.SLACK_USERS_MAX
    assert slack_users["x-kubernetes-validations"][0]["rule"] == "self.all(k, size(k) <= 256)"


REPO = Path(__file__).resolve().parents[2]
API_MD = REPO / "docs" / "api.md"


def printer_columns_documented(text: str) -> list[str]:
    """What docs/api.md says wrong of the printer columns, one sentence per kind: each kind's section
    gives them as `NAME ...` (what `kubectl get` shows, NAME first), and names each `-o wide` column."""
    problems = []
    for kind in crdgen.KINDS:
        version = crdgen.crd(kind)["spec"]["versions"][0]
        columns = version.get("additionalPrinterColumns", [])
        shown = ["NAME", *(c["name"].upper() for c in columns if not c.get("priority"))]
        wide = [c["name"].upper() for c in columns if c.get("priority")]
        section = text[text.index(f"\n## {kind.kind}\n") :]
        section = section[: section.find("\n## ", 1)]
        found = re.search(r"^Printer columns: `([^`]+)`(.*?)(?:\n\n|\Z)", section, re.M | re.S)
        if found is None:
            problems.append(f"{kind.kind}: no 'Printer columns:' in its section")
            continue
        if found.group(1).split() != shown:
            problems.append(f"{kind.kind}: `{found.group(1)}`, but kubectl get shows `{' '.join(shown)}`")
        unnamed = [c for c in wide if f"`{c}`" not in found.group(2)]
        if unnamed:
            problems.append(f"{kind.kind}: -o wide also shows {', '.join(unnamed)}")
    return problems


def test_api_md_gives_each_kinds_printer_columns() -> None:
    assert printer_columns_documented(API_MD.read_text()) == []
    planted = API_MD.read_text().replace("`NAME GRANT BY STATUS APPROVALS AGE`", "`NAME GRANT BY STATUS AGE`")
    assert printer_columns_documented(planted) == [
        "AccessExtension: `NAME GRANT BY STATUS AGE`, but kubectl get shows `NAME GRANT BY STATUS APPROVALS AGE`"
    ]


def _section(text: str, heading: str) -> str:
    section = text[text.index(f"\n{heading}\n") :]
    return section[: section.find("\n## ", 1)]


def test_api_md_names_the_annotations_and_event_reasons_there_are() -> None:
    text = API_MD.read_text()
    table = re.findall(r"^\| (`[^|]+`) \|", _section(text, "## Annotations"), re.M)
    keys = {
        k if k.startswith(names.GROUP) else f"{names.GROUP}/{k}"
        for cell in table
        for k in re.findall(r"`([^`]+)`", cell)
    }
    assert keys == {v for k, v in vars(names).items() if k.startswith("ANNOTATION_")}
    # Every reason the Events table gives is one the operator posts: of names.py, or a handler's own.
    rows = "\n".join(line for line in _section(text, "## Events").splitlines() if line.startswith("| "))
    reasons = set(re.findall(r"`([A-Z][A-Za-z]+)`", rows))
    handlers = "".join(path.read_text() for path in (REPO / "operator" / "jitaccess" / "handlers").glob("*.py"))
    own = set(re.findall(r'(?:reason=|REASON = )"(\w+)"', handlers))
    assert {"NotificationFailing", "SlackApproverNotImpersonable"} <= own
    assert reasons - {v for v in vars(names).values() if isinstance(v, str)} - own == set()


def posted_reasons(source: str) -> set[str]:
    """The Event reasons `source` posts by name: the reason of each `record(obj, REASON, ...)` (the
    handlers' `recording.record`) and each `reason=` of kopf's `event`/`info`/`warn`/`exception`, given
    as `names.X`, a string, or a module constant. Reasons taken from a variable (a condition's) are not
    seen here: the Events table gives those by the condition they follow."""
    tree = ast.parse(source)
    constants = {
        target.id: node.value.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    found = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        called = getattr(node.func, "attr", getattr(node.func, "id", ""))
        given = [kw.value for kw in node.keywords if kw.arg == "reason" and called in _POSTERS]
        if called == "record" and len(node.args) >= 2:
            given.append(node.args[1])
        for arg in given:
            if isinstance(arg, ast.Attribute) and getattr(arg.value, "id", "") == "names":
                found.add(getattr(names, arg.attr))
            elif isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                found.add(arg.value)
            elif isinstance(arg, ast.Name) and arg.id in constants:
                found.add(constants[arg.id])
    return found


_POSTERS = {"event", "info", "warn", "exception", "record"}


def test_api_md_names_every_event_reason_the_operator_posts_by_name() -> None:
    # The table, and the words after it (NotificationFailing is posted on objects of every kind).
    documented = set(re.findall(r"`([A-Z][A-Za-z]+)`", _section(API_MD.read_text(), "## Events")))
    posted: set[str] = set()
    for path in (REPO / "operator" / "jitaccess").rglob("*.py"):
        posted |= posted_reasons(path.read_text())
    assert {names.WRITE_REFUSED, names.DRIFT_UNTOLD, "NotificationFailing", "SlackApproverNotImpersonable"} <= posted
    assert posted - documented == set()
    planted = "REASON = 'Sneaky'\nkopf.warn(body, reason=REASON, message='m')\nrecording.record(o, names.DENIED, 'x')"
    assert posted_reasons(planted) == {"Sneaky", names.DENIED}

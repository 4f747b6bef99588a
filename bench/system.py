"""The system under test, as `make dev` runs it: control plane, Identity Center emulator, operator.

Differences from `make dev`, all for measuring:

- no controller-manager (nothing here needs garbage collection);
- thousands of bench users (`bench-00001@example.com`, ...) are put straight into the emulator's
  store, each eligible for `prod-eng-payments` (in `prod-eligible` and `pci-secure-code-trained`);
  they are no Kubernetes users: requests are created by the admin *as* them, with impersonation
  headers (`Impersonate-User`, `Impersonate-Group: team-payments`), which the admission webhooks see
  as that user in the payments team, so each request is auto-approved;
- the bench users may create requests through a ClusterRoleBinding of the `jitaccess-requester`
  role (examples/rbac.yaml) to the group `team-payments`;
- the emulator's membership table logs every change (`bench.membership`);
- the operator runs with `JITACCESS_MIN_DURATION_SECONDS=1` and each scenario's rate limit, and is
  restarted (and the cluster emptied) between scenarios by `reset`.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import os
import re
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import kopf
import kubernetes
from kubernetes.client.exceptions import ApiException
from moto.identitystore.models import Name, User

from bench.membership import MembershipLog
from bench.watcher import GROUP, VERSION, GrantWatcher
from jitaccess.api import names
from jitaccess.devenv import emulator as emulator_module
from jitaccess.devenv.controlplane import ControlPlane
from jitaccess.devenv.emulator import IdentityCenterEmulator
from jitaccess.devenv.operator_process import OperatorProcess

log = logging.getLogger(__name__)
REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
ENTITLEMENT = "prod-eng-payments"
TARGET_GROUP = "prod-eng-payments"
TEAM_GROUP = "team-payments"
ELIGIBILITY_GROUPS = ("prod-eligible", "pci-secure-code-trained")
WEBHOOK_CONFIGURATION = "jitaccess.dev"
REQUESTER_ROLE = "jitaccess-requester"  # examples/rbac.yaml
FINALIZER = names.FINALIZER
DIFFBASE_FIELD = "status.kopf.diffbase"  # likewise
REASON = "BENCH-1 benchmark"
_LABEL = re.compile(r'(\w+)="([^"]*)"')


def _ts(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def _seconds(duration: str) -> int:
    units = {"h": 3600, "m": 60, "s": 1}
    return sum(int(n) * units[u] for n, u in re.findall(r"(\d+)([hms])", duration))


def user_name(index: int) -> str:
    return f"bench-{index:05d}@example.com"


class System:
    """Start with `start`, stop with `stop`; `operator` is the running operator, if any."""

    def __init__(self, workdir: Path, users: int) -> None:
        self.workdir = workdir
        self.user_count = users
        self.cp: ControlPlane | None = None
        self.ic: IdentityCenterEmulator | None = None
        self.operator: OperatorProcess | None = None
        self.user_ids: dict[str, str] = {}
        self.group_ids: dict[str, str] = {}
        self._operators = 0

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> System:
        began = time.monotonic()
        self.cp = ControlPlane().start(controller_manager=False)
        self.ic = IdentityCenterEmulator().start()
        self.ic.seed(EXAMPLES / "identitycenter" / "seed.yaml")
        self._add_users()
        self.cp.kubectl("apply", "--server-side", "-f", str(REPO / "crds"))
        self.cp.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
        self.cp.kubectl("apply", "-f", str(EXAMPLES / "rbac.yaml"), "-f", str(EXAMPLES / "admission-policy.yaml"))
        self.cp.kubectl("apply", "-f", str(EXAMPLES / "01-teams.yaml"), "-f", str(EXAMPLES / "02-entitlements.yaml"))
        config = kubernetes.client.Configuration()
        kubernetes.config.load_kube_config(config_file=str(self.cp.admin_kubeconfig), client_configuration=config)
        config.connection_pool_maxsize = 64
        self.api = kubernetes.client.ApiClient(config)
        self.custom = kubernetes.client.CustomObjectsApi(self.api)
        self._bind_requesters()
        self.watcher = GrantWatcher(self.api).start()
        log.info("system up in %.1f s (%d bench users)", time.monotonic() - began, self.user_count)
        return self

    def _bind_requesters(self) -> None:
        """examples/rbac.yaml binds its requester role to the test users by name; the bench users
        are let in as the group they are impersonated with."""
        binding = {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "jitaccess-bench-requesters"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": REQUESTER_ROLE},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": TEAM_GROUP}],
        }
        kubernetes.client.RbacAuthorizationV1Api(self.api).create_cluster_role_binding(binding)

    def stop(self) -> None:
        if self.operator is not None:
            self.operator.stop()
        with contextlib.suppress(AttributeError):
            self.watcher.stop()
        if self.ic is not None:
            self.ic.stop()
        if self.cp is not None:
            self.cp.stop()

    def _add_users(self) -> None:
        """Bench users and their eligibility, written straight into the emulator's store.

        Through the API this would be three calls per user (minutes for thousands); the store is
        the same one the operator reads. The membership table is then replaced by the logging one.
        """
        assert self.ic is not None
        store = emulator_module._PINNED[self.ic.identity_store_id]
        self.group_ids = {g.DisplayName: g.GroupId for g in store.groups.values()}
        for index in range(1, self.user_count + 1):
            name = user_name(index)
            user_id = str(uuid.uuid4())
            store.users[user_id] = User(
                user_id, self.ic.identity_store_id, name, Name(None, "Bench", f"User{index}", None, None, None),
                f"Bench User {index}", "", "", [{"Value": name, "Type": "work", "Primary": True}],
                [], [], "", "", "", "", "",
            )  # fmt: skip
            self.user_ids[name] = user_id
            for group in ELIGIBILITY_GROUPS:
                membership_id = str(uuid.uuid4())
                store.group_memberships[membership_id] = {
                    "IdentityStoreId": self.ic.identity_store_id,
                    "MembershipId": membership_id,
                    "GroupId": self.group_ids[group],
                    "MemberId": {"UserId": user_id},
                }
        self.memberships = MembershipLog(store.group_memberships)
        store.group_memberships = self.memberships

    # --- the operator ------------------------------------------------------------------------

    def start_operator(self, rate_limit: float, *, wait_resolved: bool = True, **env: str) -> OperatorProcess:
        assert self.cp is not None and self.ic is not None
        self._operators += 1
        self.operator = OperatorProcess(
            self.cp.admin_kubeconfig,
            self.ic.env(),
            self.workdir / f"operator-{self._operators}.log",
            extra_env={
                "JITACCESS_MIN_DURATION_SECONDS": "1",
                "JITACCESS_RATE_LIMIT": str(rate_limit),
                **env,
            },
        )
        self.operator.start(timeout=120)
        if wait_resolved:
            self.wait_entitlement_resolved()
        return self.operator

    def wait_entitlement_resolved(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            obj: Any = self.custom.get_cluster_custom_object(GROUP, VERSION, "entitlements", ENTITLEMENT)
            conditions = (obj.get("status") or {}).get("conditions") or []
            if any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions):
                return
            time.sleep(0.1)
        raise TimeoutError(f"Entitlement {ENTITLEMENT} not Ready within {timeout}s")

    def rss_mb(self) -> tuple[float, float]:
        """The operator's resident memory now and at its peak (VmRSS, VmHWM), in MiB."""
        assert self.operator is not None and self.operator.pid is not None
        fields = {}
        for line in Path(f"/proc/{self.operator.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            fields[key] = value.strip()
        return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024

    # --- objects -----------------------------------------------------------------------------

    def request_body(self, name: str, duration: str) -> dict[str, Any]:
        return {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "AccessRequest",
            "metadata": {"name": name},
            "spec": {"entitlement": ENTITLEMENT, "reason": REASON, "duration": duration},
        }

    def create_request(self, name: str, user: str, duration: str) -> None:
        """Create an AccessRequest as `user` of the payments team (auto-approved)."""
        self.custom.create_cluster_custom_object(
            GROUP,
            VERSION,
            "accessrequests",
            self.request_body(name, duration),
            _headers={"Impersonate-User": user, "Impersonate-Group": TEAM_GROUP},
        )

    def create_requests(self, items: list[tuple[str, str, str]], threads: int = 16) -> float:
        """Create many (name, user, duration) requests at once; the seconds it took."""
        began = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(threads) as pool:
            futures = [pool.submit(self.create_request, *item) for item in items]
            errors = [exc for f in futures if (exc := f.exception()) is not None]
        if errors:
            raise RuntimeError(f"{len(errors)} of {len(items)} requests were refused; the first: {errors[0]}")
        return time.monotonic() - began

    def seed_active(self, items: list[tuple[str, str, str]], threads: int = 16) -> float:
        """Write Active grants straight into the cluster and the emulator, as the operator leaves
        them (request and grant with their status, the grant's finalizer, kopf's diffbase, the
        membership), while no operator runs; the seconds it took.

        A starting operator then adopts them as it would after a restart (resume handlers, one
        expiry daemon each), without the minutes that creating thousands through it would take.
        """
        assert self.operator is None and self.ic is not None
        diffbase = kopf.StatusDiffBaseStorage(field=DIFFBASE_FIELD)
        group_id = self.group_ids[TARGET_GROUP]

        def stamp(obj: dict[str, Any]) -> str:
            patch = kopf.Patch()
            diffbase.store(body=kopf.Body(obj), patch=patch, essence=diffbase.build(body=kopf.Body(obj)))
            return str(patch["status"]["kopf"]["diffbase"])

        def one(name: str, user: str, duration: str) -> None:
            request: Any = self.custom.create_cluster_custom_object(
                GROUP, VERSION, "accessrequests", self.request_body(name, duration),
                _headers={"Impersonate-User": user, "Impersonate-Group": TEAM_GROUP},
            )  # fmt: skip
            grant: Any = self.custom.create_cluster_custom_object(
                GROUP, VERSION, "accessgrants",
                {
                    "apiVersion": f"{GROUP}/{VERSION}", "kind": "AccessGrant",
                    "metadata": {"name": name, "finalizers": [FINALIZER]},
                    "spec": {"user": user, "entitlement": ENTITLEMENT, "groupName": TARGET_GROUP, "request": name,
                             "duration": duration},
                },
            )  # fmt: skip
            membership_id = str(uuid.uuid4())
            self.memberships[membership_id] = {
                "IdentityStoreId": self.ic.identity_store_id if self.ic else "",
                "MembershipId": membership_id,
                "GroupId": group_id,
                "MemberId": {"UserId": self.user_ids[user]},
            }
            start = time.time()
            end = start + _seconds(duration)
            ready = {"type": "Ready", "status": "True", "lastTransitionTime": _ts(start)}
            self.custom.patch_cluster_custom_object_status(
                GROUP, VERSION, "accessgrants", name,
                {"status": {"userId": self.user_ids[user], "groupId": group_id, "membershipId": membership_id,
                            "activationTime": _ts(start), "expirationTime": _ts(end),
                            "conditions": [{**ready, "reason": "Active", "message": f"until {_ts(end)}"}],
                            "kopf": {"diffbase": stamp(grant)}}},
            )  # fmt: skip
            self.custom.patch_cluster_custom_object_status(
                GROUP, VERSION, "accessrequests", name,
                {"status": {"requester": user, "grant": name, "duration": duration, "expirationTime": _ts(end),
                            "conditions": [{**ready, "type": "Approved", "reason": "AutoApproved"},
                                           {**ready, "reason": "Granted", "message": f"until {_ts(end)}"}],
                            "kopf": {"diffbase": stamp(request)}}},
            )  # fmt: skip

        began = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(threads) as pool:
            for future in [pool.submit(one, *item) for item in items]:
                future.result()
        return time.monotonic() - began

    def wait_operator_idle(self, timeout: float = 600, below: float = 0.05) -> float:
        """Until the operator uses under `below` of a core over two seconds; the seconds it took."""
        assert self.operator is not None and self.operator.pid is not None
        tick, began = os.sysconf("SC_CLK_TCK"), time.monotonic()

        def used() -> float:
            fields = Path(f"/proc/{self.operator.pid}/stat").read_text().rsplit(")", 1)[1].split()  # type: ignore[union-attr]
            return (int(fields[11]) + int(fields[12])) / tick

        last = used()
        while time.monotonic() - began < timeout:
            time.sleep(2)
            now = used()
            if now - last < 2 * below:
                return time.monotonic() - began
            last = now
        raise TimeoutError(f"the operator was still busy after {timeout} s")

    def membership_key(self, user: str) -> tuple[str, str]:
        return self.group_ids[TARGET_GROUP], self.user_ids[user]

    # --- between scenarios ------------------------------------------------------------------

    def reset(self) -> None:
        """Stop the operator and empty the cluster and the granted groups, without revoking one by one."""
        if self.operator is not None:
            self.operator.stop()
            self.operator = None
        admission = kubernetes.client.AdmissionregistrationV1Api(self.api)
        with contextlib.suppress(ApiException):
            admission.delete_validating_webhook_configuration(WEBHOOK_CONFIGURATION)
        with contextlib.suppress(ApiException):
            admission.delete_mutating_webhook_configuration(WEBHOOK_CONFIGURATION)
        for plural in ("accessgrants", "accessrequests"):
            listing: Any = self.custom.list_cluster_custom_object(GROUP, VERSION, plural)
            held = [i["metadata"]["name"] for i in listing["items"] if i["metadata"].get("finalizers")]
            with concurrent.futures.ThreadPoolExecutor(16) as pool:
                list(pool.map(lambda name, p=plural: self._drop_finalizers(p, name), held))
            self.custom.delete_collection_cluster_custom_object(GROUP, VERSION, plural)
        deadline = time.monotonic() + 120
        while any(
            self.custom.list_cluster_custom_object(GROUP, VERSION, p, limit=1)["items"]  # type: ignore[index]
            for p in ("accessgrants", "accessrequests")
        ):
            if time.monotonic() > deadline:
                raise TimeoutError("the cluster did not empty within 120 s")
            time.sleep(0.2)
        self.memberships.wipe({self.group_ids["prod-eng-payments"], self.group_ids["prod-eng-ledger"]})
        self.watcher.forget()
        if self.ic is not None:
            self.ic.faults.clear()

    def _drop_finalizers(self, plural: str, name: str) -> None:
        with contextlib.suppress(ApiException):
            self.custom.patch_cluster_custom_object(GROUP, VERSION, plural, name, {"metadata": {"finalizers": None}})

    def api_calls(self) -> Counter[str]:
        """Requests the API server has served, and webhook calls it made, from its /metrics.

        Keys: `VERB resource[/subresource]` for the jitaccess kinds and Events (every client: the
        bench creates the requests, all the rest is the operator), and `webhook NAME`.
        """
        assert self.cp is not None
        text = self.cp.kubectl("get", "--raw", "/metrics").stdout
        counts: Counter[str] = Counter()
        for line in text.splitlines():
            if line.startswith("apiserver_request_total{"):
                labels = dict(_LABEL.findall(line))
                if labels.get("group") == GROUP or labels.get("resource") == "events":
                    sub = f"/{labels['subresource']}" if labels.get("subresource") else ""
                    counts[f"{labels.get('verb')} {labels.get('resource')}{sub}"] += int(float(line.rsplit(" ", 1)[1]))
            elif line.startswith("apiserver_admission_webhook_admission_duration_seconds_count{"):
                labels = dict(_LABEL.findall(line))
                counts[f"webhook {labels.get('name', '').removesuffix('.jitaccess.dev')}"] += int(
                    float(line.rsplit(" ", 1)[1])
                )
        return counts

    def ic_calls(self) -> dict[str, int]:
        """Identity Center calls served so far, by operation (from the emulator's HTTP layer)."""
        assert self.ic is not None
        return dict(self.ic.faults.calls)


def cpu_seconds() -> dict[int, tuple[str, float]]:
    """CPU time (user + system) of this process and of its children: pid -> (what, seconds).

    This process holds the emulator and the bench's own clients; its children are etcd, the
    kube-apiserver and the operator.
    """
    tick = os.sysconf("SC_CLK_TCK")
    me = os.getpid()
    found: dict[int, tuple[str, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = (entry / "stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            pid, ppid = int(entry.name), int(fields[1])
            if pid != me and ppid != me:
                continue
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            words = [a.decode(errors="replace") for a in argv if a]
            if pid == me:
                what = "bench+emulator"
            elif "jitaccess" in words:
                what = "operator"
            elif "kube-apiserver" in words:
                what = "kube-apiserver"
            elif "etcd" in words:
                what = "etcd"
            else:
                what = Path(words[0]).name if words else "?"
            found[pid] = (what, (int(fields[11]) + int(fields[12])) / tick)
    return found


def cpu_used(before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]]) -> dict[str, float]:
    """CPU seconds each part used between two `cpu_seconds` snapshots."""
    used: dict[str, float] = {}
    for pid, (what, seconds) in after.items():
        spent = seconds - before.get(pid, (what, 0.0))[1]
        used[what] = round(used.get(what, 0.0) + spent, 1)
    return used


def machine() -> dict[str, Any]:
    meminfo = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines() if ":" in line)
    model = ""
    with contextlib.suppress(OSError):
        model = next(
            (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
             if line.startswith("model name")),
            "",
        )  # fmt: skip
    return {
        "cores": os.cpu_count(),
        "cpu": model,
        "memory_gb": round(int(meminfo["MemTotal"].split()[0]) / 1024 / 1024, 1),
    }

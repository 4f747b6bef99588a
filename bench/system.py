"""The system under test, as `make dev` runs it: control plane, Identity Center emulator, operator.

Differences from `make dev`, all for measuring:

- no controller-manager (nothing here needs garbage collection);
- thousands of bench users (`bench-00001@example.com`, ...) are seeded into the emulator in bulk,
  each eligible for `prod-eng-payments` (in `prod-eligible` and `pci-secure-code-trained`);
  they are no Kubernetes users: requests are created by the admin *as* them, with impersonation
  headers (`Impersonate-User`, `Impersonate-Group: team-payments`), which the admission webhooks see
  as that user in the payments team, so each request is auto-approved;
- the bench users may create requests through a ClusterRoleBinding of the `jitaccess-dev-requester`
  role (examples/rbac.yaml) to the group `team-payments`;
- every membership change in the emulator is logged as it happens (`bench.membership`);
- the operator authenticates as a chart-installed one does, with a token of a ServiceAccount (the
  dev-only `jitaccess-dev/jitaccess-dev`, bound to the operator's ClusterRole by examples/rbac.yaml), not as the
  admin that `make dev` runs it as; the admin, which writes the objects of the scenarios that begin
  with thousands "as the operator leaves them", is trusted as the operator too
  (`JITACCESS_OPERATOR_USERNAMES`);
- the operator runs with `JITACCESS_MIN_DURATION_SECONDS=1` and each scenario's rate limit, and is
  restarted (and the cluster emptied) between scenarios by `reset`.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import re
import time
from collections import Counter
from pathlib import Path
from typing import Any

import kubernetes
from kubernetes.client.exceptions import ApiException

from bench import procstats
from bench.membership import MembershipLog
from bench.watcher import GROUP, VERSION, GrantWatcher
from devenv.controlplane import ControlPlane
from devenv.emulator import IdentityCenterEmulator
from devenv.operator_process import OperatorProcess
from devenv.paths import EXAMPLES, SEED_FILE
from jitaccess.api import names
from tests.support.harness import REQUESTER_ROLE, WEBHOOK_CONFIGURATION, install

log = logging.getLogger(__name__)
ENTITLEMENT = "prod-eng-payments"
TARGET_GROUP = "prod-eng-payments"
TEAM_GROUP = "team-payments"
ELIGIBILITY_GROUPS = ("prod-eligible", "pci-secure-code-trained")
GRANTED_GROUPS = (TARGET_GROUP, "prod-eng-ledger")  # the example Entitlements' groups
REASON = "BENCH-1 benchmark"
ADMIN_USERNAME = "admin"  # the common name of the control plane's admin certificate (devenv.pki)
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

    def __init__(self, workdir: Path, users: int, *, profiling: bool = False) -> None:
        self.workdir = workdir
        self.profiling = profiling
        self.user_count = users
        self.cp: ControlPlane | None = None
        self.ic: IdentityCenterEmulator | None = None
        self.operator: OperatorProcess | None = None
        self.user_ids: dict[str, str] = {}
        self.group_ids: dict[str, str] = {}
        self._operators = 0
        self._operator_kubeconfig: Path | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> System:
        began = time.monotonic()
        self.cp = ControlPlane(profiling=self.profiling).start(controller_manager=False)
        self.ic = IdentityCenterEmulator().start()
        self.ic.seed(SEED_FILE)
        self._add_users()
        install(self.cp)
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
        """Bench users and their eligibility, seeded in bulk (the API would take minutes for thousands);
        membership changes are logged from then on."""
        assert self.ic is not None
        users = [user_name(index) for index in range(1, self.user_count + 1)]
        self.user_ids = self.ic.seed_users(users)
        for group in ELIGIBILITY_GROUPS:
            self.ic.add_members(group, users)
        self.group_ids = {group: self.ic.group_id(group) for group in (*GRANTED_GROUPS, *ELIGIBILITY_GROUPS)}
        self.memberships = MembershipLog()
        self.ic.watch_memberships(self.memberships)

    # --- the operator ------------------------------------------------------------------------

    def operator_kubeconfig(self) -> Path:
        """The operator's credentials, as a chart-installed operator has them (`operator_kubeconfig`
        of the control plane): the API server authorizes each of its requests by RBAC, and verifies no
        client certificate per request (7-8 % of the API server's CPU in a burst when the operator
        used the admin's certificate)."""
        assert self.cp is not None
        if self._operator_kubeconfig is None:
            self._operator_kubeconfig = self.cp.operator_kubeconfig(self.workdir / "operator-identity")
        return self._operator_kubeconfig

    def operator_env(self) -> dict[str, str]:
        """What every operator of the bench is started with: the admin, who writes objects "as the
        operator leaves them" for the scenarios that begin with thousands (`seed_active`), is trusted
        by the webhooks as the operator too, as a local run trusts it."""
        return {"JITACCESS_OPERATOR_USERNAMES": ADMIN_USERNAME, "JITACCESS_MIN_DURATION_SECONDS": "1"}

    def start_operator(self, rate_limit: float, *, wait_resolved: bool = True, **env: str) -> OperatorProcess:
        assert self.cp is not None and self.ic is not None
        self._operators += 1
        self.operator = OperatorProcess(
            self.operator_kubeconfig(),
            self.ic.env(),
            self.workdir / f"operator-{self._operators}.log",
            extra_env={**self.operator_env(), "JITACCESS_RATE_LIMIT": str(rate_limit), **env},
        )
        self.operator.start(timeout=120)
        if self.operator.webhook_port:
            self.wait_admission()
        if wait_resolved:
            self.wait_entitlement_resolved()
        return self.operator

    def wait_admission(self, timeout: float = 60) -> None:
        """Until the API server calls the new operator's webhooks, tried with a server-side dry run
        of a request as a bench user (its answer, admitted or refused, is the webhooks').

        The operator is ready once the stored webhook configurations name it; the API server acts
        on its own watched copy of them, which can lag behind. One scenario of a full run had its
        first request refused with "connection refused" on the webhook port right after a ready
        operator started: such an error is now logged with the address the API server called, and
        waited out."""
        deadline, last = time.monotonic() + timeout, ""
        while True:
            try:
                self.custom.create_cluster_custom_object(
                    GROUP, VERSION, "accessrequests", self.request_body("admission-check", "1h"), dry_run="All",
                    _headers={"Impersonate-User": user_name(1), "Impersonate-Group": TEAM_GROUP},
                )  # fmt: skip
                return
            except ApiException as exc:
                error = str(exc.body)
                if "failed calling webhook" not in error:
                    return  # refused by the webhooks themselves: they answer
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the API server did not reach the operator's webhooks: {error}") from exc
                if error != last:
                    log.warning("the API server cannot reach the operator's webhooks yet: %s", error)
                    last = error
            time.sleep(0.1)

    def wait_entitlement_resolved(self, timeout: float = 60, entitlement: str = ENTITLEMENT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            obj: Any = self.custom.get_cluster_custom_object(GROUP, VERSION, "entitlements", entitlement)
            conditions = (obj.get("status") or {}).get("conditions") or []
            if any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions):
                return
            time.sleep(0.1)
        raise TimeoutError(f"Entitlement {entitlement} not Ready within {timeout}s")

    def wait_first_recheck(self, timeout: float = 120, quiet: float = 1.5) -> float:
        """Until the operator's first eligibility re-check pass is over: it lists every user of the
        store (`ListUsers`, 100 a page: ~100 pages for the bench's 10,100 users) as it starts, and
        once every `JITACCESS_ELIGIBILITY_RECHECK_SECONDS` after. Done when users were listed and
        no listing call came for `quiet` seconds. Returns how long it took."""
        began = time.monotonic()
        deadline, seen, since = began + timeout, -1, began
        while time.monotonic() < deadline:
            calls = self.ic_calls()
            listed = calls.get("ListUsers", 0) + calls.get("ListGroupMemberships", 0)
            if listed != seen:
                seen, since = listed, time.monotonic()
            elif calls.get("ListUsers", 0) and time.monotonic() - since >= quiet:
                return round(time.monotonic() - began, 2)
            time.sleep(0.1)
        raise TimeoutError(f"the operator's first eligibility re-check did not finish within {timeout}s")

    def rss_mb(self) -> tuple[float, float]:
        """The operator's resident memory now and at its peak (VmRSS, VmHWM), in MiB."""
        assert self.operator is not None and self.operator.pid is not None
        return procstats.rss_mb(self.operator.pid)

    # --- objects -----------------------------------------------------------------------------

    def request_body(self, name: str, duration: str, entitlement: str = ENTITLEMENT) -> dict[str, Any]:
        return {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "AccessRequest",
            "metadata": {"name": name},
            "spec": {"entitlement": entitlement, "reason": REASON, "duration": duration},
        }

    def create_request(self, name: str, user: str, duration: str, entitlement: str = ENTITLEMENT) -> None:
        """Create an AccessRequest as `user` of the payments team (auto-approved for payments'
        entitlement; another team's waits for that team's approvers)."""
        self.custom.create_cluster_custom_object(
            GROUP,
            VERSION,
            "accessrequests",
            self.request_body(name, duration, entitlement),
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
        """Active grants for (name, user, duration) items, as the operator leaves them, in a fraction
        of the time creating thousands through it would take; the seconds it took.

        Requests and grants are written with the status the operator gives them (and the grant with
        the operator's finalizer, which it sets in its creating write too), the memberships seeded
        in the emulator. kopf's own bookkeeping (`status.kopf`) is left to kopf: an operator is run
        once over the objects, finds each Active (its create handlers change nothing, and call
        Identity Center not at all) and records them as handled, and is stopped. An operator
        started afterwards finds them as after a restart: resume handlers, each scheduled for expiry.
        """
        assert self.operator is None and self.ic is not None
        group_id = self.group_ids[TARGET_GROUP]
        membership_ids = self.ic.add_members(TARGET_GROUP, [user for _, user, _ in items])

        def one(name: str, user: str, duration: str) -> None:
            # With the requester the stamp webhook writes (no operator serves it while they are seeded).
            body = self.request_body(name, duration)
            body["spec"]["requester"] = user
            self.custom.create_cluster_custom_object(
                GROUP, VERSION, "accessrequests", body,
                _headers={"Impersonate-User": user, "Impersonate-Group": TEAM_GROUP},
            )  # fmt: skip
            self.custom.create_cluster_custom_object(
                GROUP, VERSION, "accessgrants",
                {
                    "apiVersion": f"{GROUP}/{VERSION}", "kind": "AccessGrant",
                    "metadata": {"name": name, "finalizers": [names.FINALIZER]},
                    "spec": {"user": user, "entitlement": ENTITLEMENT, "groupName": TARGET_GROUP, "request": name,
                             "duration": duration},
                },
            )  # fmt: skip
            start = time.time()
            end = start + _seconds(duration)
            ready = {"type": "Ready", "status": "True", "lastTransitionTime": _ts(start)}
            self.custom.patch_cluster_custom_object_status(
                GROUP, VERSION, "accessgrants", name,
                {"status": {"userId": self.user_ids[user], "groupId": group_id, "membershipId": membership_ids[user],
                            "activationTime": _ts(start), "expirationTime": _ts(end),
                            "conditions": [{**ready, "reason": "Active", "message": f"until {_ts(end)}"}]}},
            )  # fmt: skip
            self.custom.patch_cluster_custom_object_status(
                GROUP, VERSION, "accessrequests", name,
                {"status": {"requester": user, "grant": name, "duration": duration, "expirationTime": _ts(end),
                            "conditions": [{**ready, "type": "Approved", "reason": "AutoApproved"},
                                           {**ready, "reason": "Granted", "message": f"until {_ts(end)}"}]}},
            )  # fmt: skip

        began = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(threads) as pool:
            for future in [pool.submit(one, *item) for item in items]:
                future.result()
        self.start_operator(0.0, wait_resolved=False)
        self.wait_operator_idle()
        self._stop_operator()
        return time.monotonic() - began

    def wait_operator_idle(self, timeout: float = 600, below: float = 0.05) -> float:
        """Until the operator uses under `below` of a core over two seconds; the seconds it took."""
        assert self.operator is not None and self.operator.pid is not None
        pid, began = self.operator.pid, time.monotonic()
        last = procstats.cpu_time(pid)
        while time.monotonic() - began < timeout:
            time.sleep(2)
            now = procstats.cpu_time(pid)
            if now - last < 2 * below:
                return time.monotonic() - began
            last = now
        raise TimeoutError(f"the operator was still busy after {timeout} s")

    def membership_key(self, user: str) -> tuple[str, str]:
        return self.group_ids[TARGET_GROUP], self.user_ids[user]

    # --- between scenarios ------------------------------------------------------------------

    def reset(self) -> None:
        """Stop the operator and empty the cluster and the granted groups, without revoking one by one."""
        self._stop_operator()
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
        assert self.ic is not None
        for group in GRANTED_GROUPS:
            self.ic.empty_group(group)
        self.memberships.forget()
        self.watcher.forget()
        self.ic.faults.clear()

    def _stop_operator(self) -> None:
        """Stop the operator, and its webhooks with it: a failurePolicy=Fail webhook pointing at a
        dead port would refuse every later write."""
        if self.operator is not None:
            self.operator.stop()
            self.operator = None
        admission = kubernetes.client.AdmissionregistrationV1Api(self.api)
        with contextlib.suppress(ApiException):
            admission.delete_validating_webhook_configuration(WEBHOOK_CONFIGURATION)
        with contextlib.suppress(ApiException):
            admission.delete_mutating_webhook_configuration(WEBHOOK_CONFIGURATION)

    def _drop_finalizers(self, plural: str, name: str) -> None:
        with contextlib.suppress(ApiException):
            self.custom.patch_cluster_custom_object(GROUP, VERSION, plural, name, {"metadata": {"finalizers": None}})

    def api_calls(self) -> Counter[str]:
        """Requests the API server has served, and webhook calls it made, from its /metrics.

        Keys: `VERB resource[/subresource]` for the jitaccess kinds and Events (every client: the
        bench creates the requests, all the rest is the operator), and `webhook NAME`.
        """
        totals = self._api_metrics(
            "apiserver_request_total", "apiserver_admission_webhook_admission_duration_seconds_count"
        )
        return Counter({key: int(value) for key, value in totals.items()})

    def api_seconds(self) -> dict[str, float]:
        """Seconds the API server has spent serving each kind of `api_calls`, and in each webhook
        call, by its own clock (the `_sum` of the duration histograms beside those counts)."""
        return self._api_metrics(
            "apiserver_request_duration_seconds_sum", "apiserver_admission_webhook_admission_duration_seconds_sum"
        )

    def _api_metrics(self, requests: str, webhooks: str) -> dict[str, float]:
        """The API server's series `requests` (by verb and resource) and `webhooks` (by webhook),
        summed under the keys of `api_calls`."""
        assert self.cp is not None
        text = self.cp.kubectl("get", "--raw", "/metrics").stdout
        totals: dict[str, float] = {}
        for line in text.splitlines():
            series = line.partition("{")[0]
            if series not in (requests, webhooks):
                continue
            labels = dict(_LABEL.findall(line))
            if series == webhooks:
                key = f"webhook {labels.get('name', '').removesuffix('.jitaccess.dev')}"
            elif labels.get("group") == GROUP or labels.get("resource") == "events":
                sub = f"/{labels['subresource']}" if labels.get("subresource") else ""
                key = f"{labels.get('verb')} {labels.get('resource')}{sub}"
            else:
                continue
            totals[key] = totals.get(key, 0.0) + float(line.rsplit(" ", 1)[1])
        return totals

    def ic_calls(self) -> dict[str, int]:
        """Identity Center calls served so far, by operation (from the emulator's HTTP layer)."""
        assert self.ic is not None
        return dict(self.ic.faults.calls)

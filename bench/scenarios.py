"""The measurements, one function each; each returns a dict for `bench/results/latest.json`.

Every scenario starts from an empty cluster (`System.reset`) and its own operator process. Times
come from two exact sources: the emulator's membership log (when a membership appeared or went)
and the grant watch (when a grant was first seen with a `Ready` reason). A grant counts as
delivered when *both* the membership exists and the grant says `Ready=True` (`Active`).
"""

from __future__ import annotations

import datetime as dt
import logging
import statistics
import threading
import time
from collections import Counter
from concurrent.futures import Future
from typing import Any

from bench.procstats import cpu_ms_per, cpu_seconds
from bench.system import ENTITLEMENT, GROUP, TARGET_GROUP, VERSION, System, user_name
from devenv.replicas import Replicas
from jitaccess.adapters.archive import Archive
from jitaccess.api import audit, names

log = logging.getLogger(__name__)
DEFAULT_RATE_LIMIT = 20.0  # the adapter's default: the AWS Identity Store quota, per API
UNLIMITED_RATE = 0.0


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(p / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def summary(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "min": round(min(values), 4),
        "p50": round(percentile(values, 50), 4),
        "p90": round(percentile(values, 90), 4),
        "p99": round(percentile(values, 99), 4),
        "max": round(max(values), 4),
        "mean": round(statistics.fmean(values), 4),
    }


def api_calls_since(system: System, before: Counter[str], grants: int) -> dict[str, float]:
    """API server requests and webhook calls per grant since `before` (watches and lists left out)."""
    after = system.api_calls()
    after.subtract(before)
    per_grant = {
        k: round(v / grants, 2) for k, v in sorted(after.items()) if v > 0 and k.split()[0] not in ("WATCH", "LIST")
    }
    per_grant["total requests"] = round(sum(v for k, v in per_grant.items() if not k.startswith("webhook")), 2)
    per_grant["total webhook calls"] = round(sum(v for k, v in per_grant.items() if k.startswith("webhook")), 2)
    return per_grant


def api_ms_since(system: System, before: Counter[str], seconds_before: dict[str, float]) -> dict[str, float]:
    """The API server's mean time per request and per webhook call since `before` / `seconds_before`
    (its own clock, in ms; a create's time includes its webhook calls), watches and lists left out."""
    calls, seconds = system.api_calls(), system.api_seconds()
    calls.subtract(before)
    return {
        k: round(1000 * (seconds[k] - seconds_before.get(k, 0.0)) / n, 2)
        for k, n in sorted(calls.items())
        if n > 0 and k in seconds and k.split()[0] not in ("WATCH", "LIST")
    }


def calls_since(system: System, before: dict[str, int], grants: int) -> dict[str, float]:
    """Identity Center calls per grant since `before`, by operation."""
    after = Counter(system.ic_calls())
    after.subtract(before)
    return {op: round(count / grants, 2) for op, count in sorted(after.items()) if count > 0}


def _delivered(system: System, names: list[str], users: list[str], timeout: float) -> dict[str, float]:
    """name -> when it was delivered: membership present and grant Active, whichever came last."""
    active = system.watcher.wait(names, {"Active"}, timeout)
    keys = {system.membership_key(u) for u in users}
    if not system.memberships.wait(system.memberships.added, keys, timeout):
        raise TimeoutError("grants went Active without their Identity Center membership")
    added = system.memberships.added
    return {n: max(active[n], added[system.membership_key(u)]) for n, u in zip(names, users, strict=True)}


def _expired(system: System, names: list[str], users: list[str], timeout: float) -> tuple[list[float], list[float]]:
    """For grants that are to expire: (membership removed - expirationTime, Expired seen - expirationTime)."""
    seen = system.watcher.wait(names, {"Expired"}, timeout)
    keys = {system.membership_key(u) for u in users}
    if not system.memberships.wait(system.memberships.removed, keys, timeout):
        raise TimeoutError("grants went Expired but their Identity Center membership stayed")
    removed, status = [], []
    for name, user in zip(names, users, strict=True):
        expiration = system.watcher.grants[name].expiration
        assert expiration is not None, f"{name} expired without an expirationTime"
        removed.append(system.memberships.removed[system.membership_key(user)] - expiration)
        status.append(seen[name] - expiration)
    return removed, status


def _paced(system: System, items: list[tuple[str, str, str]], per_second: float) -> threading.Thread:
    """Create requests at a steady pace in the background (a trickle, not a burst)."""

    def run() -> None:
        began = time.monotonic()
        for index, item in enumerate(items):
            delay = began + index / per_second - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            system.create_request(*item)

    thread = threading.Thread(target=run, name="paced-requests", daemon=True)
    thread.start()
    return thread


# --- the floor: the same work with no operator ------------------------------------------------


def floor_latency(system: System, count: int) -> dict[str, Any]:
    """One client does what a grant takes, directly, one request after another.

    Per request: create the AccessRequest; resolve the user and check eligibility in Identity
    Center (the group ids resolved once, as the operator caches them); create the AccessGrant;
    create the membership; write the grant's status (Active) and the request's (Granted). No
    operator runs, so no admission webhooks either.
    """
    assert system.ic is not None and system.operator is None
    ic, store = system.ic.client(), system.ic.identity_store_id
    custom = system.custom
    group_id = system.group_ids[TARGET_GROUP]
    eligible = [system.group_ids[g] for g in ("prod-eligible", "pci-secure-code-trained")]
    names, users, began = [], [], {}
    api_before, api_seconds_before = system.api_calls(), system.api_seconds()
    for index in range(1, count + 1):
        name, user = f"floor-{index:05d}", user_name(index)
        names.append(name)
        users.append(user)
        began[name] = time.time()
        custom.create_cluster_custom_object(GROUP, VERSION, "accessrequests", system.request_body(name, "1h"))
        user_id = ic.get_user_id(
            IdentityStoreId=store,
            AlternateIdentifier={"UniqueAttribute": {"AttributePath": "userName", "AttributeValue": user}},
        )["UserId"]
        results = ic.is_member_in_groups(IdentityStoreId=store, MemberId={"UserId": user_id}, GroupIds=eligible)
        assert all(r["MembershipExists"] for r in results["Results"])
        grant = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "AccessGrant",
            "metadata": {"name": name},
            "spec": {"user": user, "entitlement": ENTITLEMENT, "groupName": TARGET_GROUP, "request": name,
                     "duration": "1h"},
        }  # fmt: skip
        custom.create_cluster_custom_object(GROUP, VERSION, "accessgrants", grant)
        membership = ic.create_group_membership(IdentityStoreId=store, GroupId=group_id, MemberId={"UserId": user_id})
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        start, end = now.strftime("%Y-%m-%dT%H:%M:%SZ"), (now + dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        ready = {"type": "Ready", "status": "True", "lastTransitionTime": start}
        custom.patch_cluster_custom_object_status(
            GROUP, VERSION, "accessgrants", name,
            {"status": {"userId": user_id, "groupId": group_id, "membershipId": membership["MembershipId"],
                        "activationTime": start, "expirationTime": end,
                        "conditions": [{**ready, "reason": "Active", "message": f"until {end}"}]}},
        )  # fmt: skip
        custom.patch_cluster_custom_object_status(
            GROUP, VERSION, "accessrequests", name,
            {"status": {"requester": user, "grant": name, "expirationTime": end,
                        "conditions": [{**ready, "type": "Approved", "reason": "AutoApproved"},
                                       {**ready, "reason": "Granted", "message": f"until {end}"}]}},
        )  # fmt: skip
        system.watcher.wait([name], {"Active"}, 30)
    delivered = _delivered(system, names, users, 30)
    latencies = [delivered[n] - began[n] for n in names]
    return {
        "floor_latency": summary(latencies),
        "api_ms_per_call": api_ms_since(system, api_before, api_seconds_before),
    }


# --- the operator ------------------------------------------------------------------------------


def grant_latency(system: System, count: int, settle: float = 0.1) -> dict[str, Any]:
    """Auto-approved requests, one after another: created -> membership present and grant Active.

    Twice: back to back (each created as soon as the previous one was delivered, `grant_latency`),
    then settled (each `settle` seconds after, `grant_latency_settled`). Back to back, each request
    meets the operator still finishing the previous grant: the request's `Granted` write, the Events
    and the watch events those writes cause, all after delivery; settled, it meets an idle operator,
    as a person's request mostly does.

    Measured once the operator's start-up work is over: its first eligibility re-check lists the
    store's 10,100 users and the eligibility groups' members (about 100 and 200 pages, side by side,
    about 16 s, and the CPU to parse them), which would otherwise be under the first samples; a
    pass comes every 5 minutes in a running operator."""
    recheck_s = system.wait_first_recheck()
    result: dict[str, Any] = {"first_recheck_waited_s": recheck_s, "settle_s": settle}
    for key, first, pause in (("", 1, 0.0), ("_settled", count + 1, settle)):
        before, api_before, api_seconds_before = system.ic_calls(), system.api_calls(), system.api_seconds()
        latencies = []
        for index in range(first, first + count):
            name, user = f"latency-{index:05d}", user_name(index)
            began = time.time()
            system.create_request(name, user, "1h")
            latencies.append(_delivered(system, [name], [user], 30)[name] - began)
            time.sleep(pause)
        result[f"grant_latency{key}"] = summary(latencies)
        result[f"api_ms_per_call{key}"] = api_ms_since(system, api_before, api_seconds_before)
        if not key:
            result["ic_calls_per_grant"] = calls_since(system, before, count)
            result["api_calls_per_grant"] = api_calls_since(system, api_before, count)
    return result


def expiry_lag(system: System, count: int, seconds: int = 5, per_second: float = 10.0) -> dict[str, Any]:
    """Grants of a few seconds, requested at a steady pace: membership removed - expirationTime."""
    items = [(f"expiry-{i:05d}", user_name(i), f"{seconds}s") for i in range(1, count + 1)]
    _paced(system, items, per_second).join()
    names, users = [n for n, _, _ in items], [u for _, u, _ in items]
    removed, status = _expired(system, names, users, timeout=60 + count / per_second)
    return {"expiry_lag": summary(removed), "expiry_status_lag": summary(status), "grant_seconds": seconds,
            "requests_per_s": per_second}  # fmt: skip


def throughput(system: System, count: int, rate_limit: float) -> dict[str, Any]:
    """`count` requests created at once (16 client threads), until every grant is Active.

    Once the operator's start-up re-check is over, as for `grant_latency`: overlapping it, the
    burst shared the CPU with its listings, which also slowed the requests' creation to the pace
    the operator could keep; after it, the requests come faster than it grants them, and a queue
    forms (which once cost each grant more calls: `Runtime.run_granting`)."""
    recheck_s = system.wait_first_recheck()
    before, api_before = system.ic_calls(), system.api_calls()
    items = [(f"burst-{i:05d}", user_name(i), "1h") for i in range(1, count + 1)]
    cpu_before = cpu_seconds()
    names, users = [n for n, _, _ in items], [u for _, u, _ in items]
    began = time.time()
    creating = system.create_requests(items)
    delivered = _delivered(system, names, users, timeout=120 + count / 2)
    elapsed = max(delivered.values()) - began
    cpu = cpu_ms_per(cpu_before, cpu_seconds(), count)
    rss, _ = system.rss_mb()
    writes = sorted(system.memberships.added[system.membership_key(u)] for u in users)
    write_rate = (len(writes) - 1) / (writes[-1] - writes[0]) if writes[-1] > writes[0] else float("inf")
    result: dict[str, Any] = {
        "grants": count,
        "rate_limit": rate_limit,
        "seconds": round(elapsed, 2),
        "grants_per_s": round(count / elapsed, 2),
        "create_seconds": round(creating, 2),
        "first_recheck_waited_s": recheck_s,
        "operator_rss_mb": round(rss, 1),
        "membership_writes_per_s": round(write_rate, 2),
        "latency": summary([delivered[n] - began for n in names]),
        "ic_calls_per_grant": calls_since(system, before, count),
        "api_calls_per_grant": api_calls_since(system, api_before, count),
        # From the first request's creation until the last grant was delivered: the burst alone.
        "cpu_ms_per_grant": cpu,
    }
    if rate_limit:
        result["quota_fraction_used"] = round(write_rate / rate_limit, 3)
    return result


def restart_recovery(system: System, total: int, overdue: int, short_seconds: int = 45) -> dict[str, Any]:
    """SIGKILL the operator holding `total` Active grants; `overdue` of them expire while it is down.

    The grants are set up by an unlimited operator (for speed); the one that recovers runs with the
    default 20/s rate limit, as in production. Measured from the restart (process spawn) until every
    overdue grant's membership is gone and the grant says Expired.
    """
    long_items = [(f"recover-{i:05d}", user_name(i), "1h") for i in range(1, total - overdue + 1)]
    short_items = [
        (f"recover-{i:05d}", user_name(i), f"{short_seconds}s") for i in range(total - overdue + 1, total + 1)
    ]
    system.create_requests(long_items)
    _delivered(system, [n for n, _, _ in long_items], [u for _, u, _ in long_items], 120 + total)
    system.create_requests(short_items)
    short_names, short_users = [n for n, _, _ in short_items], [u for _, u, _ in short_items]
    _delivered(system, short_names, short_users, 120)
    assert system.operator is not None
    system.operator.kill()
    killed = time.time()
    latest = max(system.watcher.grants[n].expiration or 0 for n in short_names)
    time.sleep(max(0.0, latest + 1.0 - time.time()))
    assert not system.memberships.removed, "a membership went while the operator was down"
    down = time.time() - killed
    restarted = time.time()
    system.start_operator(DEFAULT_RATE_LIMIT)
    ready = time.time() - restarted
    if not system.memberships.wait(system.memberships.removed, {system.membership_key(u) for u in short_users}, 120):
        raise TimeoutError("overdue memberships were not removed within 120 s of the restart")
    expired = system.watcher.wait(short_names, {"Expired"}, 120)
    done = [max(system.memberships.removed[system.membership_key(u)], expired[n])
            for n, u in zip(short_names, short_users, strict=True)]  # fmt: skip
    short_keys = {system.membership_key(u) for u in short_users}
    wrongly = len(set(system.memberships.removed) - short_keys)
    return {
        "active_grants": total,
        "overdue": overdue,
        "operator_down_s": round(down, 2),
        "recovery_s": round(max(done) - restarted, 2),
        "first_revocation_s": round(min(done) - restarted, 2),
        "operator_ready_s": round(ready, 2),
        "memberships_wrongly_removed": wrongly,
    }


def scale(system: System, count: int, probes: int, seconds: int = 5) -> dict[str, Any]:
    """An operator holding `count` Active grants: its memory, and the expiry lag of short grants beside them.

    The grants are written straight into the cluster (`System.seed_active`) and adopted by an
    operator started afterwards, as after a restart; creating them through it takes about
    `count / throughput` seconds (see the throughput scenario, which also reads the memory at its size).
    """
    # The same operator holding nothing: what the grants add to it (`kb_per_grant`).
    system.start_operator(0.0)
    system.wait_operator_idle()
    idle_rss, _ = system.rss_mb()
    system.reset()
    items = [(f"scale-{i:05d}", user_name(i), "1h") for i in range(1, count + 1)]
    seeding = system.seed_active(items)
    began = time.monotonic()
    system.start_operator(0.0, wait_resolved=False)
    ready = time.monotonic() - began
    settled = system.wait_operator_idle() + ready
    system.wait_entitlement_resolved()
    rss, peak = system.rss_mb()
    probe_items = [(f"probe-{i:05d}", user_name(i), f"{seconds}s") for i in range(count + 1, count + probes + 1)]
    _paced(system, probe_items, 10.0).join()
    removed, status = _expired(system, [n for n, _, _ in probe_items], [u for _, u, _ in probe_items],
                               timeout=60 + probes / 10)  # fmt: skip
    rss_after, peak_after = system.rss_mb()
    assert system.ic is not None
    lost = count - len(system.ic.members_of(TARGET_GROUP) & {u for _, u, _ in items})
    lookups = _lookups(system, user_name(1))
    return {
        "grants": count,
        "seed_seconds": round(seeding, 1),
        "operator_ready_s": round(ready, 1),
        "adopted_s": round(settled, 1),
        "rss_mb": round(rss, 1),
        "idle_rss_mb": round(idle_rss, 1),
        "kb_per_grant": round((rss - idle_rss) * 1024 / count, 1),
        "peak_rss_mb": round(max(peak, peak_after), 1),
        "rss_mb_after_probes": round(rss_after, 1),
        "memberships_lost": lost,
        "expiry_lag": summary(removed),
        "expiry_status_lag": summary(status),
        "lookup_one_users_requests_s": lookups,
    }


def _lookups(system: System, user: str, runs: int = 5) -> dict[str, float]:
    """What reading one user's requests costs among all those kept, as the webhooks (a break-glass
    request's count, an extension's caps) and `kubectl jit list --mine` read them: the median of
    `runs` listings of every request, and of those the API server selects by `spec.requester`."""

    def timed(**query: str) -> float:
        times = []
        for _ in range(runs):
            began = time.monotonic()
            answer = system.custom.list_cluster_custom_object(names.GROUP, names.VERSION, names.REQUESTS, **query)
            times.append(time.monotonic() - began)
            assert answer["items"], query
        return round(statistics.median(times), 4)

    return {"every_request": timed(), "selected_by_field": timed(field_selector=f"spec.requester={user}")}


def audit_archive(system: System, count: int) -> dict[str, Any]:
    """The rate the audit archive sustains: `count` auto-approved requests are granted while S3
    refuses every write, so that their records (requested, approved, granted: 3 each) pile up; then
    S3 answers again, and the time until every record is in the bucket and listed in its object's
    status (one status write per object, through the webhooks, as in production) gives records/s."""
    assert system.ic is not None and system.operator is None
    bucket = system.ic.create_bucket(f"bench-audit-{time.time_ns()}")
    system.ic.faults.flaky("PutObject", 1.0)
    system.start_operator(
        UNLIMITED_RATE, JITACCESS_AUDIT_BUCKET=bucket, JITACCESS_AUDIT_ENDPOINT_URL=system.ic.endpoint_url
    )
    items = [(f"audit-{i:05d}", user_name(i), "1h") for i in range(1, count + 1)]
    granted, users = [n for n, _, _ in items], [u for _, u, _ in items]
    system.create_requests(items)
    _delivered(system, granted, users, timeout=120 + count / 2)
    objects = _all_objects(system)
    records = sum(len(audit.records_of(o)) for o in objects)
    began = time.monotonic()
    system.ic.faults.clear()
    while any(audit.unarchived(o) for o in objects):
        if time.monotonic() - began > 300:
            raise TimeoutError("the audit archive did not catch up within 300 s")
        time.sleep(0.2)
        objects = _all_objects(system)
    seconds = time.monotonic() - began
    now = dt.datetime.now(dt.UTC)
    archived = Archive(system.ic.client("s3"), bucket, "jitaccess")
    keys = archived.keys_written(now - dt.timedelta(hours=1), now + dt.timedelta(minutes=1))
    in_bucket = sum(len(audit.ids_in(archived.get(k))[0]) for k in keys)
    # The archiver was backing off when S3 came back: the rate counts from its first batch that
    # landed (S3's LastModified; a key's own time is its first, failed, try).
    listing = system.ic.client("s3").list_objects_v2(Bucket=bucket)
    first = min((item["LastModified"] for item in listing.get("Contents", [])), default=now)
    working = (now - first).total_seconds()
    return {
        "records": records,
        "objects": len(objects),
        "records_in_bucket": in_bucket,
        "batches": len(keys),
        "seconds_after_s3_back": round(seconds, 2),
        "seconds_from_first_batch": round(working, 2),
        "records_per_s": round(records / working, 1) if working > 0 else None,
    }


def _all_objects(system: System) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for plural, kind in (("accessrequests", names.ACCESS_REQUEST), ("accessgrants", names.ACCESS_GRANT)):
        listing: Any = system.custom.list_cluster_custom_object(GROUP, VERSION, plural)
        found += [{**item, "kind": kind} for item in listing["items"]]
    return found


def failover(system: System, active: int, short_seconds: int = 10) -> dict[str, Any]:
    """Two replicas electing a leader (default timings: a 12 s Lease), holding `active` Active
    grants; the leader is SIGKILLed a second before one more grant expires. Measured: from the kill
    until the standby has revoked that grant (membership gone, grant Expired); and the webhook
    refusals meanwhile, for a request created every 100 ms from the kill until the revocation
    (every replica serves the webhooks: `devenv.replicas`, one port as behind a Service).
    """
    assert system.cp is not None and system.ic is not None
    items = [(f"failover-{i:05d}", user_name(i), "1h") for i in range(1, active + 1)]
    system.seed_active(items)
    workdir = system.workdir / f"failover-{time.time_ns()}"
    workdir.mkdir(parents=True)
    replicas = Replicas(
        2,
        system.operator_kubeconfig(),
        system.ic.env(),
        workdir,
        env={**system.operator_env(), "JITACCESS_RATE_LIMIT": str(DEFAULT_RATE_LIMIT)},
    )
    try:
        replicas.start()
        leaders = _wait_for(replicas.leaders, 30, "a replica leads")
        system.wait_entitlement_resolved()
        probe, probe_user = "failover-probe", user_name(active + 1)
        system.create_request(probe, probe_user, f"{short_seconds}s")
        _delivered(system, [probe], [probe_user], 60)
        expiration = system.watcher.grants[probe].expiration
        assert expiration is not None
        time.sleep(max(0.0, expiration - 1.0 - time.time()))
        replicas[leaders[0]].kill()
        killed = time.time()
        revoked = threading.Event()
        created, refused = _every_100ms(system, active + 2, revoked)
        key = system.membership_key(probe_user)
        if not system.memberships.wait(system.memberships.removed, {key}, 60):
            raise TimeoutError("the standby did not revoke the overdue grant within 60 s of the kill")
        expired = system.watcher.wait([probe], {"Expired"}, 60)[probe]
        revoked.set()
        done = max(system.memberships.removed[key], expired)
        successors = replicas.leaders()
        wrongly = len(set(system.memberships.removed) - {key})
        return {
            "active_grants": active,
            "failover_s": round(done - killed, 2),
            "overdue_by_s": round(done - expiration, 2),
            "new_leader": bool(successors) and successors != leaders,
            "requests_during_failover": created.result(),
            "webhook_refusals": refused.result(),
            "memberships_wrongly_removed": wrongly,
        }
    finally:
        replicas.stop()


def _wait_for(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise TimeoutError(f"not within {timeout}s: {what}")


def _every_100ms(system: System, first_user: int, stop: threading.Event) -> tuple[Future[int], Future[int]]:
    """Create a request every 100 ms (each by a user of its own) until `stop`: (created, refused)."""
    created: Future[int] = Future()
    refused: Future[int] = Future()

    def run() -> None:
        count = failures = 0
        while not stop.is_set():
            began = time.monotonic()
            try:
                system.create_request(f"during-failover-{count:04d}", user_name(first_user + count), "1h")
            except Exception as exc:  # a refusal: what the hand-over must not cause
                failures += 1
                log.warning("request refused during the fail-over: %s", str(exc)[:300])
            count += 1
            time.sleep(max(0.0, 0.1 - (time.monotonic() - began)))
        created.set_result(count)
        refused.set_result(failures)

    threading.Thread(target=run, name="failover-requests", daemon=True).start()
    return created, refused

"""HTTP fault injection for the Identity Center emulator: chosen operations fail or stall.

`FaultInjector` is WSGI middleware around moto's server; an operation is named by the
``X-Amz-Target`` header of the request::

    emulator.faults.fail("CreateGroupMembership", times=2)                # ThrottlingException
    emulator.faults.fail("DeleteGroupMembership", error="InternalServerException")   # HTTP 500
    emulator.faults.fail("CreateGroupMembership", after_apply=True)   # applied, then 500: a "timed out" write
    emulator.faults.delay("ListGroupMemberships", seconds=2.0)
    emulator.faults.calls["CreateGroupMembership"]    # requests seen, failed ones included
    emulator.faults.throttle(["CreateAccountAssignment", ...], rate=20)   # a quota: ThrottlingException beyond 20/s

S3 is a REST API without that header: its operations are named from the method and the path
(`PutObject`, `GetObject`, `ListObjectsV2`, ...; see `s3_operation`), and its errors are answered
in S3's XML. `flaky` makes a share of an operation's calls fail, for as long as it is in place::

    emulator.faults.flaky("PutObject", 0.3, error="InternalError", seed=1)     # 30 % answered 500
    emulator.faults.flaky("PutObject", 0.3, after_apply=True)     # 30 % written, then answered 500
    emulator.faults.flaky("PutObject", 0.15); emulator.faults.flaky("PutObject", 0.18, after_apply=True)  # ~30 %
"""

from __future__ import annotations

import http
import json
import logging
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import parse_qs
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["FaultInjector"]

log = logging.getLogger(__name__)

_DEFAULT_STATUS: Final = {
    "ThrottlingException": 429,
    "AccessDeniedException": 403,
    "InternalServerException": 500,
    "ServiceUnavailableException": 503,
    "InternalError": 500,
    "ServiceUnavailable": 503,
    "SlowDown": 503,
}


@dataclass
class _Fault:
    remaining: int
    error: str | None
    status: int
    delay: float
    after_apply: bool
    #: Each call is affected with this probability (a `flaky` rule, never spent); None: every call.
    probability: float | None = None
    #: The error's `Reason` field (identitystore's conflicts carry one); None: no such field.
    reason: str | None = None


class _Bucket:
    """A token bucket (callers hold the injector's lock)."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.capacity = rate, max(1.0, burst)
        self.tokens, self.stamp = self.capacity, time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class FaultInjector:
    """WSGI middleware that makes chosen operations of one emulator fail or stall.

    Rules for one operation are used in the order they were added; each serves ``times``
    requests and is then spent. A `flaky` rule draws for each call, and lets the call pass on to
    the next rule when it does not fire.  Thread-safe: the server answers requests in threads.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._random = random.Random()
        self._rules: dict[str, list[_Fault]] = {}
        #: Requests seen per operation, failed ones included.
        self.calls: Counter[str] = Counter()
        #: Faults served per operation.
        self.injected: Counter[str] = Counter()
        #: Calls refused by a `throttle` quota, per operation.
        self.throttled: Counter[str] = Counter()
        self._quotas: dict[str, _Bucket] = {}

    def fail(
        self,
        operation: str,
        times: int = 1,
        *,
        error: str = "ThrottlingException",
        status: int | None = None,
        after_apply: bool = False,
        reason: str | None = None,
    ) -> None:
        """Answer the next ``times`` calls of ``operation`` with AWS error code ``error``.

        ``status`` defaults to what AWS sends for that code (429 for throttling, 500 for
        InternalServerException, else 400).  With ``after_apply`` the call is carried out
        first and only its answer is replaced by the error: a write that "timed out" but
        was applied. ``reason`` is sent as the error's ``Reason`` field, as identitystore
        sends one with ``ConflictException`` (``CONCURRENT_MODIFICATION``, ...).
        """
        self._add(
            operation,
            _Fault(times, error, status or _DEFAULT_STATUS.get(error, 400), 0.0, after_apply, reason=reason),
        )

    def flaky(
        self,
        operation: str,
        probability: float,
        *,
        error: str = "InternalError",
        status: int | None = None,
        after_apply: bool = False,
        seed: int | None = None,
    ) -> None:
        """Fail each call of ``operation`` with ``probability``, until `clear`; ``seed`` makes the
        sequence of failures repeatable. ``after_apply`` as in `fail`."""
        if not 0 < probability <= 1:
            raise ValueError("probability must be in (0, 1]")
        with self._lock:
            if seed is not None:
                self._random.seed(seed)
            fault = _Fault(1, error, status or _DEFAULT_STATUS.get(error, 400), 0.0, after_apply, probability)
            self._rules.setdefault(operation, []).append(fault)

    def throttle(self, operations: Iterable[str], rate: float, burst: float | None = None) -> None:
        """A quota shared by ``operations``, as AWS counts one: a token bucket of ``rate`` calls a
        second (``burst`` at once, default ``rate``); a call beyond it is answered
        ``ThrottlingException`` (429), until `clear`. ``throttled`` counts them."""
        bucket = _Bucket(rate, burst if burst is not None else rate)
        with self._lock:
            for operation in operations:
                self._quotas[operation] = bucket

    def delay(self, operation: str, seconds: float, times: int = 1) -> None:
        """Hold the next ``times`` calls of ``operation`` for ``seconds`` before serving them."""
        self._add(operation, _Fault(times, None, 200, seconds, False))

    def clear(self) -> None:
        """Drop every pending rule and reset the counters."""
        with self._lock:
            self._rules.clear()
            self.calls.clear()
            self.injected.clear()
            self.throttled.clear()
            self._quotas.clear()

    def pending(self, operation: str) -> int:
        """How many more calls of ``operation`` the current rules will affect."""
        with self._lock:
            return sum(rule.remaining for rule in self._rules.get(operation, []))

    def _add(self, operation: str, fault: _Fault) -> None:
        if fault.remaining < 1:
            raise ValueError("times must be at least 1")
        with self._lock:
            self._rules.setdefault(operation, []).append(fault)

    def _take(self, operation: str) -> _Fault | None:
        with self._lock:
            self.calls[operation] += 1
            quota = self._quotas.get(operation)
            if quota is not None and not quota.take():
                self.throttled[operation] += 1
                return _Fault(1, "ThrottlingException", 429, 0.0, False)
            rules = self._rules.get(operation)
            if not rules:
                return None
            for rule in rules:
                if rule.probability is not None:
                    # A share of calls: each such rule draws in turn, and stays in place.
                    if self._random.random() >= rule.probability:
                        continue
                else:
                    rule.remaining -= 1
                    if rule.remaining == 0:
                        rules.remove(rule)
                self.injected[operation] += 1
                return rule
            return None

    def wrap(self, app: WSGIApplication) -> WSGIApplication:
        """The middleware around ``app`` (moto's WSGI application)."""

        def middleware(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
            target = str(environ.get("HTTP_X_AMZ_TARGET", ""))
            operation = target.rsplit(".", 1)[-1] if target else s3_operation(environ)
            fault = self._take(operation) if operation else None
            if fault is None:
                return app(environ, start_response)
            if fault.delay:
                time.sleep(fault.delay)
            if fault.error is None:
                return app(environ, start_response)
            if fault.after_apply:
                _discard(app(environ, _ignore_start))
            else:
                # Keep-alive connections break if a request body is left unread.
                length = int(environ.get("CONTENT_LENGTH") or 0)
                if length:
                    environ["wsgi.input"].read(length)
            log.info("injecting %s into %s", fault.error, operation)
            message = f"injected by the test emulator ({operation})"
            if target:
                fields = {"__type": fault.error, "message": message}
                if fault.reason is not None:
                    fields["Reason"] = fault.reason
                body = json.dumps(fields).encode()
                content_type = "application/x-amz-json-1.1"
            else:
                body = f"<Error><Code>{fault.error}</Code><Message>{message}</Message></Error>".encode()
                content_type = "application/xml"
            start_response(
                f"{fault.status} {http.HTTPStatus(fault.status).phrase}",
                [
                    ("Content-Type", content_type),
                    ("Content-Length", str(len(body))),
                    ("x-amzn-RequestId", str(uuid.uuid4())),
                ],
            )
            return [body]

        return middleware


def s3_operation(environ: WSGIEnvironment) -> str:
    """The S3 operation of a path-style REST request (`/bucket/key`), as the S3 API names it;
    "" for anything else."""
    method = str(environ.get("REQUEST_METHOD", ""))
    path = str(environ.get("PATH_INFO", "")).lstrip("/")
    query = parse_qs(str(environ.get("QUERY_STRING", "")), keep_blank_values=True)
    if not path or "/s3/" not in str(environ.get("HTTP_AUTHORIZATION", "")):
        return ""  # S3's requests are signed for the service `s3`
    _bucket, _, key = path.partition("/")
    if not key:
        names = {"GET": "ListObjectsV2" if "list-type" in query else "ListObjects", "PUT": "CreateBucket"}
        return names.get(method, {"HEAD": "HeadBucket", "DELETE": "DeleteBucket"}.get(method, ""))
    return {"PUT": "PutObject", "GET": "GetObject", "HEAD": "HeadObject", "DELETE": "DeleteObject"}.get(method, "")


def _ignore_start(_status: str, _headers: list[tuple[str, str]], _exc_info: Any = None, /) -> Callable[[bytes], object]:
    return lambda data: None


def _discard(body: Iterable[bytes]) -> None:
    try:
        for _ in body:
            pass
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()

"""An AWS IAM Identity Center (identitystore) emulator for tests, benchmarks and local runs.

`IdentityCenterEmulator` serves moto on a loopback port in a thread of this process, so an
operator running in another process (pointed at it by `IdentityCenterEmulator.env`) and the
test (through `client`, `members_of`, ...) see the same identity store.

moto is corrected where it would hide bugs (docs AWS.md) by `make_moto_strict`, which also
serves in-process ``mock_aws`` tests:

* a duplicate ``CreateGroupMembership`` answers ``ConflictException``, as AWS does;
* ``DeleteGroupMembership`` of an unknown id answers ``ResourceNotFoundException``;
* deleting a user or group deletes its memberships, as AWS does;
* ``GetGroupMembershipId``, ``IsMemberInGroups`` and ``DescribeGroupMembership``, which
  moto 5.2 lacks, are served (an unknown user or group: ``ResourceNotFoundException``);
* stores of running emulators are *pinned*: they live outside moto's backends, so the
  backend reset that every ``mock_aws`` start and stop performs cannot wipe the store an
  operator under test is using, and each emulator has a store of its own.

Each emulator has its own identity store id, in the AWS pattern ``d-`` + 10 hex digits.
moto's sso-admin ``list_instances`` knows nothing of it, so give the operator the id
(``JITACCESS_IDENTITY_STORE_ID``, part of `env`).

Faults are injected per emulator at the HTTP layer by `FaultInjector`, chosen by the
operation name of the ``X-Amz-Target`` header::

    emulator.faults.fail("CreateGroupMembership", times=2)                # ThrottlingException
    emulator.faults.fail("DeleteGroupMembership", error="InternalServerException")   # HTTP 500
    emulator.faults.fail("CreateGroupMembership", after_apply=True)   # applied, then 500: a "timed out" write
    emulator.faults.delay("ListGroupMemberships", seconds=2.0)
    emulator.faults.calls["CreateGroupMembership"]    # requests seen, failed ones included
"""

from __future__ import annotations

import contextlib
import http
import json
import logging
import secrets
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Self
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

import boto3
import yaml
from botocore.config import Config
from botocore.exceptions import ClientError
from moto.identitystore.exceptions import ConflictException, ResourceNotFoundException
from moto.identitystore.models import IdentityStoreBackend, IdentityStoreData
from moto.identitystore.responses import IdentityStoreResponse
from moto.server import ThreadedMotoServer

if TYPE_CHECKING:
    from werkzeug.serving import BaseWSGIServer

__all__ = [
    "DEFAULT_REGION",
    "FaultInjector",
    "IdentityCenterEmulator",
    "make_moto_strict",
]

log = logging.getLogger(__name__)

DEFAULT_REGION: Final = "us-east-1"
_DUMMY_KEY: Final = "testing"
_DEFAULT_STATUS: Final = {
    "ThrottlingException": 429,
    "AccessDeniedException": 403,
    "InternalServerException": 500,
    "ServiceUnavailableException": 503,
}

# -- strict moto ---------------------------------------------------------------------------------

_STRICT_LOCK = threading.Lock()
_strict = False
# Stores of running emulators, by id; see the module doc ("pinned").
_PINNED: dict[str, IdentityStoreData] = {}
_GET_STORE: Final = "_IdentityStoreBackend__get_identity_store"


def make_moto_strict() -> None:
    """Make moto's identitystore answer as AWS does (module doc); idempotent, process-wide."""
    global _strict
    with _STRICT_LOCK:
        if _strict:
            return
        original_get_store: Callable[[IdentityStoreBackend, str], IdentityStoreData] | None = getattr(
            IdentityStoreBackend, _GET_STORE, None
        )
        if original_get_store is None:
            raise RuntimeError("moto's IdentityStoreBackend changed shape; update make_moto_strict()")
        original_create = IdentityStoreBackend.create_group_membership
        original_delete_user = IdentityStoreBackend.delete_user
        original_delete_group = IdentityStoreBackend.delete_group

        def get_store(self: IdentityStoreBackend, store_id: str) -> IdentityStoreData:
            pinned = _PINNED.get(store_id)
            return pinned if pinned is not None else original_get_store(self, store_id)

        def create_group_membership(
            self: IdentityStoreBackend, identity_store_id: str, group_id: str, member_id: dict[str, str]
        ) -> tuple[str, str]:
            store = get_store(self, identity_store_id)
            if _membership_of(store, group_id, member_id.get("UserId", "")) is not None:
                raise ConflictException(
                    message="Member and Group relationship already exists.",
                    reason="UNIQUENESS_CONSTRAINT_VIOLATION",
                )
            return original_create(self, identity_store_id, group_id, member_id)

        def delete_group_membership(self: IdentityStoreBackend, identity_store_id: str, membership_id: str) -> None:
            store = get_store(self, identity_store_id)
            if store.group_memberships.pop(membership_id, None) is None:
                raise ResourceNotFoundException(message="GROUP_MEMBERSHIP not found.", resource_type="GROUP_MEMBERSHIP")

        def delete_user(self: IdentityStoreBackend, identity_store_id: str, user_id: str) -> None:
            original_delete_user(self, identity_store_id, user_id)
            _drop_memberships(get_store(self, identity_store_id), lambda m: m["MemberId"]["UserId"] == user_id)

        def delete_group(self: IdentityStoreBackend, identity_store_id: str, group_id: str) -> None:
            original_delete_group(self, identity_store_id, group_id)
            _drop_memberships(get_store(self, identity_store_id), lambda m: m["GroupId"] == group_id)

        def get_group_membership_id(self: IdentityStoreResponse) -> str:
            store_id = self._get_param("IdentityStoreId")
            store = get_store(self.identitystore_backend, store_id)
            user_id = _existing_user(store, self._get_param("MemberId"))
            group_id = _existing_group(store, self._get_param("GroupId"))
            membership = _membership_of(store, group_id, user_id)
            if membership is None:
                raise ResourceNotFoundException(message="GROUP_MEMBERSHIP not found.", resource_type="GROUP_MEMBERSHIP")
            return json.dumps({"MembershipId": membership["MembershipId"], "IdentityStoreId": store_id})

        def is_member_in_groups(self: IdentityStoreResponse) -> str:
            store = get_store(self.identitystore_backend, self._get_param("IdentityStoreId"))
            user_id = _existing_user(store, self._get_param("MemberId"))
            results = [
                {
                    "GroupId": group_id,
                    "MemberId": {"UserId": user_id},
                    "MembershipExists": _membership_of(store, group_id, user_id) is not None,
                }
                for group_id in (_existing_group(store, g) for g in self._get_param("GroupIds") or [])
            ]
            return json.dumps({"Results": results})

        def describe_group_membership(self: IdentityStoreResponse) -> str:
            store = get_store(self.identitystore_backend, self._get_param("IdentityStoreId"))
            membership = store.group_memberships.get(self._get_param("MembershipId"))
            if membership is None:
                raise ResourceNotFoundException(message="GROUP_MEMBERSHIP not found.", resource_type="GROUP_MEMBERSHIP")
            return json.dumps(membership)

        patches: dict[type, dict[str, Callable[..., Any]]] = {
            IdentityStoreBackend: {
                _GET_STORE: get_store,
                "create_group_membership": create_group_membership,
                "delete_group_membership": delete_group_membership,
                "delete_user": delete_user,
                "delete_group": delete_group,
            },
            # moto dispatches an action to the response method of the same (snake_case) name.
            IdentityStoreResponse: {
                "get_group_membership_id": get_group_membership_id,
                "is_member_in_groups": is_member_in_groups,
                "describe_group_membership": describe_group_membership,
            },
        }
        for cls, methods in patches.items():
            for name, method in methods.items():
                setattr(cls, name, method)
        _strict = True
        log.debug("moto identitystore made strict")


def _membership_of(store: IdentityStoreData, group_id: str, user_id: str) -> dict[str, Any] | None:
    for membership in store.group_memberships.values():
        if membership["GroupId"] == group_id and membership["MemberId"].get("UserId") == user_id:
            return dict(membership)
    return None


def _drop_memberships(store: IdentityStoreData, doomed: Callable[[dict[str, Any]], bool]) -> None:
    for membership_id in [k for k, m in store.group_memberships.items() if doomed(m)]:
        del store.group_memberships[membership_id]


def _existing_user(store: IdentityStoreData, member_id: dict[str, str] | None) -> str:
    user_id = (member_id or {}).get("UserId", "")
    if user_id not in store.users:
        raise ResourceNotFoundException(message="USER not found.", resource_type="USER")
    return user_id


def _existing_group(store: IdentityStoreData, group_id: str) -> str:
    if group_id not in store.groups:
        raise ResourceNotFoundException(message="GROUP not found.", resource_type="GROUP")
    return group_id


# -- fault injection -----------------------------------------------------------------------------


@dataclass
class _Fault:
    remaining: int
    error: str | None
    status: int
    delay: float
    after_apply: bool


class FaultInjector:
    """WSGI middleware that makes chosen operations of one emulator fail or stall.

    Rules for one operation are used in the order they were added; each serves ``times``
    requests and is then spent.  Thread-safe: the server answers requests in threads.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: dict[str, list[_Fault]] = {}
        #: Requests seen per operation, failed ones included.
        self.calls: Counter[str] = Counter()
        #: Faults served per operation.
        self.injected: Counter[str] = Counter()

    def fail(
        self,
        operation: str,
        times: int = 1,
        *,
        error: str = "ThrottlingException",
        status: int | None = None,
        after_apply: bool = False,
    ) -> None:
        """Answer the next ``times`` calls of ``operation`` with AWS error code ``error``.

        ``status`` defaults to what AWS sends for that code (429 for throttling, 500 for
        InternalServerException, else 400).  With ``after_apply`` the call is carried out
        first and only its answer is replaced by the error: a write that "timed out" but
        was applied.
        """
        self._add(
            operation,
            _Fault(times, error, status or _DEFAULT_STATUS.get(error, 400), 0.0, after_apply),
        )

    def delay(self, operation: str, seconds: float, times: int = 1) -> None:
        """Hold the next ``times`` calls of ``operation`` for ``seconds`` before serving them."""
        self._add(operation, _Fault(times, None, 200, seconds, False))

    def clear(self) -> None:
        """Drop every pending rule and reset the counters."""
        with self._lock:
            self._rules.clear()
            self.calls.clear()
            self.injected.clear()

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
            rules = self._rules.get(operation)
            if not rules:
                return None
            rule = rules[0]
            rule.remaining -= 1
            if rule.remaining == 0:
                rules.pop(0)
            self.injected[operation] += 1
            return rule

    def wrap(self, app: WSGIApplication) -> WSGIApplication:
        """The middleware around ``app`` (moto's WSGI application)."""

        def middleware(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
            target = str(environ.get("HTTP_X_AMZ_TARGET", ""))
            operation = target.rsplit(".", 1)[-1]
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
            body = json.dumps(
                {"__type": fault.error, "message": f"injected by the test emulator ({operation})"}
            ).encode()
            start_response(
                f"{fault.status} {http.HTTPStatus(fault.status).phrase}",
                [
                    ("Content-Type", "application/x-amz-json-1.1"),
                    ("Content-Length", str(len(body))),
                    ("x-amzn-RequestId", str(uuid.uuid4())),
                ],
            )
            return [body]

        return middleware


def _ignore_start(status: str, headers: list[tuple[str, str]], exc_info: Any = None, /) -> Callable[[bytes], object]:
    return lambda data: None


def _discard(body: Iterable[bytes]) -> None:
    try:
        for _ in body:
            pass
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()


# -- the emulator --------------------------------------------------------------------------------


class IdentityCenterEmulator:
    """moto's identitystore on a loopback port with one identity store of its own; see module doc."""

    def __init__(self, *, identity_store_id: str | None = None, region: str = DEFAULT_REGION) -> None:
        self.identity_store_id = identity_store_id or f"d-{secrets.token_hex(5)}"
        self.region = region
        self.faults = FaultInjector()
        self._server: ThreadedMotoServer | None = None
        self._endpoint_url: str | None = None
        self._owns_store = False
        self._client: Any = None
        self._user_names: dict[str, str] = {}

    def start(self) -> Self:
        if self._server is not None:
            raise RuntimeError("this emulator has already been started")
        make_moto_strict()
        werkzeug_log = logging.getLogger("werkzeug")
        if werkzeug_log.level == logging.NOTSET:
            # werkzeug logs every request at INFO (and adds its own stderr handler when the
            # level is unset), drowning the lines of the code under test.
            werkzeug_log.setLevel(logging.WARNING)
        with _STRICT_LOCK:
            self._owns_store = self.identity_store_id not in _PINNED
            _PINNED.setdefault(self.identity_store_id, IdentityStoreData())
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        self._server = server
        wsgi = self._wsgi_server(server)
        # ThreadedMotoServer offers no hook for middleware; the werkzeug server it
        # built calls whatever its `app` attribute holds, so wrap that.
        wsgi.app = self.faults.wrap(wsgi.app)
        host, port = server.get_host_and_port()
        self._endpoint_url = f"http://{host}:{port}"
        log.info("Identity Center emulator at %s, store %s", self._endpoint_url, self.identity_store_id)
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            wsgi = self._wsgi_server(server)
            address = server.get_host_and_port()
            stopper = threading.Thread(target=server.stop, name="moto-stop")
            stopper.start()
            # serve_forever() notices a shutdown only at its next poll, every 0.5 s, unless
            # a connection wakes it up; poke until it has stopped.
            while stopper.is_alive():
                with contextlib.suppress(OSError):
                    socket.create_connection(address, timeout=0.5).close()
                stopper.join(0.01)
            # ThreadedMotoServer.stop() leaves the listening socket open.
            wsgi.server_close()
        if self._owns_store:
            with _STRICT_LOCK:
                _PINNED.pop(self.identity_store_id, None)
            self._owns_store = False
        self._client = None

    def __enter__(self) -> Self:
        if self._server is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @staticmethod
    def _wsgi_server(server: ThreadedMotoServer) -> BaseWSGIServer:
        wsgi: BaseWSGIServer | None = getattr(server, "_server", None)
        if wsgi is None:
            raise RuntimeError("moto's ThreadedMotoServer changed shape; update IdentityCenterEmulator")
        return wsgi

    # -- connection ------------------------------------------------------------------------

    @property
    def endpoint_url(self) -> str:
        if self._endpoint_url is None:
            raise RuntimeError("start() the emulator first")
        return self._endpoint_url

    def client(self, service: str = "identitystore", *, config: Config | None = None) -> Any:
        """A boto3 client (``identitystore`` or ``sso-admin``) pointed at the emulator."""
        return boto3.client(
            service,  # type: ignore[call-overload, unused-ignore]
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id=_DUMMY_KEY,
            aws_secret_access_key=_DUMMY_KEY,
            config=config,
        )

    def env(self) -> dict[str, str]:
        """Environment variables that point an operator process at this emulator."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": _DUMMY_KEY,
            "AWS_SECRET_ACCESS_KEY": _DUMMY_KEY,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            # Keep a developer's own AWS profile and instance metadata out of the picture.
            "AWS_CONFIG_FILE": "/dev/null",
            "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
            "AWS_EC2_METADATA_DISABLED": "true",
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
            "JITACCESS_IDENTITY_STORE_ID": self.identity_store_id,
        }

    @property
    def _identitystore(self) -> Any:
        if self._client is None:
            self._client = self.client()
        return self._client

    # -- content ---------------------------------------------------------------------------

    def seed(self, path: Path | str) -> None:
        """Create the users, groups and memberships of a YAML file (``examples/identitycenter/seed.yaml``).

        Re-seeding is harmless: what exists already is kept.
        """
        data = yaml.safe_load(Path(path).read_text())
        user_ids = {
            user["userName"]: self.create_user(
                user["userName"],
                display_name=user.get("displayName"),
                given_name=user.get("givenName"),
                family_name=user.get("familyName"),
            )
            for user in data.get("users") or []
        }
        for group in data.get("groups") or []:
            group_id = self.create_group(group["displayName"], description=group.get("description", ""))
            for member in group.get("members") or []:
                user_id = user_ids.get(member) or self.user_id(member)
                try:
                    self._identitystore.create_group_membership(
                        IdentityStoreId=self.identity_store_id, GroupId=group_id, MemberId={"UserId": user_id}
                    )
                except ClientError as exc:
                    if exc.response["Error"]["Code"] != "ConflictException":
                        raise

    def create_user(
        self,
        user_name: str,
        *,
        display_name: str | None = None,
        given_name: str | None = None,
        family_name: str | None = None,
    ) -> str:
        """Create a user (or find it, if it exists); its UserId."""
        local = user_name.split("@", 1)[0]
        try:
            response = self._identitystore.create_user(
                IdentityStoreId=self.identity_store_id,
                UserName=user_name,
                DisplayName=display_name or local.title(),
                Name={"GivenName": given_name or local.title(), "FamilyName": family_name or "Example"},
                Emails=[{"Value": user_name, "Type": "work", "Primary": True}] if "@" in user_name else [],
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConflictException":
                raise
            return self.user_id(user_name)
        user_id = str(response["UserId"])
        self._user_names[user_id] = user_name
        return user_id

    def create_group(self, display_name: str, *, description: str = "") -> str:
        """Create a group (or find it, if it exists); its GroupId."""
        # AWS rejects an empty Description: leave it out instead.
        extra = {"Description": description} if description else {}
        try:
            response = self._identitystore.create_group(
                IdentityStoreId=self.identity_store_id, DisplayName=display_name, **extra
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConflictException":
                raise
            return self.group_id(display_name)
        return str(response["GroupId"])

    def user_id(self, user_name: str) -> str:
        response = self._identitystore.get_user_id(
            IdentityStoreId=self.identity_store_id,
            AlternateIdentifier={"UniqueAttribute": {"AttributePath": "userName", "AttributeValue": user_name}},
        )
        return str(response["UserId"])

    def group_id(self, display_name: str) -> str:
        response = self._identitystore.get_group_id(
            IdentityStoreId=self.identity_store_id,
            AlternateIdentifier={"UniqueAttribute": {"AttributePath": "displayName", "AttributeValue": display_name}},
        )
        return str(response["GroupId"])

    def add_member(self, group: str, user_name: str) -> str:
        """Put a user into a group (by names), unless it is there; the MembershipId."""
        group_id, user_id = self.group_id(group), self.user_id(user_name)
        try:
            response = self._identitystore.create_group_membership(
                IdentityStoreId=self.identity_store_id, GroupId=group_id, MemberId={"UserId": user_id}
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConflictException":
                raise
            response = self._identitystore.get_group_membership_id(
                IdentityStoreId=self.identity_store_id, GroupId=group_id, MemberId={"UserId": user_id}
            )
        return str(response["MembershipId"])

    def remove_member(self, group: str, user_name: str) -> bool:
        """Take a user out of a group (by names); False when it was not in it."""
        try:
            response = self._identitystore.get_group_membership_id(
                IdentityStoreId=self.identity_store_id,
                GroupId=self.group_id(group),
                MemberId={"UserId": self.user_id(user_name)},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ResourceNotFoundException":
                raise
            return False
        self._identitystore.delete_group_membership(
            IdentityStoreId=self.identity_store_id, MembershipId=response["MembershipId"]
        )
        return True

    def members_of(self, group: str) -> set[str]:
        """The UserNames now in the group with DisplayName ``group``."""
        paginator = self._identitystore.get_paginator("list_group_memberships")
        user_ids = [
            membership["MemberId"]["UserId"]
            for page in paginator.paginate(IdentityStoreId=self.identity_store_id, GroupId=self.group_id(group))
            for membership in page["GroupMemberships"]
        ]
        return {self._user_name(user_id) for user_id in user_ids}

    def _user_name(self, user_id: str) -> str:
        name = self._user_names.get(user_id)
        if name is None:
            response = self._identitystore.describe_user(IdentityStoreId=self.identity_store_id, UserId=user_id)
            name = self._user_names[user_id] = str(response["UserName"])
        return name

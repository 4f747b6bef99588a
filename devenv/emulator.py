"""An AWS IAM Identity Center (identitystore) emulator for tests, benchmarks and local runs.

`IdentityCenterEmulator` serves moto on a loopback port in a thread of this process, so an
operator running in another process (pointed at it by `IdentityCenterEmulator.env`) and the test
(through `client`, `members_of`, ...) see the same identity store. moto is made to answer as AWS
does by `devenv.strict_moto`; faults are injected at the HTTP layer by `devenv.faults`.

Each emulator has an identity store of its own, its id in the AWS pattern ``d-`` + 10 hex digits,
and an Identity Center instance over it (`sso`, served by `devenv.strict_ssoadmin`: permission sets,
account assignments, asynchronous provisioning), which sso-admin ``ListInstances`` answers with.
`env` gives the operator both (``JITACCESS_IDENTITY_STORE_ID``, ``JITACCESS_SSO_INSTANCE_ARN``).

Content is created through the API (`seed`, `create_user`, `add_member`, ...), or, for the
thousands of users a benchmark needs, in bulk straight in the store (`seed_users`, `add_members`,
`empty_group`: a few calls per user through the API would take minutes). `watch_memberships`
tells a listener of every membership change the moment it takes effect.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import socket
import threading
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Self

import boto3
import yaml
from botocore.config import Config
from botocore.exceptions import ClientError
from moto.identitystore.models import IdentityStoreData, Name, User
from moto.server import ThreadedMotoServer

from devenv.faults import FaultInjector
from devenv.strict_moto import MembershipListener, pin_store, set_user_status, unpin_store
from devenv.strict_ssoadmin import INSTANCE_HEADER, Instance, pin_instance, unpin_instance

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

    from werkzeug.serving import BaseWSGIServer

__all__ = ["IdentityCenterEmulator"]

log = logging.getLogger(__name__)

_REGION: Final = "us-east-1"
_DUMMY_KEY: Final = "testing"


class IdentityCenterEmulator:
    """moto's identitystore on a loopback port with one identity store of its own; see module doc."""

    def __init__(self) -> None:
        self.identity_store_id = f"d-{secrets.token_hex(5)}"
        self.region = _REGION
        self.faults = FaultInjector()
        self._server: ThreadedMotoServer | None = None
        self._endpoint_url: str | None = None
        self._store: IdentityStoreData | None = None
        self._sso: Instance | None = None
        self._listeners: list[MembershipListener] = []
        self._client: Any = None
        self._user_names: dict[str, str] = {}

    def start(self) -> Self:
        if self._server is not None:
            raise RuntimeError("this emulator has already been started")
        werkzeug_log = logging.getLogger("werkzeug")
        if werkzeug_log.level == logging.NOTSET:
            # werkzeug logs every request at INFO (and adds its own stderr handler when the
            # level is unset), drowning the lines of the code under test.
            werkzeug_log.setLevel(logging.WARNING)
        self._store, self._listeners = pin_store(self.identity_store_id)
        self._sso = pin_instance(self.identity_store_id, self._store)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        self._server = server
        wsgi = self._wsgi_server(server)
        # ThreadedMotoServer offers no hook for middleware; the werkzeug server it
        # built calls whatever its `app` attribute holds, so wrap that.
        wsgi.app = self.faults.wrap(_tagged(_routed(wsgi.app), self._sso.arn))
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
        if self._store is not None:
            unpin_store(self.identity_store_id)
            self._store = None
        if self._sso is not None:
            unpin_instance(self._sso)
        self._client = None

    def __enter__(self) -> Self:
        if self._server is None:
            self.start()
        return self

    def __exit__(self, *_: object) -> None:
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
        """A boto3 client (``identitystore``, ``sso-admin`` or ``s3``) pointed at the emulator."""
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
            "JITACCESS_SSO_INSTANCE_ARN": self.sso.arn,
        }

    def create_bucket(self, name: str, *, object_lock: bool = False, compliance_days: int = 0) -> str:
        """Create an S3 bucket in the emulator (the audit archive's), with Object Lock if asked, and
        with `compliance_days` a default retention in COMPLIANCE mode (every object locked that long);
        its name. moto's S3 refuses a conditional PUT (`If-None-Match: *`) on a taken key with
        412 PreconditionFailed, as S3 does: no write overwrites a record silently."""
        s3 = self.client("s3")
        s3.create_bucket(Bucket=name, ObjectLockEnabledForBucket=object_lock or compliance_days > 0)
        if compliance_days:
            retention = {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": compliance_days}}
            s3.put_object_lock_configuration(
                Bucket=name, ObjectLockConfiguration={"ObjectLockEnabled": "Enabled", "Rule": retention}
            )
        return name

    @property
    def sso(self) -> Instance:
        """The Identity Center instance (sso-admin): its ARN, permission sets, assignments, what
        each account got provisioned, and `async_seconds`, how long its asynchronous requests take."""
        if self._sso is None:
            raise RuntimeError("start() the emulator first")
        return self._sso

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
        # AWS takes no empty list of Emails: a user name that is no address gets none.
        emails = {"Emails": [{"Value": user_name, "Type": "work", "Primary": True}]} if "@" in user_name else {}
        try:
            response = self._identitystore.create_user(
                IdentityStoreId=self.identity_store_id,
                UserName=user_name,
                DisplayName=display_name or local.title(),
                Name={"GivenName": given_name or local.title(), "FamilyName": family_name or "Example"},
                **emails,
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

    def set_user_enabled(self, user_name: str, enabled: bool) -> None:
        """Disable (or enable again) a user, as the console or SCIM does: ``UserStatus`` says so."""
        set_user_status(self.identity_store_id, self.user_id(user_name), enabled=enabled)

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

    # -- in bulk, straight in the store ----------------------------------------------------------

    def seed_users(self, user_names: Iterable[str]) -> dict[str, str]:
        """Create users (existing ones are kept), as `create_user` would; user name -> UserId."""
        store = self._pinned()
        known = {user.UserName: user_id for user_id, user in store.users.items()}
        ids: dict[str, str] = {}
        for user_name in user_names:
            user_id = known.get(user_name)
            if user_id is None:
                user_id = known[user_name] = str(uuid.uuid4())
                local = user_name.split("@", 1)[0]
                # As the API stores it (a JSON boolean), though moto's own type says str.
                emails: list[dict[str, Any]] = [{"Value": user_name, "Type": "work", "Primary": True}]
                store.users[user_id] = User(
                    UserId=user_id,
                    IdentityStoreId=self.identity_store_id,
                    UserName=user_name,
                    Name=Name.from_dict({"GivenName": local.title(), "FamilyName": "Example"}),
                    DisplayName=local.title(),
                    NickName="",
                    ProfileUrl="",
                    Emails=emails,
                    Addresses=[],
                    PhoneNumbers=[],
                    UserType="",
                    Title="",
                    PreferredLanguage="",
                    Locale="",
                    Timezone="",
                )
            self._user_names[user_id] = user_name
            ids[user_name] = user_id
        return ids

    def add_members(self, group: str, user_names: Iterable[str]) -> dict[str, str]:
        """Put users into a group (by names; existing memberships are kept); user name -> MembershipId."""
        store = self._pinned()
        group_id = self.group_id(group)
        user_ids = {name: user_id for user_id, name in self._user_names.items()}
        held = {
            m["MemberId"]["UserId"]: m["MembershipId"]
            for m in store.group_memberships.values()
            if m["GroupId"] == group_id
        }
        ids: dict[str, str] = {}
        for user_name in user_names:
            user_id = user_ids.get(user_name) or self.user_id(user_name)
            membership_id = held.get(user_id)
            if membership_id is None:
                membership_id = held[user_id] = str(uuid.uuid4())
                store.group_memberships[membership_id] = {
                    "IdentityStoreId": self.identity_store_id,
                    "MembershipId": membership_id,
                    "GroupId": group_id,
                    "MemberId": {"UserId": user_id},
                }
            ids[user_name] = membership_id
        return ids

    def empty_group(self, group: str) -> int:
        """Take every member out of a group; how many there were."""
        store = self._pinned()
        group_id = self.group_id(group)
        doomed = [k for k, m in store.group_memberships.items() if m["GroupId"] == group_id]
        for membership_id in doomed:
            store.group_memberships.pop(membership_id, None)
        return len(doomed)

    def watch_memberships(self, listener: MembershipListener) -> None:
        """Call ``listener(added, membership)`` on every membership created or deleted from now on.

        It runs in the thread that made the change (a server thread, for the operator's calls), the
        moment the change takes effect, so it must be quick and thread-safe.
        """
        self._listeners.append(listener)

    def _pinned(self) -> IdentityStoreData:
        if self._store is None:
            raise RuntimeError("start() the emulator first")
        return self._store


#: The services this emulator serves, by the prefix of their `X-Amz-Target` header.
_TARGETS: Final = ("AWSIdentityStore.", "SWBExternalService.")


def _routed(dispatcher: Any) -> WSGIApplication:
    """moto's dispatcher, asked once per service this emulator serves, then by-passed.

    moto picks the service of every request under one process-wide lock, listing its own package
    directory each time: a tenth of the emulator's CPU, and every call of every thread in a queue.
    The answer for a service does not change, so it is remembered (other requests go to moto).
    """
    apps: dict[str, WSGIApplication] = {}

    def middleware(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        target = str(environ.get("HTTP_X_AMZ_TARGET") or "")
        prefix = next((t for t in _TARGETS if target.startswith(t)), None)
        if prefix is None:
            return dispatcher(environ, start_response)  # type: ignore[no-any-return]
        app = apps.get(prefix)
        if app is None:
            app = apps[prefix] = dispatcher.get_application(environ)
        return app(environ, start_response)

    return middleware


def _tagged(app: WSGIApplication, instance_arn: str) -> WSGIApplication:
    """Tell `devenv.strict_ssoadmin` which instance answers a request: this emulator's."""

    def middleware(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        environ["HTTP_" + INSTANCE_HEADER.upper().replace("-", "_")] = instance_arn
        return app(environ, start_response)

    return middleware

"""The audit archive's S3 bucket (boto3 `s3`): write a batch once, list and read batches back.

A batch is written with a conditional PUT (`If-None-Match: *`): S3 refuses to replace an object
that exists (412 PreconditionFailed), so no write ever silently overwrites evidence, with or
without Object Lock on the bucket. Every other failure (throttling, 5xx, a broken connection,
a 409 from a concurrent conditional write) is `ArchiveUnavailable`, and the caller tries again
later: S3 keeps no half-written object, so a retried batch is simply written again.

boto3 sends a CRC32 checksum with every PUT, which is what a bucket with Object Lock requires.
The key layout is `jitaccess.api.audit.archive_key`; the chain's metadata written with each batch,
`jitaccess.domain.chain`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from jitaccess.api import audit
from jitaccess.domain import chain

log = logging.getLogger(__name__)


class ArchiveUnavailable(Exception):
    """S3 did not take or give the batch this time; worth another try later."""


class Archive:
    """One bucket and prefix of the audit archive."""

    def __init__(self, client: Any, bucket: str, prefix: str = "") -> None:
        self._client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")

    @classmethod
    def connect(
        cls,
        bucket: str,
        prefix: str = "",
        *,
        region: str | None = None,
        endpoint_url: str | None = None,
        max_attempts: int = 2,
    ) -> Archive:
        # Few SDK attempts: the archiver retries whole batches with its own backoff, and must not
        # sit for long inside one call while records queue up.
        config = Config(
            retries={"mode": "standard", "total_max_attempts": max_attempts}, connect_timeout=5, read_timeout=30
        )
        client = boto3.session.Session(region_name=region).client("s3", endpoint_url=endpoint_url, config=config)
        return cls(client, bucket, prefix)

    def put_new(self, key: str, data: bytes, metadata: Mapping[str, str] | None = None) -> bool:
        """Write `data` at `key` (with S3 user `metadata`) unless an object is there already: True
        when this call wrote it, False when the key was taken (its content is whatever the first
        write put there)."""
        try:
            self._client.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=data,
                IfNoneMatch="*",
                ContentType="application/x-ndjson",
                Metadata=dict(metadata or {}),
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "PreconditionFailed":
                return False
            raise ArchiveUnavailable(f"PutObject {key}: {describe(exc)}") from exc
        except BotoCoreError as exc:
            raise ArchiveUnavailable(f"PutObject {key}: {exc}") from exc
        return True

    def keys_written(self, since: datetime, until: datetime) -> list[str]:
        """The keys of the batches written from `since` to `until` (by the time in their names)."""
        low = audit.archive_key(self.prefix, since, "")
        high = audit.archive_key(self.prefix, until, "~")
        keys: list[str] = []
        for day in _days(since, until):
            for key in self._list(audit.day_prefix(self.prefix, day), start_after=low):
                if key > high:
                    break
                keys.append(key)
        return keys

    def get(self, key: str) -> bytes:
        return self.read(key)[0]

    def read(self, key: str) -> tuple[bytes, dict[str, str]]:
        """The object's bytes and its S3 user metadata (names lower-cased, without `x-amz-meta-`)."""
        try:
            answer = self._client.get_object(Bucket=self.bucket, Key=key)
            body: bytes = answer["Body"].read()
        except ClientError as exc:
            raise ArchiveUnavailable(f"GetObject {key}: {describe(exc)}") from exc
        except BotoCoreError as exc:
            raise ArchiveUnavailable(f"GetObject {key}: {exc}") from exc
        return body, chain.user_metadata(answer.get("Metadata"))

    def latest_key(self) -> str | None:
        """The key of the newest batch (by the write time that begins each key), or None in an
        empty archive: the newest year, month and day folders, then the newest key in that day."""
        folder = audit.layout_prefix(self.prefix)
        for _ in ("year", "month", "day"):
            folders = self._folders(folder)
            if not folders:
                return None
            folder = max(folders)
        return max(self._list(folder, start_after=""), default=None)

    def unprotected(self) -> str | None:
        """Why the bucket does not keep what is written in it for good (no Object Lock, no default
        retention, or retention in GOVERNANCE mode, which a privileged user may bypass), or None when
        every new object is locked in COMPLIANCE mode. Raises `ArchiveUnavailable` when S3 does not say."""
        try:
            lock = self._client.get_object_lock_configuration(Bucket=self.bucket)["ObjectLockConfiguration"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ObjectLockConfigurationNotFoundError":
                return "the bucket has no Object Lock: a writer of the bucket can overwrite or delete records"
            raise ArchiveUnavailable(f"GetObjectLockConfiguration: {describe(exc)}") from exc
        except BotoCoreError as exc:
            raise ArchiveUnavailable(f"GetObjectLockConfiguration: {exc}") from exc
        retention = (lock.get("Rule") or {}).get("DefaultRetention") or {}
        if lock.get("ObjectLockEnabled") != "Enabled" or not retention:
            return (
                "Object Lock is on but with no default retention: objects are written unlocked and can be "
                "deleted or replaced by a new version"
            )
        if retention.get("Mode") != "COMPLIANCE":
            return (
                f"the default retention is in {retention.get('Mode')} mode: anyone allowed "
                "s3:BypassGovernanceRetention can delete records before it ends (COMPLIANCE mode: nobody)"
            )
        return None

    def _folders(self, prefix: str) -> list[str]:
        folders: list[str] = []
        try:
            for page in self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix, Delimiter="/"
            ):
                folders += [str(item["Prefix"]) for item in page.get("CommonPrefixes", [])]
        except ClientError as exc:
            raise ArchiveUnavailable(f"ListObjectsV2 {prefix}: {describe(exc)}") from exc
        except BotoCoreError as exc:
            raise ArchiveUnavailable(f"ListObjectsV2 {prefix}: {exc}") from exc
        return folders

    def _list(self, prefix: str, start_after: str) -> Iterator[str]:
        token: str | None = None
        while True:
            args: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix}
            args |= {"ContinuationToken": token} if token else {"StartAfter": max(start_after, prefix)}
            try:
                page = self._client.list_objects_v2(**args)
            except ClientError as exc:
                raise ArchiveUnavailable(f"ListObjectsV2 {prefix}: {describe(exc)}") from exc
            except BotoCoreError as exc:
                raise ArchiveUnavailable(f"ListObjectsV2 {prefix}: {exc}") from exc
            for item in page.get("Contents", []):
                yield str(item["Key"])
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return


def _days(since: datetime, until: datetime) -> Iterator[datetime]:
    day = since.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    while day <= until:
        yield day
        day += timedelta(days=1)


def describe(exc: ClientError) -> str:
    """An AWS error as a log line says it: its code, HTTP status and message."""
    error = exc.response.get("Error", {})
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "")
    return f"{error.get('Code', '?')} ({status}): {error.get('Message', '')}"

"""Reading the audit archive in S3: the records of the days in a window, for `audit` and `review`.

The operator writes JSON-lines objects under `s3://BUCKET/PREFIX/v1/YYYY/MM/DD/` (docs/audit.md),
gzip-compressed or not; this reads every object under the day folders from the window's first day
to its last (batches are filed by the day they were written) and decodes them with the stdlib
function the operator encodes with. A record written twice has the same id both times: the caller
keeps one.

The only module of the plugin that imports boto3, and only inside `read`: the other commands never
pay for it (import-linter allows it here alone). Credentials, region and endpoint come from the
usual AWS environment (AWS_PROFILE, AWS_REGION, AWS_ENDPOINT_URL_S3, ...), as for the AWS CLI.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from jitaccess.api.audit import day_prefix, decode_lines
from jitaccess.cli.errors import NotFound, Refused, Unreachable, UsageError

SCHEME = "s3://"


def parse_location(location: str) -> tuple[str, str]:
    """`s3://bucket/some/prefix` -> (`bucket`, `some/prefix`); the prefix may be empty."""
    if not location.startswith(SCHEME) or not location[len(SCHEME) :].split("/", 1)[0]:
        raise UsageError(f"the archive {location!r} is not an S3 location: give it as s3://BUCKET/PREFIX")
    bucket, _, prefix = location[len(SCHEME) :].partition("/")
    return bucket, prefix.strip("/")


def day_prefixes(prefix: str, start: datetime, end: datetime) -> list[str]:
    """The day folders (UTC) from `start`'s day to the day after `end`'s, oldest first. A batch is
    filed under the day it was written, at or after its records' times; the day after `end` is for
    a caller whose clock is behind the operator's around midnight."""
    last = end.astimezone(UTC) + timedelta(days=1)
    return [day_prefix(prefix, day) for day in _days(start.astimezone(UTC), last)]


def _days(first: datetime, last: datetime) -> Iterator[datetime]:
    day = first
    while day.date() <= last.date():
        yield day
        day += timedelta(days=1)


def _decompressed(key: str, body: bytes) -> bytes:
    # By name or by content: an object may be gzip without saying so in its key.
    return gzip.decompress(body) if key.endswith(".gz") or body[:2] == b"\x1f\x8b" else body


def read(location: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """Every record archived in the day folders of the window ending at `end` (now)."""
    bucket, prefix = parse_location(location)
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    records: list[dict[str, Any]] = []
    try:
        client = boto3.client("s3")
        pages = client.get_paginator("list_objects_v2")
        for folder in day_prefixes(prefix, start, end):
            for page in pages.paginate(Bucket=bucket, Prefix=folder):
                for item in page.get("Contents", []):
                    body = client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
                    records += _records(location, item["Key"], body)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code, message = str(error.get("Code", "")), str(error.get("Message", "")) or str(exc)
        if code == "NoSuchBucket":
            raise NotFound(f"the audit archive's bucket {bucket!r} does not exist: check --archive") from exc
        raise Refused(f"reading the audit archive {location} was refused ({code}: {message})") from exc
    except BotoCoreError as exc:
        raise Unreachable(
            f"cannot read the audit archive {location} ({exc}): check your AWS credentials and region, "
            "or give --archive '' to read the cluster instead"
        ) from exc
    return records


def _records(location: str, key: str, body: bytes) -> list[dict[str, Any]]:
    try:
        decoded = decode_lines(_decompressed(key, body))
    except (ValueError, OSError, EOFError) as exc:  # not UTF-8 JSON lines, not gzip, cut short
        raise Refused(f"the audit archive {location} holds an object that is not JSON lines: {key} ({exc})") from exc
    return [record for record in decoded if isinstance(record, dict)]

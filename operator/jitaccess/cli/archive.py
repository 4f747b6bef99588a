"""Reading the audit archive in S3: the records of the days in a window, for `audit` and `review`.

The operator writes JSON-lines objects under `s3://BUCKET/PREFIX/v1/YYYY/MM/DD/` (docs/audit.md),
gzip-compressed or not; this reads every object under the folders from the window's first day up
to today, and decodes them with the stdlib function the operator encodes with. A batch is filed by
the day it was **written**, which may be days after its records' times (S3 or the signing key
unavailable over a weekend, no leader meanwhile): Friday's records may be in Monday's folder, so
the folders after the window's end are read too, and the caller cuts by time. Each record comes
with the key of the object that holds it: a record written twice has the same id both times, and
the caller keeps one, unless the two differ (`history.load` reports that as a conflict; a copy
written later, in a later folder, is found so as well).

An object that is not JSON lines (not gzip though it says so, cut short), and a line that is not
UTF-8 JSON or not an audit record of schema v1, is skipped and listed as `Skipped` with its key and
line: one bad object must not hide the rest of the archive, and the caller says what was skipped.

`stored` reads the day folders of the window, the batches written in it, for `audit --verify`:
every version of every key, and each key's current bytes and S3 metadata, for the chain's check
(`jitaccess.domain.chain`).

The only module of the plugin that imports boto3, and only inside `_client`: the other commands never
pay for it (import-linter allows it here alone). Credentials, region and endpoint come from the
usual AWS environment (AWS_PROFILE, AWS_REGION, AWS_ENDPOINT_URL_S3, ...), as for the AWS CLI.
"""

from __future__ import annotations

import contextlib
import gzip
import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from jitaccess.api.audit import SCHEMA, SKEW, day_prefix, month_prefix
from jitaccess.cli.errors import NotFound, Refused, Unreachable, UsageError
from jitaccess.domain import chain

SCHEME = "s3://"


@dataclass(frozen=True)
class Skipped:
    """What could not be read: an object (`line` None: the whole of it) or one line of it (from 1)."""

    key: str
    line: int | None
    why: str

    @property
    def described(self) -> str:
        where = f"line {self.line} of the archive object" if self.line else "the archive object"
        return f"skipped {where} {self.key}: {self.why}"


@dataclass
class Read:
    """The records of the folders read, each with the key of its object, and what was skipped."""

    records: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)


def parse_location(location: str) -> tuple[str, str]:
    """`s3://bucket/some/prefix` -> (`bucket`, `some/prefix`); the prefix may be empty."""
    if not location.startswith(SCHEME) or not location[len(SCHEME) :].split("/", 1)[0]:
        raise UsageError(f"the archive {location!r} is not an S3 location: give it as s3://BUCKET/PREFIX")
    bucket, _, prefix = location[len(SCHEME) :].partition("/")
    return bucket, prefix.strip("/")


def day_prefixes(prefix: str, start: datetime, end: datetime) -> list[str]:
    """The day folders (UTC) from `start`'s day to the day after `end`'s, oldest first: the batches
    `--verify` checks, those written in the window (the day after `end` is for a caller whose clock
    is behind the operator's around midnight)."""
    last = end.astimezone(UTC) + timedelta(days=1)
    return [day_prefix(prefix, day) for day in _days(start.astimezone(UTC), last)]


def folders(prefix: str, start: datetime, now: datetime) -> list[str]:
    """The folders holding every batch that may hold a record of `start` or later, oldest first:
    from the day of `start` less SKEW (the operator's clock behind the API server's, a record of
    just after midnight is in the batch of the day before) to the day of `now` plus SKEW (the
    caller's clock behind the operator's). A month wholly inside is its month folder, one listing
    (of up to 1,000 keys a page) rather than one per day: a window far in the past lists a few
    folders per month up to today, not one per day."""
    first, last = (start - SKEW).astimezone(UTC), (now + SKEW).astimezone(UTC)
    found: list[str] = []
    month: list[datetime] = []
    for day in [*_days(first, last), None]:
        if month and (day is None or day.month != month[0].month):
            whole = month[0].day == 1 and (month[-1] + timedelta(days=1)).month != month[-1].month
            found += [month_prefix(prefix, month[0])] if whole else [day_prefix(prefix, d) for d in month]
            month = []
        if day is not None:
            month.append(day)
    return found


def _days(first: datetime, last: datetime) -> Iterator[datetime]:
    day = first
    while day.date() <= last.date():
        yield day
        day += timedelta(days=1)


def _decompressed(key: str, body: bytes) -> bytes:
    # By name or by content: an object may be gzip without saying so in its key.
    return gzip.decompress(body) if key.endswith(".gz") or body[:2] == b"\x1f\x8b" else body


def stored(location: str, start: datetime, end: datetime) -> tuple[list[chain.Stored], Callable[[str], str | None]]:
    """Every key of the window's day folders as the bucket holds it (its versions counted, its
    current bytes and metadata), for `domain.chain.verify`; and how to ask for the digest of a
    batch before the window."""
    bucket, prefix = parse_location(location)
    from botocore.exceptions import ClientError

    client = _client(location, bucket)

    def current(key: str) -> tuple[bytes, dict[str, str]] | None:
        try:
            answer = client.get_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise
        return answer["Body"].read(), chain.user_metadata(answer.get("Metadata"))

    def earlier(key: str) -> str | None:
        with _answered(location, bucket):
            found = current(key)
        return chain.link_to(key, *found).sha256 if found is not None else None

    keys: list[chain.Stored] = []
    with _answered(location, bucket, refused=": --verify takes s3:ListBucketVersions and s3:GetObject"):
        pages = client.get_paginator("list_object_versions")
        versions: Counter[str] = Counter()
        deleted: set[str] = set()
        for folder in day_prefixes(prefix, start, end):
            for page in pages.paginate(Bucket=bucket, Prefix=folder):
                versions.update(item["Key"] for item in page.get("Versions", []))
                for item in page.get("DeleteMarkers", []):
                    versions[item["Key"]] += 1
                    if item.get("IsLatest"):
                        deleted.add(item["Key"])
        for key, count in sorted(versions.items()):
            found = None if key in deleted else current(key)
            data, meta = found if found is not None else (None, {})
            keys.append(chain.Stored(key, data, meta, count))
    return keys, earlier


@contextlib.contextmanager
def _answered(location: str, bucket: str, *, refused: str = "", unreachable: str = "") -> Iterator[None]:
    """S3's failures while reading the archive, as the plugin's errors (exit codes, a hint each)."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code, message = str(error.get("Code", "")), str(error.get("Message", "")) or str(exc)
        if code == "NoSuchBucket":
            raise NotFound(f"the audit archive's bucket {bucket!r} does not exist: check --archive") from exc
        raise Refused(f"reading the audit archive {location} was refused ({code}: {message}){refused}") from exc
    except BotoCoreError as exc:
        raise Unreachable(
            f"cannot read the audit archive {location} ({exc}): check your AWS credentials and region{unreachable}"
        ) from exc


def _client(location: str, bucket: str, *, unreachable: str = "") -> Any:
    """The S3 client, made from the AWS environment as the AWS CLI makes it. A setting it cannot
    use fails here, before any call: a profile that does not exist (botocore's ProfileNotFound),
    or an endpoint URL without its scheme (a plain ValueError, `Invalid endpoint: localhost:4566`)."""
    import boto3

    with _answered(location, bucket, unreachable=unreachable):
        try:
            return boto3.client("s3")
        except ValueError as exc:
            raise Unreachable(
                f"cannot read the audit archive {location} ({exc}): check your AWS settings: AWS_ENDPOINT_URL_S3 "
                f"or AWS_ENDPOINT_URL is a URL with its scheme (http://localhost:4566){unreachable}"
            ) from exc


def read(location: str, start: datetime, now: datetime) -> Read:
    """Every record archived in the `folders` from `start` to `now` (the caller's), with its key:
    each batch that may hold a record of `start` or later, whenever it was written."""
    bucket, prefix = parse_location(location)
    found = Read()
    cluster_instead = ", or give --archive '' to read the cluster instead"
    client = _client(location, bucket, unreachable=cluster_instead)
    with _answered(location, bucket, unreachable=cluster_instead):
        pages = client.get_paginator("list_objects_v2")
        for folder in folders(prefix, start, now):
            for page in pages.paginate(Bucket=bucket, Prefix=folder):
                for item in page.get("Contents", []):
                    body = client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
                    decode(item["Key"], body, found)
    return found


def decode(key: str, body: bytes, into: Read) -> None:
    """The records of one object into `into`, line by line; what is not a record into its `skipped`."""
    try:
        data = _decompressed(key, body)
    except (OSError, EOFError) as exc:  # says gzip but is not, or cut short
        into.skipped.append(Skipped(key, None, f"not gzip, or cut short ({exc})"))
        return
    # Split on the newline byte alone: the encoder never writes one inside a record, but it does
    # write U+2028 and friends raw (ensure_ascii=False), which str.splitlines would split on.
    for number, line in enumerate(data.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line.decode())
        except UnicodeDecodeError as exc:
            into.skipped.append(Skipped(key, number, f"not UTF-8 ({exc.reason} at byte {exc.start})"))
            continue
        except ValueError as exc:
            into.skipped.append(Skipped(key, number, f"not JSON ({exc})"))
            continue
        why = not_a_record(record)
        if why:
            into.skipped.append(Skipped(key, number, why))
        else:
            into.records.append((key, record))


def not_a_record(value: Any) -> str:
    """Why `value` is not an audit record of schema v1 (docs/audit.md), or empty when it is one.
    Only what the reader relies on is checked: the schema, a non-empty id and action, a string time."""
    if not isinstance(value, dict):
        return f"not an audit record (a JSON {type(value).__name__}, not an object)"
    if value.get("schema") != SCHEMA:
        return f"not an audit record of schema {SCHEMA} (schema {value.get('schema')!r})"
    for name in ("id", "action"):
        if not isinstance(value.get(name), str) or not value[name]:
            return f"not an audit record: {name!r} is missing or not a non-empty string"
    if "time" in value and not isinstance(value["time"], str):
        return "not an audit record: 'time' is not a string"
    return ""

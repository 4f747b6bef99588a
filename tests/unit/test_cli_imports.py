"""The plugin starts fast: its request path imports none of the heavy packages."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("kubernetes", "kopf", "boto3", "botocore", "pydantic", "yaml", "jitaccess.api.models")


def _heavy_loaded(modules: str, argv: list[str]) -> str:
    """Which heavy packages a fresh interpreter holds after importing `modules` and parsing `argv`."""
    code = (
        "import sys\n"
        f"from jitaccess.cli import {modules}\n"
        "from jitaccess.cli.parser import build_parser\n"
        f"build_parser().parse_args({argv!r})\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return done.stdout.strip()


def test_the_request_path_stays_lean() -> None:
    loaded = _heavy_loaded(
        "main, parser, request, decisions, views, session, kube", ["request", "x", "--for", "1h", "--timeout", "1m"]
    )
    assert loaded == "[]", loaded


def test_reports_import_boto3_only_when_an_archive_is_read() -> None:
    loaded = _heavy_loaded("reports, history, archive, completion", ["audit", "--since", "7d", "-o", "csv"])
    assert loaded == "[]", loaded

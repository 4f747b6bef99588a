"""The plugin starts fast: its request path imports none of the heavy packages."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("kubernetes", "kopf", "boto3", "botocore", "pydantic", "yaml", "jitaccess.api.models")


def test_the_request_path_stays_lean() -> None:
    code = (
        "import sys\n"
        "from jitaccess.cli import main, parser, request, decisions, views, session, kube\n"
        "parser.build_parser().parse_args(['request', 'x', '--for', '1h', '--timeout', '1m'])\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", done.stdout


def test_reports_import_boto3_only_when_an_archive_is_read() -> None:
    code = (
        "import sys\n"
        "from jitaccess.cli import reports, history, archive, completion\n"
        "from jitaccess.cli.parser import build_parser\n"
        "build_parser().parse_args(['audit', '--since', '7d', '-o', 'csv'])\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", done.stdout

"""AWS settings the S3 client cannot be made with (a profile that does not exist, an endpoint URL
without its scheme) end `audit` as the archive's other AWS setup errors do: exit 5, one line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from jitaccess.cli import main
from jitaccess.cli.errors import UNREACHABLE


@pytest.fixture(autouse=True)
def aws_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "aws-config").write_text("")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    # No cluster: --verify reads only the archive, and a plain audit from it must not get that far.
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-kubeconfig"))


@pytest.mark.parametrize(
    ("variable", "value", "words"),
    [
        ("AWS_PROFILE", "nope", r"\(The config profile \(nope\) could not be found\): check your AWS credentials"),
        (
            "AWS_ENDPOINT_URL_S3",
            "localhost:4566",
            r"\(Invalid endpoint: localhost:4566\): check your AWS settings: AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL "
            r"is a URL with its scheme \(http://localhost:4566\)",
        ),
    ],
)
@pytest.mark.parametrize("verify", [True, False])
def test_aws_settings_the_client_cannot_be_made_with(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    variable: str,
    value: str,
    words: str,
    verify: bool,
) -> None:
    monkeypatch.setenv(variable, value)
    argv = ["audit", "--archive", "s3://audit-archive/prod", *(["--verify"] if verify else [])]
    assert main.main(argv) == UNREACHABLE
    said = capsys.readouterr()
    assert said.out == ""
    assert len(said.err.splitlines()) == 1
    assert re.match(rf"^error: cannot read the audit archive s3://audit-archive/prod {words}", said.err), said.err
    if not verify:
        assert said.err.endswith(", or give --archive '' to read the cluster instead\n")

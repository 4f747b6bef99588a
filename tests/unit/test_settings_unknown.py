"""A `JITACCESS_*` variable that is no setting is named at start with the setting it is closest to
(settings.warn_of_unknown): a misspelt setting would otherwise be ignored without a word."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from devenv.paths import REPO
from jitaccess.settings import OTHER_PROGRAMS, TESTS_PREFIX, Settings, unknown_variables, warn_of_unknown

#: Misspelt on purpose, and left out of the repository's scan below.
THIS_FILE = Path(__file__).resolve()
NAME = re.compile(r"JITACCESS_[A-Z0-9_]*")


def test_a_misspelt_setting_is_named_with_the_closest_one() -> None:
    environ = {
        "JITACCESS_MAX_PENDNIG_PER_USER": "3",
        "JITACCESS_SLACK_BOT_TOKEN": "xoxb-secret",
        "JITACCESS_REGOIN": "eu-west-1",
        "JITACCESS_NOTHING_LIKE_IT": "1",
        "JITACCESS_RATE_LIMIT": "5",  # a setting
        "jitaccess_resync_seconds": "30",  # a setting too: pydantic-settings reads names in any case
        "PATH": "/usr/bin",
    }
    assert unknown_variables(environ) == {
        "JITACCESS_MAX_PENDNIG_PER_USER": "JITACCESS_MAX_PENDING_PER_USER",
        "JITACCESS_NOTHING_LIKE_IT": None,
        "JITACCESS_REGOIN": "JITACCESS_REGION",
        "JITACCESS_SLACK_BOT_TOKEN": "JITACCESS_SLACK_TOKEN",
    }


def test_the_tests_and_the_other_programs_variables_are_not_warned_of() -> None:
    """The end-to-end tier starts the operator from its own environment (JITACCESS_E2E_REPLICAS=2 in
    `make replicas`), and a developer's shell has the tools' variables: none is a misspelling."""
    environ = {f"{TESTS_PREFIX}REPLICAS": "2", f"{TESTS_PREFIX}ANYTHING_NEW": "1"} | dict.fromkeys(OTHER_PROGRAMS, "x")
    assert unknown_variables(environ) == {}
    assert not any(name.removeprefix("JITACCESS_").lower() in Settings.model_fields for name in OTHER_PROGRAMS)


def test_each_is_logged_by_name_never_with_its_value(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="jitaccess.settings"):
        warn_of_unknown({"JITACCESS_SLACK_BOT_TOKEN": "xoxb-secret", "JITACCESS_NOTHING_LIKE_IT": "1"})
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        (
            "WARNING",
            "JITACCESS_NOTHING_LIKE_IT is set but is no setting of the operator, and is ignored: "
            "the settings are in docs/install.md#values",
        ),
        (
            "WARNING",
            "JITACCESS_SLACK_BOT_TOKEN is set but is no setting of the operator, and is ignored: "
            "did you mean JITACCESS_SLACK_TOKEN?",
        ),
    ]
    assert "xoxb-secret" not in caplog.text


def test_the_operator_warns_at_start_in_its_log_format(tmp_path: Path) -> None:
    """`main` warns once logging is set up, so the line is a JSON object like every other; it goes on
    starting (a retired setting left in a manifest must not stop a running fleet on upgrade)."""
    started = textwrap.dedent(
        """
        import jitaccess.main as main

        async def run(config, liveness):
            print("running with max_pending_per_user", config.max_pending_per_user)
            return False

        main.run = run
        main.memory.start = lambda: None
        main.main([])
        """
    )
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    clean = {k: v for k, v in os.environ.items() if not k.upper().startswith("JITACCESS_")}
    environ = clean | {
        "JITACCESS_LOG_FORMAT": "json",
        "JITACCESS_MAX_PENDNIG_PER_USER": "3",
        "JITACCESS_E2E_REPLICAS": "2",
        "KUBECONFIG": str(kubeconfig),  # outside a pod, one is needed to start (settings.kubeconfig_files)
        "PYTHONPATH": os.pathsep.join([str(REPO / "operator"), str(REPO)]),
    }
    result = subprocess.run(
        [sys.executable, "-c", started], env=environ, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "running with max_pending_per_user 5" in result.stdout  # the misspelt one changed nothing
    lines = [json.loads(line) for line in result.stderr.splitlines() if '"jitaccess.settings"' in line]
    assert [(line["level"], line["message"]) for line in lines] == [
        (
            "WARNING",
            "JITACCESS_MAX_PENDNIG_PER_USER is set but is no setting of the operator, and is ignored: "
            "did you mean JITACCESS_MAX_PENDING_PER_USER?",
        )
    ]


def test_the_repository_reads_no_variable_the_operator_would_warn_of() -> None:
    """Every `JITACCESS_*` name in the code, the tests' tools and the chart is a setting, another
    program's (settings.OTHER_PROGRAMS) or the end-to-end tier's: a tool given a new variable is
    added there, or every operator started beside it would warn."""
    names: set[str] = set()
    for top in ("operator", "devenv", "tests", "bench", "charts"):
        for path in (REPO / top).rglob("*"):
            if path.suffix in {".py", ".sh", ".yaml", ".tpl", ".txt"} and path != THIS_FILE:
                names |= set(NAME.findall(path.read_text(errors="replace")))
    names |= set(NAME.findall((REPO / "Makefile").read_text()))
    names = {name for name in names if not name.endswith("_")}  # prefixes: JITACCESS_SLACK_, f"JITACCESS_{...}"
    assert len(names) > 40, sorted(names)
    assert unknown_variables(dict.fromkeys(names, "")) == {}

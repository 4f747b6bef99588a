"""Shared pytest set-up: the control-plane and Identity Center fixtures are a plugin, and the
suite splits into two lanes that `make test` runs at once (tests/lanes.sh).

Most of an end-to-end test's time is waiting on processes (the API server, the operator, the
emulator), so two pytest processes, each with a control plane of its own, finish in about two
thirds of the time one takes, even on two cores. `--lane=e2e`: the end-to-end tier but for the
files in `BESIDE`; `--lane=rest`: everything else (unit, component, node, and `BESIDE`), which
the lanes script follows with the two-replica tier. An item goes to exactly one lane, so a new
test file cannot fall between them. `BESIDE` balances the lanes: measured per file (pytest's
`--junitxml` times), moved until both take about as long.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["tests.support.fixtures"]

E2E = Path(__file__).parent / "e2e"
#: End-to-end files run in the `rest` lane (about 280 s of the e2e lane's 2,370 s when measured).
BESIDE = frozenset({"test_audit_archive.py", "test_chart.py"})
LANES = ("e2e", "rest")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--lane", choices=LANES, default=None, help="run one of the two lanes `make test` runs at once (tests/lanes.sh)"
    )


def lane_of(path: Path) -> str:
    return "e2e" if path.parent == E2E and path.name not in BESIDE else "rest"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    lane = config.getoption("lane")
    if lane is None:
        return
    lanes = {item.nodeid: lane_of(item.path) for item in items}
    config.hook.pytest_deselected(items=[item for item in items if lanes[item.nodeid] != lane])
    items[:] = [item for item in items if lanes[item.nodeid] == lane]

#!/usr/bin/env bash
# Every test, in two lanes at once (tests/conftest.py says why and how items are split):
#   [e2e]  the end-to-end tier against one operator;
#   [rest] unit, component, node and the rest of the end-to-end files, then the attack suites and
#          leader election again against two replicas, the leader stopped (`make replicas`).
# Each lane prints its lines prefixed with its name as they come, and its slowest tests at the end;
# the exit status is the first failing lane's. A failing lane's failures are printed again last:
# the two lanes' lines interleave, and a CI log is often read from its tail only.
# Run through `make test`, which lints first.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
pytest=("$PY" -m pytest -p no:cacheprovider --durations=10)

# Either lane interrupted or killed takes the other with it: no control plane is left running.
trap 'trap - INT TERM; kill 0 2>/dev/null' INT TERM
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT

(
    "${pytest[@]}" --lane=e2e 2>&1 | sed -u 's/^/[e2e]  /' | tee "$logs/e2e"
) &
e2e=$!
(
    { "${pytest[@]}" --lane=rest && "${MAKE:-make}" --no-print-directory replicas PYTEST_ARGS=--durations=10; } 2>&1 |
        sed -u 's/^/[rest] /' | tee "$logs/rest"
) &
rest=$!

wait "$e2e"
e2e_status=$?
wait "$rest"
rest_status=$?
echo "lanes: e2e exit ${e2e_status}, rest exit ${rest_status}"
for lane in e2e rest; do
    status_var="${lane}_status"
    if [ "${!status_var}" -ne 0 ]; then
        echo "lanes: what failed in ${lane}:"
        # pytest's short summary (the tests that failed), then the last assertion lines; a lane
        # that failed before pytest could summarise (a usage error, a crash) shows its last lines.
        grep -E '^\[[a-z0-9]+\] +(FAILED|ERROR)' "$logs/$lane" | tail -n 40 || tail -n 40 "$logs/$lane"
        grep -E '^\[[a-z0-9]+\] +E   ' "$logs/$lane" | tail -n 20
    fi
done
[ "$e2e_status" -eq 0 ] || exit "$e2e_status"
exit "$rest_status"

"""jitaccess benchmarks: how fast access arrives and leaves, and how far the operator scales.

`python -m bench` (or `make bench`) starts the local system (a real control plane, the Identity
Center emulator, the operator as a subprocess with its admission webhooks), runs the scenarios of
`bench.scenarios`, prints a table and writes `bench/results/latest.json`. See bench/README.md.

Modules, each importing only downward:

- `membership`: a timestamped log of the emulator's group memberships (exact, no polling);
- `watcher`: a watch on AccessGrants recording when each one first showed each `Ready` reason;
- `system`: the system under test, its bench users, and a reset between scenarios;
- `scenarios`: one function per measurement;
- `notifications`: the approvers' Slack message, with the local Slack stand-in;
- `report`: the machine, the table and the JSON file.
"""

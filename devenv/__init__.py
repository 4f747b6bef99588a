"""Development and test environment for jitaccess, run entirely on one machine; never shipped.

- `controlplane`: a real Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager)
  from the project's own multi-call binary, with test users;
- `pki`, `kubeconfigs`, `processes`: its certificates, its kubeconfigs, its child processes;
- `mint`: a kubeconfig for any user name and groups while the control plane runs;
- `emulator`: an AWS IAM Identity Center (identitystore) emulator on top of moto, made strict by
  `strict_moto` (and `update_user`), with HTTP fault injection from `faults`;
- `operator_process`: the operator as a subprocess, exactly as in production, and its supervisor;
- `dev`: `make dev`, the whole system in one command.

Tests (tests/support), benchmarks (bench/) and the local run are built on these; the operator and
the CLI never import them (an import-linter contract in pyproject.toml).
"""

"""Development and test environment for jitaccess, run entirely on one machine.

`controlplane` starts a real Kubernetes control plane (etcd, kube-apiserver,
kube-controller-manager) from the project's own multi-call binary, with test users;
`emulator` serves an AWS IAM Identity Center (identitystore) emulator on top of moto,
corrected to behave as AWS does and able to inject faults.  Tests, benchmarks and the
local "run it now" mode are built on these two.
"""

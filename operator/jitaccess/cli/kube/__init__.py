"""The plugin's own Kubernetes client: the only part of `kubectl jit` that talks to the API server.

    kubeconfig  kubeconfig loading as kubectl does it: `$KUBECONFIG` lists merged, contexts,
                tokens and token files, client certificates, basic auth, exec credential plugins
                (v1 and v1beta1, KUBERNETES_EXEC_INFO, token or certificate), impersonation,
                proxy-url, tls-server-name, a pod's service account (in-cluster)
    api         a REST and watch client on the standard library: JSON in and out, one
                keep-alive connection, watches as newline-delimited event streams

Contract (import-linter, pyproject.toml): the rest of the CLI imports this package, never its
modules, and never http.client, ssl, socket or urllib itself; nothing in the CLI imports
`kubernetes`, kopf, boto3 or pydantic, except the legacy `auth-provider` fallback in
`kubeconfig`, which only a kubeconfig with such a user reaches. What the CLI may rely on:

    load_credentials(kubeconfig, context, as, as_groups) -> Credentials   (errors: Unreachable, UsageError)
    KubeApi(credentials, timeout): get, create (dry_run), merge_patch, watch, close
        -> decoded JSON dicts; ApiError (the server's Status: status, reason, message, details)
        or Unreachable (exit 5) with what to do (`errors.Disconnected`, one of them, when the
        connection failed or dropped: a wait tries again)
    object_path(group, version, plural, name)     (an empty name: UsageError, never the collection's path)
    context_names(kubeconfig)                     (for completion)

Why not a library: lightkube 1.0.1 (httpx2, msgspec), measured 2026-11-30 on the 2-core dev
machine against the local control plane and operator of bench/cli_latency.py, each command a new
process, 50 runs per client interleaved; the prototype served this package's interface from
lightkube's public API (Client, generic resources), so only the client differed. Milliseconds,
median (p90); of two runs, the first line is a quiet machine, the second one under other load:

                                           this package           lightkube
    import, above a bare interpreter       56                     146
    kubectl jit list (one round trip)      102 (p90 123)          224 (p90 305)
                                           195 (p90 556)          467 (p90 1592)
    kubectl jit request --wait             146 (p90 199)          257 (p90 343)
      (auto-approved, to "obtained")       274 (p90 676)          479 (p90 1353)

lightkube stays under the 0.5 s budget but spends 0.1 to 0.2 s more per command, and it lacks what
kubeconfigs in use need: exec plugins of `client.authentication.k8s.io/v1`, KUBERNETES_EXEC_INFO
(interactive and provideClusterInfo plugins) and plugins that return client certificates;
`$KUBECONFIG` lists of several files; tls-server-name, proxy-url and impersonation (as, --as).
"""

from jitaccess.cli.kube.api import ApiError, KubeApi, object_path
from jitaccess.cli.kube.kubeconfig import Credentials, context_names, load_credentials

__all__ = ["ApiError", "Credentials", "KubeApi", "context_names", "load_credentials", "object_path"]

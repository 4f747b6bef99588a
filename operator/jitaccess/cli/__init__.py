"""`kubectl jit`, the kubectl plugin of jitaccess (executable `kubectl-jit`).

    main        dispatch: one command, its errors as one line on stderr and an exit code
    parser      the argument parser and its help texts (shared with completion)
    session     one invocation: API client, identity (SelfSubjectReview), terminal streams
    request     `request`: propose, ask, dry-run, create, watch until granted
    decisions   `approve`, `deny`, `revoke`, `done`: annotations with early, clear refusals
    views       `list`, `status`, `who-has`
    reports     `audit` and `review`: the decision records, and an entitlement's access review
    history     where those records come from: the audit archive when configured, else the cluster
    archive     reading the audit archive in S3 (the plugin's only boto3 import)
    completion  bash and zsh scripts, and the `__complete` protocol kubectl also speaks
    objects     the jitaccess objects as plain dicts, and the caller's identity
    kube        the plugin's own Kubernetes client (kubeconfig, REST and watch), its only HTTP
    prompts     questions on the terminal, only when there is one
    text        ages, expiry times, tables, JSON and YAML
    errors      the exit-code table (printed by --help) and the errors that carry the codes

The plugin stays off the `kubernetes` package, pydantic, kopf and boto3 on its fast paths:
their imports alone would take longer than the whole request.
"""

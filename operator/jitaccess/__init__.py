"""jitaccess: just-in-time access to production AWS roles, as a Kubernetes operator.

Engineers ask for an Entitlement with an AccessRequest; the operator checks eligibility,
routes the request to auto-approval or to the owner team's approvers, and turns an approved
request into an AccessGrant: a time-boxed membership in an AWS IAM Identity Center group,
removed when the time runs out.
"""

__version__ = "0.1.0"

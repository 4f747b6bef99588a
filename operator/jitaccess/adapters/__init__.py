"""The only code that talks to AWS (boto3) or Kubernetes (client) directly."""

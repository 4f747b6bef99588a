"""The four kinds as pydantic models, and the CRDs generated from them (pure: no I/O)."""

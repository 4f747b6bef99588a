"""The four kinds as pydantic models, the CRDs generated from them, the API's names, and reading
objects as plain dicts (pure: no I/O). `names` and `wire` are standard library only: the plugin
imports them on its fast path, so this package imports nothing itself.
"""

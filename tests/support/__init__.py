"""What the component and end-to-end tiers and the benchmarks share: fixtures and the harness.

No tier imports another tier's modules (an import-linter contract in pyproject.toml); what more
than one needs lives here, on top of the development environment (`devenv`).
"""

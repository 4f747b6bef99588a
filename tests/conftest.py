"""Shared pytest set-up: the control-plane and Identity Center fixtures are a plugin."""

pytest_plugins = ["tests.support.fixtures"]

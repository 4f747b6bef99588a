"""Which handlers run where: the admission part on every replica, the controller on the leader."""

from __future__ import annotations

import kopf

import jitaccess.handlers  # noqa: F401  (registers the handlers with kopf's default registry)
from jitaccess.handlers import parts


def _names(registry: kopf.OperatorRegistry) -> set[str]:
    return {
        f"{handler.fn.__module__}.{handler.fn.__name__}"
        for kind in ("_activities", "_indexing", "_watching", "_spawning", "_changing", "_webhooks")
        for handler in getattr(registry, kind).get_all_handlers()
    }


def test_a_standby_keeps_the_expiry_schedule_warm_and_acts_on_nothing() -> None:
    split = parts.split(kopf.get_default_registry())
    admission, controller = _names(split.admission), _names(split.controller)
    assert "jitaccess.handlers.expiry.schedule_expiry" in admission & controller
    # What changes grants (provisioning, the scheduler's start) stays with the leader.
    assert "jitaccess.handlers.grants.provision_grant" in controller - admission
    assert "jitaccess.handlers.expiry.start_expiry" in controller - admission

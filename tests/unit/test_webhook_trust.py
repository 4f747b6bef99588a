"""Every replica keeps checking that the webhook configurations call it and trust its certificate
(`handlers.startup`): not only until the first success, but every 30 s and at once when its
certificate changes, and the probe then says what it found without failing liveness."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from typing import Any

import kopf
import kubernetes
import pytest
from prometheus_client import REGISTRY

from jitaccess import metrics
from jitaccess.adapters import webhooks
from jitaccess.adapters.webhooks import WebhookServer
from jitaccess.handlers import startup


def gauge() -> float | None:
    return REGISTRY.get_sample_value(metrics.WEBHOOK_CONFIGURED._name)


def server() -> WebhookServer:
    return WebhookServer(operator_usernames=["op"], addr="127.0.0.1", port=1)


def test_the_probe_fails_until_first_in_place_then_reports_without_failing(monkeypatch: pytest.MonkeyPatch) -> None:
    settings, memo = kopf.OperatorSettings(), kopf.Memo()
    settings.admission.server = serving = server()
    with pytest.raises(kopf.TemporaryError, match="not serving yet"):
        startup.webhooks_configured(settings=settings, memo=memo)
    serving.expected = [{"kind": "ValidatingWebhookConfiguration"}]
    monkeypatch.setattr(
        startup, "configuration_problem", lambda _: "webhook x does not trust this server's certificate"
    )
    with pytest.raises(kopf.TemporaryError, match="not in place yet"):
        startup.webhooks_configured(settings=settings, memo=memo)
    monkeypatch.setattr(startup, "configuration_problem", lambda _: None)
    assert startup.webhooks_configured(settings=settings, memo=memo) == "configured"
    assert gauge() == 1

    trust = memo[startup._TRUST]
    trust.found("webhook x does not trust this server's certificate yet")  # a later check
    answer = startup.webhooks_configured(settings=settings, memo=memo)  # no exception: liveness holds
    assert answer == "NOT CALLABLE: webhook x does not trust this server's certificate yet"
    assert gauge() == 0
    trust.found(None)
    assert startup.webhooks_configured(settings=settings, memo=memo) == "configured"
    assert gauge() == 1


def test_a_lost_trust_is_logged_once_and_its_return_too(caplog: pytest.LogCaptureFixture) -> None:
    trust = startup.WebhookTrust()
    with caplog.at_level(logging.INFO, logger=startup.log.name):
        trust.found("not yet")  # at start-up: the probe says so, no ERROR
        trust.found(None)
        trust.found("caBundle replaced")
        trust.found("caBundle replaced")
        trust.found(None)
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "caBundle replaced" in errors[0].getMessage()
    assert "every user's write" in errors[0].getMessage()
    assert [r.getMessage() for r in caplog.records if "again" in r.getMessage() and r.levelno == logging.INFO]


def test_until_first_in_place_the_log_says_why_at_each_new_finding(caplog: pytest.LogCaptureFixture) -> None:
    """The replica is not ready meanwhile: its log, not only /healthz's body, says what differs."""
    trust = startup.WebhookTrust()
    differs = "ValidatingWebhookConfiguration jitaccess.dev webhook w calls {'url': 'x'}, not this server (...)"
    with caplog.at_level(logging.INFO, logger=startup.log.name):
        trust.found(differs)
        trust.found(differs)  # checked again 5 s later: said once
        trust.found("MutatingWebhookConfiguration jitaccess.dev cannot be read (403 Forbidden)")
        trust.found(None)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2, warnings
    assert warnings[0].startswith(f"admission webhooks not in place yet: {differs}; this replica reports itself not")
    assert "403 Forbidden" in warnings[1]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def until(check: Any, timeout: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        assert loop.time() < deadline, "not in time"
        await asyncio.sleep(0.01)


async def test_checked_again_periodically_and_at_once_on_a_new_certificate(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = kopf.OperatorSettings()
    settings.admission.server = serving = server()
    loop = asyncio.get_running_loop()
    checked: list[tuple[float, Any]] = []
    answers = iter([None, "does not trust this server's certificate", None, None, None])

    def problem(expected: Any) -> str | None:
        checked.append((loop.time(), expected))
        return next(answers)

    monkeypatch.setattr(startup, "_problem", problem)
    monkeypatch.setattr(startup, "TRUST_CHECK_SECONDS", 0.5)
    monkeypatch.setattr(startup, "UNTRUSTED_CHECK_SECONDS", 0.1)
    monkeypatch.setattr(startup, "LOOK_SECONDS", 0.05)
    trust = startup.WebhookTrust()
    task = asyncio.create_task(startup._keep_checking(settings, trust))
    try:
        await asyncio.sleep(0.1)
        assert checked == []  # not serving yet: nothing to check
        first = serving.expected = [{"kind": "first"}]
        await until(lambda: len(checked) == 1)
        assert checked[0][1] is first and trust.problem is None and trust.confirmed
        await until(lambda: len(checked) == 2)  # checked again, after the period: the trust is gone
        assert checked[1][0] - checked[0][0] >= 0.45 and trust.problem is not None
        await until(lambda: len(checked) == 3)  # sooner while not trusted: back
        assert checked[2][0] - checked[1][0] < 0.4 and trust.problem is None
        renewed = serving.expected = [{"kind": "renewed"}]
        await until(lambda: len(checked) == 4)  # a new certificate: at once, not after the period
        assert checked[3][1] is renewed and checked[3][0] - checked[2][0] < 0.3
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def test_a_configuration_read_held_open_is_a_finding_not_a_stopped_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """An API server that accepts the read and never answers: the check ends with a problem after
    `READ_TIMEOUT`, so the checks go on (and the gauge says 0) instead of waiting for good."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        config = kubernetes.client.Configuration()
        config.host = f"http://127.0.0.1:{silent.getsockname()[1]}"
        monkeypatch.setattr(kubernetes.client.Configuration, "_default", config)
        monkeypatch.setattr(webhooks, "READ_TIMEOUT", 0.5)
        started = time.monotonic()
        problem = startup._problem([{"kind": webhooks.VALIDATING, "metadata": {"name": "x"}, "webhooks": []}])
        assert time.monotonic() - started < 5
    assert isinstance(problem, webhooks.Unreadable) and "cannot be read" in problem


# --- a webhook narrowed, or the admission policy gone (attack 146) -------------------------------

NARROWED = webhooks.Unchecked(
    "ValidatingWebhookConfiguration jitaccess.dev webhook accessrequests-check.jitaccess.dev has matchConditions "
    "[...], where the operator defines none"
)


def test_a_narrowed_webhook_is_logged_as_writes_unchecked_not_refused(caplog: pytest.LogCaptureFixture) -> None:
    trust = startup.WebhookTrust()
    with caplog.at_level(logging.INFO, logger=startup.log.name):
        trust.found(None)
        trust.found(NARROWED)
        assert gauge() == 0
        trust.found(NARROWED)
        trust.found(None)
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and errors[0].startswith(f"admission webhooks: {NARROWED}; "), errors
    assert "go through unchecked" in errors[0] and "every user's write" not in errors[0]
    fixed = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO and "again" in r.getMessage()]
    assert len(fixed) == 1 and str(NARROWED) in fixed[0]
    assert gauge() == 1


def test_the_probe_says_a_narrowed_webhook_is_not_as_defined(monkeypatch: pytest.MonkeyPatch) -> None:
    settings, memo = kopf.OperatorSettings(), kopf.Memo()
    settings.admission.server = serving = server()
    serving.expected = [{"kind": "ValidatingWebhookConfiguration"}]
    monkeypatch.setattr(startup, "configuration_problem", lambda _: None)
    assert startup.webhooks_configured(settings=settings, memo=memo) == "configured"
    memo[startup._TRUST].found(NARROWED)
    assert startup.webhooks_configured(settings=settings, memo=memo) == f"NOT AS DEFINED: {NARROWED}"


def test_before_the_first_check_a_narrowed_webhook_holds_no_readiness(monkeypatch: pytest.MonkeyPatch) -> None:
    """The API server calls this server: a replica out of the Service would change nothing. A cluster
    that changes every webhook configuration kept every replica unready at every restart, and the
    webhooks, failing closed, refused every write."""
    settings, memo = kopf.OperatorSettings(), kopf.Memo()
    settings.admission.server = serving = server()
    serving.expected = [{"kind": "ValidatingWebhookConfiguration"}]
    monkeypatch.setattr(startup, "configuration_problem", lambda _: NARROWED)
    assert startup.webhooks_configured(settings=settings, memo=memo) == f"NOT AS DEFINED: {NARROWED}"
    assert memo[startup._TRUST].confirmed and gauge() == 0
    more = webhooks.Broadened("webhook w has matchConditions None, not [...]: called for more writes than defined")
    settings.admission.server = serving = server()
    serving.expected, memo = [{"kind": "ValidatingWebhookConfiguration"}], kopf.Memo()
    monkeypatch.setattr(startup, "configuration_problem", lambda _: more)
    assert startup.webhooks_configured(settings=settings, memo=memo) == f"NOT AS DEFINED: {more}"


@pytest.mark.parametrize(
    "problem",
    [
        "webhook w does not trust this server's certificate yet",
        webhooks.Unreadable("ValidatingWebhookConfiguration jitaccess.dev cannot be read (403 Forbidden)"),
    ],
)
def test_before_the_first_check_a_webhook_not_calling_or_not_read_holds_readiness(
    monkeypatch: pytest.MonkeyPatch, problem: str
) -> None:
    settings, memo = kopf.OperatorSettings(), kopf.Memo()
    settings.admission.server = serving = server()
    serving.expected = [{"kind": "ValidatingWebhookConfiguration"}]
    monkeypatch.setattr(startup, "configuration_problem", lambda _: problem)
    with pytest.raises(kopf.TemporaryError, match="not in place yet"):
        startup.webhooks_configured(settings=settings, memo=memo)
    assert not memo[startup._TRUST].confirmed


def test_a_webhook_called_for_more_writes_is_a_warning_not_writes_unchecked(caplog: pytest.LogCaptureFixture) -> None:
    trust = startup.WebhookTrust()
    more = webhooks.Broadened("webhook w has matchConditions None, not [...]: called for more writes than defined")
    with caplog.at_level(logging.INFO, logger=startup.log.name):
        trust.found(more)  # at start-up too: the replica is ready, the log says what differs
        assert trust.confirmed and gauge() == 0
        trust.found(more)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and warnings[0].startswith(f"admission webhooks: {more}; nothing goes through")
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_a_configuration_that_cannot_be_read_is_not_said_to_refuse_writes(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    settings, memo = kopf.OperatorSettings(), kopf.Memo()
    settings.admission.server = serving = server()
    serving.expected = [{"kind": "ValidatingWebhookConfiguration"}]
    monkeypatch.setattr(startup, "configuration_problem", lambda _: None)
    assert startup.webhooks_configured(settings=settings, memo=memo) == "configured"
    unread = webhooks.Unreadable("ValidatingWebhookConfiguration jitaccess.dev cannot be read (503 Unavailable)")
    with caplog.at_level(logging.INFO, logger=startup.log.name):
        memo[startup._TRUST].found(unread)
    assert startup.webhooks_configured(settings=settings, memo=memo) == f"NOT CHECKED: {unread}"
    (error,) = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert "is not known" in error and "refused" not in error


def test_the_admission_policy_is_logged_when_it_goes_and_when_it_is_back(caplog: pytest.LogCaptureFixture) -> None:
    """A one-off problem leaves its two lines in the log, not only a gauge a scrape may miss."""
    trust = startup.WebhookTrust(policy_name="jitaccess-identity")
    gone = webhooks.Unchecked("ValidatingAdmissionPolicyBinding jitaccess-identity does not exist")
    with caplog.at_level(logging.INFO, logger=startup.log.name):
        trust.found(None)
        trust.found_policy(None)
        assert gauge() == 1
        trust.found_policy(gone)
        assert gauge() == 0
        trust.found(None)  # the webhooks' check does not hide it
        assert gauge() == 0
        trust.found_policy(gone)
        trust.found_policy(None)
        assert gauge() == 1
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and errors[0].startswith(f"admission policy: {gone}; "), errors
    assert "lets writes through" in errors[0]
    back = [r.getMessage() for r in caplog.records if "admission policy in place again" in r.getMessage()]
    assert len(back) == 1 and str(gone) in back[0]


async def test_the_admission_policy_is_checked_with_the_webhooks_when_named(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = kopf.OperatorSettings()
    settings.admission.server = serving = server()
    serving.expected = [{"kind": "first"}]
    asked: list[str] = []
    answers = iter([webhooks.Unchecked("ValidatingAdmissionPolicy p does not exist"), None])

    def policy(name: str) -> str | None:
        asked.append(name)
        return next(answers, None)

    monkeypatch.setattr(startup, "_problem", lambda expected: None)
    monkeypatch.setattr(startup, "_policy_problem", policy)
    monkeypatch.setattr(startup, "TRUST_CHECK_SECONDS", 5.0)
    monkeypatch.setattr(startup, "UNTRUSTED_CHECK_SECONDS", 0.1)
    monkeypatch.setattr(startup, "LOOK_SECONDS", 0.05)
    unnamed, named = startup.WebhookTrust(), startup.WebhookTrust(policy_name="p")
    tasks = [asyncio.create_task(startup._keep_checking(settings, trust)) for trust in (unnamed, named)]
    try:
        await until(lambda: named.policy_problem is not None)
        assert unnamed.confirmed and unnamed.policy_problem is None
        # Not in place: checked again soon, as the webhooks are, not after the long period.
        await until(lambda: len(asked) == 2, timeout=2)
        assert named.policy_problem is None and asked == ["p", "p"]
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def test_a_policy_read_that_fails_is_a_finding(monkeypatch: pytest.MonkeyPatch) -> None:
    def failing(name: str) -> None:
        raise ConnectionError("refused")

    monkeypatch.setattr(startup, "policy_problem", failing)
    problem = startup._policy_problem("p")
    assert isinstance(problem, webhooks.Unchecked) and problem == "the admission policy p cannot be read (refused)"

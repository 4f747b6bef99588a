"""A bad setting stops the operator at once with what to fix, never with a traceback (settings.load)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import kopf
import pytest
from annotated_types import Le
from pydantic import ValidationError

from jitaccess import settings
from jitaccess.handlers import interactions
from jitaccess.handlers.notifications import config_of
from jitaccess.main import log_in_as_kubectl_would
from jitaccess.settings import FILE_SETTINGS, TEN_YEARS, Settings, SettingsError, kubeconfig_files, load

#: This tree's operator package: `python -m jitaccess` must start this code, not whatever tree the
#: virtualenv's editable install points at (a venv shared between checkouts).
OPERATOR_SOURCE = Path(__file__).resolve().parents[2] / "operator"


def _start(**env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("JITACCESS_")}
    path = os.pathsep.join(p for p in (str(OPERATOR_SOURCE), clean.get("PYTHONPATH", "")) if p)
    return subprocess.run(
        [sys.executable, "-m", "jitaccess"],
        env={**clean, "PYTHONPATH": path, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_operator_names_each_bad_variable_and_stops() -> None:
    result = _start(JITACCESS_MAX_PENDING_PER_USER="-1", JITACCESS_RATE_LIMIT="fast")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("jitaccess cannot start: fix these settings")
    assert any(
        line.startswith("- JITACCESS_MAX_PENDING_PER_USER='-1': Input should be greater than or equal to 0")
        and "one per entitlement" in line
        for line in lines
    ), lines
    assert any(line.startswith("- JITACCESS_RATE_LIMIT='fast': Input should be a valid number") for line in lines)


def test_leader_election_timing_that_could_split_the_brain_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JITACCESS_LEADER_ELECTION", "true")
    monkeypatch.setenv("JITACCESS_RENEW_DEADLINE_SECONDS", "20")
    with pytest.raises(SettingsError) as caught:
        load()
    assert caught.value.code == (
        "jitaccess cannot start: fix these settings (environment variables; the chart's config values):\n"
        "- leader election needs JITACCESS_RETRY_PERIOD_SECONDS < JITACCESS_RENEW_DEADLINE_SECONDS < "
        "JITACCESS_LEASE_DURATION_SECONDS, and they are 2, 20 and 12: a leader must stop acting before anyone "
        "else may take its Lease"
    )
    monkeypatch.setenv("JITACCESS_LEADER_ELECTION", "false")  # one replica: no Lease to take
    assert load().renew_deadline_seconds == 20


@pytest.mark.parametrize(
    ("value", "complaint"),
    [
        ("-60", "Input should be greater than or equal to 1"),
        ("0", "Input should be greater than or equal to 1"),
        ("1h", "Input should be a valid number"),
        ("", "Input should be a valid number"),
    ],
)
def test_a_drift_notices_wait_that_is_no_time_is_refused_by_name(
    monkeypatch: pytest.MonkeyPatch, value: str, complaint: str
) -> None:
    """A negative or zero wait would let a deleted Entitlement go before the notifier could tell its
    drift removals even with Slack up; a duration written as the chart's other values are not (1h) is a
    typo. Refused at start, naming the variable, what it is for and what is wrong."""
    monkeypatch.setenv("JITACCESS_DRIFT_NOTICES_HOLD_DELETION_SECONDS", value)
    with pytest.raises(SettingsError) as caught:
        load()
    (line,) = [line for line in str(caught.value.code).splitlines() if line.startswith("- ")]
    assert line.startswith(f"- JITACCESS_DRIFT_NOTICES_HOLD_DELETION_SECONDS={value!r}: {complaint}"), line
    assert "notices of its drift removals" in line, line


def test_the_drift_notices_wait_is_an_hour_unless_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JITACCESS_DRIFT_NOTICES_HOLD_DELETION_SECONDS", raising=False)
    assert config_of(load()).drift_hold_deletion == timedelta(hours=1)
    monkeypatch.setenv("JITACCESS_DRIFT_NOTICES_HOLD_DELETION_SECONDS", "30")
    assert config_of(load()).drift_hold_deletion == timedelta(seconds=30)


SECONDS = sorted(name for name in Settings.model_fields if name.endswith("_seconds"))


def test_every_time_in_seconds_is_at_most_ten_years() -> None:
    assert len(SECONDS) >= 10, SECONDS
    for name in SECONDS:
        assert [m.le for m in Settings.model_fields[name].metadata if isinstance(m, Le)] == [TEN_YEARS], name


@pytest.mark.parametrize("name", SECONDS)
def test_a_time_beyond_ten_years_is_refused_by_name(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """Dates computed from it would overflow later, where they are computed: refused at start."""
    for key in [k for k in os.environ if k.startswith("JITACCESS_")]:
        monkeypatch.delenv(key)
    variable = f"JITACCESS_{name.upper()}"
    monkeypatch.setenv(variable, str(TEN_YEARS))
    assert getattr(load(), name) == TEN_YEARS
    for too_long in (str(TEN_YEARS + 1), "1e12"):
        monkeypatch.setenv(variable, too_long)
        with pytest.raises(SettingsError) as caught:
            load()
        assert f"- {variable}={too_long!r}: Input should be at most ten years, 315360000 seconds" in str(
            caught.value.code
        )


FLOATS = sorted(name for name, field in Settings.model_fields.items() if field.annotation in (float, float | None))


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "NaN", "Infinity"])
@pytest.mark.parametrize("name", FLOATS)
def test_a_number_that_is_not_finite_is_refused_by_name(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    """`nan` fails every bound (and was refused as "at most ten years", or "at least 0"), and `inf` passed
    where there is no upper bound: a rate limit of inf meant no limit by accident."""
    assert "rate_limit" in FLOATS
    line = _refused(monkeypatch, f"JITACCESS_{name.upper()}", value)
    assert line.endswith(": Input should be a finite number") or ": Input should be a finite number (" in line, line


def _refused(monkeypatch: pytest.MonkeyPatch, variable: str, value: str) -> str:
    """The one line `load()` gives for `variable=value`, all other settings unset."""
    for key in [k for k in os.environ if k.startswith("JITACCESS_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as caught:
        load()
    lines = str(caught.value.code).splitlines()[1:]
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"- {variable}={value!r}: "), lines
    return lines[0]


@pytest.mark.parametrize(
    "groups", ["system:authenticated", "sre, system:masters", "system:serviceaccounts", "system:unauthenticated"]
)
def test_a_system_group_of_responders_is_refused(monkeypatch: pytest.MonkeyPatch, groups: str) -> None:
    """Every member may revoke anyone's grant and deny any request: system:authenticated is everyone."""
    line = _refused(monkeypatch, "JITACCESS_RESPONDER_GROUPS", groups)
    assert "is a group of Kubernetes itself" in line
    assert "name a group of your own that holds the responders only" in line
    monkeypatch.setenv("JITACCESS_RESPONDER_GROUPS", "sre, platform-oncall")
    assert load().responder_groups == ["sre", "platform-oncall"]


@pytest.mark.parametrize("variable", ["JITACCESS_RESPONDER_GROUPS", "JITACCESS_OPERATOR_USERNAMES"])
@pytest.mark.parametrize(
    ("names", "parts"),
    [
        ("CN=SRE,OU=Groups,DC=corp", "CN=SRE and OU=Groups"),
        ("sre-oncall, cn=Security IR, ou=Groups", "cn=Security IR and ou=Groups"),
        ("uid=alice,1.2.840.113549.1.9.1=alice@example.com", "uid=alice and 1.2.840.113549.1.9.1=alice@example.com"),
    ],
)
def test_a_distinguished_name_split_at_its_commas_is_refused(
    monkeypatch: pytest.MonkeyPatch, variable: str, names: str, parts: str
) -> None:
    """The list is comma-separated: an LDAP group's name would be read as names nobody is in, and
    the responders it meant would be none, in silence."""
    line = _refused(monkeypatch, variable, names)
    assert f"{parts} look like two parts of one distinguished name" in line, line
    assert "so no name can hold one: have your authenticator give the group (or user) a name without commas" in line


@pytest.mark.parametrize("names", ["sre, platform-oncall", "CN=SRE", "sre,team=payments", "a=b"])
def test_names_that_are_no_split_distinguished_name_are_taken(monkeypatch: pytest.MonkeyPatch, names: str) -> None:
    """One part alone may be a whole name (a group named `CN=SRE`), beside names of another form."""
    for key in [k for k in os.environ if k.startswith("JITACCESS_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("JITACCESS_RESPONDER_GROUPS", names)
    assert load().responder_groups == [name.strip() for name in names.split(",")]


def test_a_name_given_as_a_list_holds_no_comma() -> None:
    """Given as a list (not the variable), a name with a comma could not be written back into it."""
    with pytest.raises(ValidationError) as caught:
        Settings(responder_groups=["CN=SRE,OU=Groups,DC=corp"])
    assert "'CN=SRE,OU=Groups,DC=corp' holds a comma: the names are separated by commas" in str(caught.value)


@pytest.mark.parametrize(
    "name", ["JITACCESS_WEBHOOK_PORT", "JITACCESS_SLACK_INTERACTIONS_PORT", "JITACCESS_METRICS_PORT"]
)
def test_a_port_beyond_65535_is_refused(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    assert "Input should be less than or equal to 65535" in _refused(monkeypatch, name, "99999")
    monkeypatch.setenv(name, "65535")
    assert getattr(load(), name.removeprefix("JITACCESS_").lower()) == 65535


@pytest.mark.parametrize("name", ["JITACCESS_SLACK_DEFAULT_CHANNEL", "JITACCESS_SLACK_SECURITY_CHANNEL"])
@pytest.mark.parametrize("channel", ["#general", "general", "c0123abcd", "U0123ABCD", ""])
def test_a_slack_channel_is_given_by_its_id(monkeypatch: pytest.MonkeyPatch, name: str, channel: str) -> None:
    line = _refused(monkeypatch, name, channel)
    assert "not a Slack channel id: give the channel's id" in line
    monkeypatch.setenv(name, "C0123ABCDEF")
    assert getattr(load(), name.removeprefix("JITACCESS_").lower()) == "C0123ABCDEF"


@pytest.mark.parametrize("name", ["JITACCESS_EVENT_SINK_URL", "JITACCESS_SLACK_API_URL"])
@pytest.mark.parametrize("url", ["ftp://x", "http://siem.example.com/hook", "siem.example.com"])
def test_a_url_that_is_not_https_is_refused_at_start(monkeypatch: pytest.MonkeyPatch, name: str, url: str) -> None:
    assert f"{name} must be an https:// URL (plain http only to a loopback address)" in _refused(monkeypatch, name, url)
    if name == "JITACCESS_EVENT_SINK_URL":
        monkeypatch.setenv("JITACCESS_EVENT_SINK_SECRET", "s3cret")  # each needs the other
    for good in ("https://siem.example.com/hook", "http://127.0.0.1:8080/events"):  # loopback: the local stand-ins
        monkeypatch.setenv(name, good)
        assert getattr(load(), name.removeprefix("JITACCESS_").lower()) == good


@pytest.mark.parametrize(
    ("name", "bad", "good", "form"),
    [
        ("JITACCESS_LEASE_NAME", "", "jitaccess", "DNS-1123 subdomain"),
        ("JITACCESS_LEASE_NAME", "Bad_Name", "jitaccess.leader", "DNS-1123 subdomain"),
        ("JITACCESS_LEASE_NAME", "x" * 254, "x" * 253, "at most 253 characters"),
        ("JITACCESS_WEBHOOK_CONFIGURATION", "JIT Access", "jitaccess.dev", "DNS-1123 subdomain"),
        ("JITACCESS_ADMISSION_POLICY", "JIT Identity", "jitaccess-identity", "DNS-1123 subdomain"),
        ("JITACCESS_ADMISSION_POLICY", "x" * 254, "", "at most 253 characters"),
        ("JITACCESS_LEASE_NAMESPACE", "jit.access", "jitaccess", "DNS-1123 label"),
        ("JITACCESS_WEBHOOK_SERVICE", "jitaccess", "jitaccess/jitaccess-webhook", "namespace/name[:port] of a Service"),
        ("JITACCESS_WEBHOOK_SERVICE", "jitaccess/1webhook", "jitaccess/webhook:8443", "DNS-1035 label"),
        ("JITACCESS_WEBHOOK_SERVICE", "jitaccess/webhook:99999", "jitaccess/webhook:443", "a number 1-65535"),
        (
            "JITACCESS_SLACK_IMPERSONATOR_SERVICE_ACCOUNT",
            "jitaccess",
            "jitaccess/slack",
            "namespace/name of a ServiceAccount",
        ),
    ],
)
def test_a_kubernetes_name_the_api_server_would_refuse_is_refused_at_start(
    monkeypatch: pytest.MonkeyPatch, name: str, bad: str, good: str, form: str
) -> None:
    assert form in _refused(monkeypatch, name, bad)
    monkeypatch.setenv(name, good)
    assert getattr(load(), name.removeprefix("JITACCESS_").lower()) == good


@pytest.mark.parametrize(
    ("name", "floor"),
    [
        ("JITACCESS_RESYNC_SECONDS", "1"),
        ("JITACCESS_ELIGIBILITY_RECHECK_SECONDS", "1"),
        ("JITACCESS_RETRY_PERIOD_SECONDS", "0.1"),
        ("JITACCESS_AUDIT_BATCH_SECONDS", "0.1"),
    ],
)
def test_an_interval_too_short_to_be_anything_but_a_busy_loop_is_refused(
    monkeypatch: pytest.MonkeyPatch, name: str, floor: str
) -> None:
    line = _refused(monkeypatch, name, "1e-9")
    assert f"Input should be at least {floor} s: each " in line, line
    monkeypatch.setenv(name, floor)
    assert getattr(load(), name.removeprefix("JITACCESS_").lower()) == float(floor)


@pytest.mark.parametrize("identity", ["", " ", "replica-0 ", "replica\n0", "replica\t0", "replica\x1b[0m", "x" * 254])
def test_a_leader_identity_that_is_no_name_is_refused(monkeypatch: pytest.MonkeyPatch, identity: str) -> None:
    """Written into the Lease's holderIdentity, which the API server takes whatever it is: an empty
    holder reads as a free Lease, and a line break or a 254th character is a manifest's mistake."""
    line = _refused(monkeypatch, "JITACCESS_LEADER_IDENTITY", identity)
    assert "must be this replica's name in the Lease (spec.holderIdentity)" in line, line
    assert "1-253 printable characters" in line, line
    for good in ("jitaccess-6d4f7b9c5-x2k8p", "replica 0", "x" * 253):
        monkeypatch.setenv("JITACCESS_LEADER_IDENTITY", good)
        assert load().leader_identity == good


FILES = [
    "JITACCESS_WEBHOOK_CERTFILE",
    "JITACCESS_WEBHOOK_KEYFILE",
    "JITACCESS_WEBHOOK_CAFILE",
    "JITACCESS_SLACK_IMPERSONATOR_KUBECONFIG",
    "JITACCESS_SLACK_IMPERSONATOR_TOKEN_FILE",
]
#: The file settings that work only with others (`test_a_webhook_certificate_without_its_key...`).
COMPANIONS = {
    "JITACCESS_WEBHOOK_CERTFILE": ["JITACCESS_WEBHOOK_KEYFILE"],
    "JITACCESS_WEBHOOK_KEYFILE": ["JITACCESS_WEBHOOK_CERTFILE"],
    "JITACCESS_WEBHOOK_CAFILE": ["JITACCESS_WEBHOOK_CERTFILE", "JITACCESS_WEBHOOK_KEYFILE"],
}


def test_every_file_setting_is_checked() -> None:
    """A new setting naming a file joins FILE_SETTINGS (its name says what it is)."""
    named = {n for n in Settings.model_fields if n.endswith(("file", "kubeconfig"))}
    assert named == set(FILE_SETTINGS)
    assert {f"JITACCESS_{n.upper()}" for n in named} == set(FILES)


@pytest.mark.parametrize("name", FILES)
def test_a_file_the_operator_cannot_read_is_refused_at_start(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str
) -> None:
    """Read as the operator starts (the webhook's server, the Slack endpoint): a wrong path or a Secret
    not mounted would fail there with a traceback, or in a kopf start-up handler retried forever."""
    missing = str(tmp_path / "missing.pem")
    assert "cannot read this file (No such file or directory)" in _refused(monkeypatch, name, missing)
    assert "cannot read this file (Is a directory)" in _refused(monkeypatch, name, str(tmp_path))
    if os.geteuid() != 0:  # root reads any file
        unreadable = tmp_path / "unreadable.pem"
        unreadable.write_text("x")
        unreadable.chmod(0)
        assert "cannot read this file (Permission denied)" in _refused(monkeypatch, name, str(unreadable))
    readable = tmp_path / "tls.pem"
    readable.write_text("x")
    for companion in COMPANIONS.get(name, []):
        monkeypatch.setenv(companion, str(readable))
    monkeypatch.setenv(name, str(readable))
    assert getattr(load(), name.removeprefix("JITACCESS_").lower()) == str(readable)
    for companion in COMPANIONS.get(name, []):
        monkeypatch.delenv(companion)
    monkeypatch.setenv(name, "")  # unset, to every reader of these
    assert getattr(load(), name.removeprefix("JITACCESS_").lower()) == ""


def _refused_together(monkeypatch: pytest.MonkeyPatch, **env: str) -> str:
    """The one line `load()` gives for settings `env` that do not work together, all others unset."""
    for key in [k for k in os.environ if k.startswith("JITACCESS_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SettingsError) as caught:
        load()
    lines = str(caught.value.code).splitlines()[1:]
    assert len(lines) == 1, lines
    return lines[0]


@pytest.fixture
def pem(tmp_path: Path) -> Path:
    """A file any file setting may name (each is checked readable)."""
    path = tmp_path / "tls.pem"
    path.write_text("x")
    return path


@pytest.mark.parametrize(("given", "missing"), [("CERTFILE", "KEYFILE"), ("KEYFILE", "CERTFILE")])
@pytest.mark.parametrize("with_ca", [False, True])
def test_a_webhook_certificate_without_its_key_or_the_reverse_is_refused(
    monkeypatch: pytest.MonkeyPatch, pem: Path, given: str, missing: str, with_ca: bool
) -> None:
    """With one of them alone the operator served a temporary self-signed certificate instead, and an
    API server trusting the user's CA refused every webhook call (every write refused, a TLS error)."""
    env = {"JITACCESS_WEBHOOK_PORT": "9443", f"JITACCESS_WEBHOOK_{given}": str(pem)}
    if with_ca:
        env["JITACCESS_WEBHOOK_CAFILE"] = str(pem)
    for unset in ({}, {f"JITACCESS_WEBHOOK_{missing}": ""}):  # empty is unset, as to the webhook server
        line = _refused_together(monkeypatch, **env, **unset)
        assert line.startswith(f"- JITACCESS_WEBHOOK_{given} is set and JITACCESS_WEBHOOK_{missing} is not: "), line
        assert "set both (tls.crt and tls.key of a kubernetes.io/tls Secret), or neither" in line
    monkeypatch.setenv(f"JITACCESS_WEBHOOK_{missing}", str(pem))
    assert load().webhook_keyfile == load().webhook_certfile == str(pem)


def test_a_webhook_ca_without_the_certificate_it_signed_is_refused(monkeypatch: pytest.MonkeyPatch, pem: Path) -> None:
    """The operator served a certificate of its own CA and ignored the one given."""
    line = _refused_together(monkeypatch, JITACCESS_WEBHOOK_PORT="9443", JITACCESS_WEBHOOK_CAFILE=str(pem))
    assert line.startswith("- JITACCESS_WEBHOOK_CAFILE is the CA of the webhook's certificate, and none is given"), line
    assert "set JITACCESS_WEBHOOK_CERTFILE and JITACCESS_WEBHOOK_KEYFILE too" in line
    monkeypatch.setenv("JITACCESS_WEBHOOK_CERTFILE", str(pem))
    monkeypatch.setenv("JITACCESS_WEBHOOK_KEYFILE", str(pem))
    assert load().webhook_cafile == str(pem)


def test_installed_webhook_configurations_need_the_certificate_they_trust(
    monkeypatch: pytest.MonkeyPatch, pem: Path
) -> None:
    """Installed by the chart with its CA, they cannot trust a CA the operator makes as it starts."""
    line = _refused_together(monkeypatch, JITACCESS_WEBHOOK_PORT="9443", JITACCESS_WEBHOOK_MANAGED="false")
    assert line.startswith("- JITACCESS_WEBHOOK_MANAGED=false: the webhook configurations are installed by"), line
    assert "set JITACCESS_WEBHOOK_CERTFILE, _KEYFILE and _CAFILE to the certificate they trust" in line
    monkeypatch.setenv("JITACCESS_WEBHOOK_MANAGED", "true")  # a local run: it applies its own CA
    assert load().webhook_certfile is None
    monkeypatch.setenv("JITACCESS_WEBHOOK_MANAGED", "false")
    monkeypatch.setenv("JITACCESS_WEBHOOK_PORT", "0")  # webhooks off: no certificate served
    assert not load().webhook_managed
    monkeypatch.setenv("JITACCESS_WEBHOOK_PORT", "9443")
    monkeypatch.setenv("JITACCESS_WEBHOOK_CERTFILE", str(pem))
    monkeypatch.setenv("JITACCESS_WEBHOOK_KEYFILE", str(pem))
    assert load().webhook_certfile == str(pem)


IMPERSONATORS = [
    "JITACCESS_SLACK_IMPERSONATOR_KUBECONFIG",
    "JITACCESS_SLACK_IMPERSONATOR_SERVICE_ACCOUNT",
    "JITACCESS_SLACK_IMPERSONATOR_TOKEN_FILE",
]


@pytest.mark.parametrize(
    "given", [IMPERSONATORS[:2], IMPERSONATORS[1:], IMPERSONATORS[::2], IMPERSONATORS], ids=lambda g: str(len(g))
)
def test_more_than_one_slack_impersonator_is_refused(
    monkeypatch: pytest.MonkeyPatch, pem: Path, given: list[str]
) -> None:
    """The operator used the first of them only, whichever the user meant."""
    values = {name: "jitaccess/slack" if name.endswith("SERVICE_ACCOUNT") else str(pem) for name in given}
    line = _refused_together(monkeypatch, **values)
    assert line.startswith(f"- {' and '.join(given)} each name the identity that applies Slack decisions"), line
    assert f"the operator would use {given[0]} only: set one" in line
    for name in given[1:]:
        monkeypatch.delenv(name)
    assert getattr(load(), given[0].removeprefix("JITACCESS_").lower()) == values[given[0]]


def test_the_slack_impersonator_is_the_one_setting_given(monkeypatch: pytest.MonkeyPatch, pem: Path) -> None:
    """`Settings.slack_impersonators` names the settings given, in the order `handlers.interactions`
    takes the first: none when none is given (empty is unset); with more than one (refused at load),
    the first is the one the refusal says would be used; and each has its way to the identity."""
    for key in [k for k in os.environ if k.startswith("JITACCESS_")]:
        monkeypatch.delenv(key)
    assert load().slack_impersonators == []
    monkeypatch.setenv("JITACCESS_SLACK_IMPERSONATOR_KUBECONFIG", "")
    assert load().slack_impersonators == []
    monkeypatch.setenv("JITACCESS_SLACK_IMPERSONATOR_TOKEN_FILE", str(pem))
    assert load().slack_impersonators == [("slack_impersonator_token_file", str(pem))]
    every = {name.removeprefix("JITACCESS_").lower(): f"{name}-value" for name in IMPERSONATORS}
    assert Settings.model_construct(**every).slack_impersonators == list(every.items())
    assert set(interactions._IMPERSONATORS) == set(every)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({"JITACCESS_EVENT_SINK_URL": "https://siem.example.com/hook"}, "JITACCESS_EVENT_SINK_URL is set and"),
        (
            {"JITACCESS_EVENT_SINK_URL": "https://siem.example.com/hook", "JITACCESS_EVENT_SINK_SECRET": ""},
            "JITACCESS_EVENT_SINK_URL is set and",
        ),
        ({"JITACCESS_EVENT_SINK_SECRET": "s3cret"}, "JITACCESS_EVENT_SINK_SECRET signs the events sent to"),
    ],
)
def test_an_event_sink_without_its_url_or_secret_is_refused(
    monkeypatch: pytest.MonkeyPatch, given: dict[str, str], expected: str
) -> None:
    """Events are sent only with both: one alone sent nothing, and said nothing."""
    line = _refused_together(monkeypatch, **given)
    assert line.startswith(f"- {expected}"), line
    assert "s3cret" not in line  # a secret is never shown
    monkeypatch.setenv("JITACCESS_EVENT_SINK_URL", "https://siem.example.com/hook")
    monkeypatch.setenv("JITACCESS_EVENT_SINK_SECRET", "s3cret")
    assert load().event_sink_url == "https://siem.example.com/hook"


@pytest.fixture
def outside_a_pod(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No pod's ServiceAccount, and a home without ~/.kube/config: the operator reads KUBECONFIG."""
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "contexts: [{name: c, context: {cluster: k, user: u}}]\n"
        "clusters: [{name: k, cluster: {server: 'https://127.0.0.1:6443'}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
    )
    return kubeconfig


def _kubeconfig_refusal(environ: dict[str, str]) -> str:
    with pytest.raises(SettingsError) as caught:
        kubeconfig_files(environ)
    lines = str(caught.value.code).splitlines()
    assert lines[0].startswith("jitaccess cannot start: fix these settings"), lines
    assert len(lines) == 2, lines
    assert lines[1].endswith(
        "give the kubeconfig this process logs in to the API server with (as kubectl reads KUBECONFIG: a list "
        "separated by ':', whose files that do not exist are skipped), or run the operator in a pod with its "
        "ServiceAccount token mounted"
    ), lines
    return lines[1]


def test_a_kubeconfig_that_does_not_exist_is_refused_at_start(outside_a_pod: Path, tmp_path: Path) -> None:
    """It failed later, in kopf's login or a start-up activity, with a traceback."""
    missing, other = str(tmp_path / "missing"), str(tmp_path / "other")
    line = _kubeconfig_refusal({"KUBECONFIG": missing})
    assert line.startswith(f"- KUBECONFIG={missing!r}: no such file: "), line
    line = _kubeconfig_refusal({"KUBECONFIG": f"{missing}:{other}"})
    assert line.startswith(f"- KUBECONFIG='{missing}:{other}': none of its files exists: "), line
    for unset in ({}, {"KUBECONFIG": ""}):  # kubectl's default then, ~/.kube/config
        line = _kubeconfig_refusal(unset)
        assert line.startswith(f"- KUBECONFIG is unset, and ~/.kube/config ({tmp_path}/home/.kube/config): "), line
    assert kubeconfig_files({"KUBECONFIG": str(outside_a_pod)}) == [str(outside_a_pod)]
    (tmp_path / "home" / ".kube").mkdir(parents=True)
    (tmp_path / "home" / ".kube" / "config").write_text(outside_a_pod.read_text())
    assert kubeconfig_files({}) == kubeconfig_files({"KUBECONFIG": ""}) == [f"{tmp_path}/home/.kube/config"]


def test_a_kubeconfig_that_cannot_be_read_is_refused_at_start(outside_a_pod: Path, tmp_path: Path) -> None:
    """As kubectl and the kubernetes client refuse it, even beside a readable one."""
    line = _kubeconfig_refusal({"KUBECONFIG": f"{outside_a_pod}:{tmp_path}"})
    assert f": cannot read {tmp_path} (Is a directory): " in line, line
    if os.geteuid() != 0:  # root reads any file
        unreadable = tmp_path / "unreadable"
        unreadable.write_text("x")
        unreadable.chmod(0)
        line = _kubeconfig_refusal({"KUBECONFIG": str(unreadable)})
        assert f": cannot read {unreadable} (Permission denied): " in line, line


def test_a_kubeconfig_list_logs_in_with_the_files_that_exist(
    outside_a_pod: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """kubectl and the kubernetes client skip a listed file that does not exist, and kopf's login failed
    on it (FileNotFoundError): the operator leaves in KUBECONFIG the files that exist, for both."""
    listed = f"{tmp_path / 'missing'}::{outside_a_pod}"
    monkeypatch.setenv("KUBECONFIG", listed)
    with pytest.raises(FileNotFoundError):
        kopf.login_with_kubeconfig(settings=kopf.OperatorSettings())
    log_in_as_kubectl_would(os.environ)
    assert os.environ["KUBECONFIG"] == str(outside_a_pod)
    info = kopf.login_with_kubeconfig(settings=kopf.OperatorSettings())
    assert info is not None
    assert (info.server, info.token) == ("https://127.0.0.1:6443", "t")


def test_in_a_pod_no_kubeconfig_is_read(outside_a_pod: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The operator logs in with the pod's ServiceAccount, the kubernetes client and kopf alike."""
    token = tmp_path / "token"
    token.write_text("t")
    monkeypatch.setattr(settings, "SERVICE_ACCOUNT_TOKEN", str(token))
    in_a_pod = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    assert kubeconfig_files(in_a_pod) is None
    assert kubeconfig_files({**in_a_pod, "KUBECONFIG": str(tmp_path / "missing")}) is None  # read by neither
    environ = dict(in_a_pod)
    log_in_as_kubectl_would(environ)
    assert environ == in_a_pod
    # Without the token mounted (automountServiceAccountToken: false), both read the kubeconfig.
    token.unlink()
    assert "KUBECONFIG is unset" in _kubeconfig_refusal(in_a_pod)


def test_the_operator_refuses_a_missing_kubeconfig_at_start(tmp_path: Path) -> None:
    result = _start(KUBECONFIG=str(tmp_path / "missing"), HOME=str(tmp_path), KUBERNETES_SERVICE_HOST="")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip().splitlines() == [
        "jitaccess cannot start: fix these settings (environment variables; the chart's config values):",
        f"- KUBECONFIG='{tmp_path}/missing': no such file: give the kubeconfig this process logs in to the API "
        "server with (as kubectl reads KUBECONFIG: a list separated by ':', whose files that do not exist are "
        "skipped), or run the operator in a pod with its ServiceAccount token mounted",
    ]

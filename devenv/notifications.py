"""The notification parts of a local run: the example company's Slack workspace (the stand-in),
a CloudEvents receiver, and the operator settings that point at them.

One definition for `make dev` and the end-to-end tier, so that both run the operator exactly as the
docs describe: the example TeamOwnerships name the channels below, and every test identity has a
Slack account whose email is its Kubernetes username.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from devenv.controlplane import TEST_USERS
from devenv.eventsink import EventSinkReceiver
from devenv.processes import free_port
from devenv.slack import SlackStandIn, SlackUser

#: The channels of the example workspace (examples/01-teams.yaml names the teams' ones).
CHANNELS: Final[Mapping[str, str]] = {
    "C0PAYMENTS1": "payments-approvals",
    "C0LEDGER1": "ledger-approvals",
    "C0SECURITY1": "security-alerts",
    "C0JITACCESS": "jitaccess",
}
DEFAULT_CHANNEL: Final = "C0JITACCESS"
SECURITY_CHANNEL: Final = "C0SECURITY1"
TOKEN: Final = "xoxb-jitaccess-local"
INTERACTIONS_PATH: Final = "/slack/interactions"


def slack_id_of(username: str) -> str:
    """The example workspace's user id of a test identity: U0 and the name, upper-cased."""
    return "U0" + username.split("@", 1)[0].upper()


#: Someone of another company in a Slack Connect channel, whose company gave them an approver's
#: email (lena's): the attack tests' outsider. Listed after the workspace's own lena, so a lookup
#: of lena's email finds lena.
OUTSIDER = SlackUser(id="U0OUTSIDER", email="lena@example.com", name="outsider", team_id="T0OTHERCO")


def slack_users() -> list[SlackUser]:
    return [SlackUser(id=slack_id_of(u), email=u, name=u.split("@", 1)[0]) for u in TEST_USERS] + [OUTSIDER]


class LocalNotifications:
    """The Slack stand-in and the event receiver of one local run, and the operator's settings."""

    def __init__(self, impersonator_kubeconfig: Path | None = None) -> None:
        self.interactions_port = free_port()
        self.slack = SlackStandIn(
            token=TOKEN,
            signing_secret=secrets.token_hex(16),
            channels=CHANNELS,
            users=slack_users(),
            interactions_url=f"http://127.0.0.1:{self.interactions_port}{INTERACTIONS_PATH}",
        )
        self.events = EventSinkReceiver(secrets.token_hex(16))
        self.impersonator_kubeconfig = impersonator_kubeconfig

    def start(self) -> LocalNotifications:
        self.slack.start()
        self.events.start()
        return self

    def stop(self) -> None:
        self.slack.stop()
        self.events.stop()

    def operator_env(self) -> dict[str, str]:
        """The operator's settings for this run (docs/notifications.md)."""
        env = {
            "JITACCESS_SLACK_TOKEN": TOKEN,
            "JITACCESS_SLACK_SIGNING_SECRET": self.slack.signing_secret,
            "JITACCESS_SLACK_API_URL": self.slack.api_url,
            "JITACCESS_SLACK_DEFAULT_CHANNEL": DEFAULT_CHANNEL,
            "JITACCESS_SLACK_SECURITY_CHANNEL": SECURITY_CHANNEL,
            "JITACCESS_SLACK_INTERACTIONS_PORT": str(self.interactions_port),
            "JITACCESS_EVENT_SINK_URL": self.events.url,
            "JITACCESS_EVENT_SINK_SECRET": self.events.secret,
        }
        if self.impersonator_kubeconfig is not None:
            env["JITACCESS_SLACK_IMPERSONATOR_KUBECONFIG"] = str(self.impersonator_kubeconfig)
        return env

    def __enter__(self) -> LocalNotifications:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

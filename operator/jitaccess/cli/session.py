"""One invocation's context: the API client, the caller's identity and the terminal streams.

Both the client and the identity are made on first use and reused, so a command that needs
neither (`completion`, `--help`) never reads a kubeconfig, and one that needs both pays once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TextIO

from jitaccess.cli.kube import KubeApi, load_credentials
from jitaccess.cli.objects import Identity, whoami
from jitaccess.cli.prompts import Prompter
from jitaccess.cli.text import printable


@dataclass
class ClusterFlags:
    """kubectl's standard flags, as given."""

    kubeconfig: str | None = None
    context: str | None = None
    impersonate: str | None = None
    impersonate_groups: list[str] = field(default_factory=list)


class Session:
    def __init__(self, flags: ClusterFlags, stdin: TextIO, stdout: TextIO, stderr: TextIO) -> None:
        self.flags = flags
        self.out = stdout
        self.err = stderr
        self.prompter = Prompter(stdin, stderr)

    @cached_property
    def api(self) -> KubeApi:
        flags = self.flags
        return KubeApi(load_credentials(flags.kubeconfig, flags.context, flags.impersonate, flags.impersonate_groups))

    @cached_property
    def me(self) -> Identity:
        return whoami(self.api)

    def say(self, line: str) -> None:
        """A result line on stdout, flushed at once: people and tests watch it as it comes."""
        self.out.write(printable(line, lines=True) + "\n")
        self.out.flush()

    def note(self, line: str) -> None:
        """Progress and hints on stderr, so stdout holds only results."""
        self.err.write(printable(line, lines=True) + "\n")
        self.err.flush()

    def close(self) -> None:
        if "api" in self.__dict__:
            self.api.close()

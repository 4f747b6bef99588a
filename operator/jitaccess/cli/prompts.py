"""Questions asked on the terminal, only when one is attached.

Prompts go to stderr, so stdout stays clean for scripts that capture it. Without a terminal on
stdin the plugin never asks: a missing answer is a usage error (exit 2) that names the flag.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TextIO

from jitaccess.cli.errors import UsageError
from jitaccess.cli.text import printable

Check = Callable[[str], str | None]


class Prompter:
    def __init__(self, stdin: TextIO, stderr: TextIO) -> None:
        self._in = stdin
        self._err = stderr

    @property
    def interactive(self) -> bool:
        try:
            return self._in.isatty()
        except (AttributeError, ValueError):
            return False

    def _read(self, prompt: str) -> str:
        self._err.write(prompt)
        self._err.flush()
        line = self._in.readline()
        if not line:
            self._err.write("\n")
            raise UsageError("no answer (end of input): nothing was requested")
        return line.strip()

    def confirm(self, question: str, *, default: bool = True) -> bool:
        hint = "[Y/n]" if default else "[y/N]"
        while True:
            answer = self._read(f"{question} {hint} ").lower()
            if not answer:
                return default
            if answer in ("y", "yes"):
                return True
            if answer in ("n", "no"):
                return False
            self._err.write("  please answer y or n\n")

    def choose(self, title: str, options: Sequence[tuple[str, str]]) -> int:
        """A numbered pick list of (name, description); the index chosen."""
        self._err.write(f"{title}\n")
        width = max(len(name) for name, _ in options)
        for number, (name, description) in enumerate(options, start=1):
            self._err.write(f"  {number:>2}) {printable(name.ljust(width))}   {printable(description)}\n")
        names = [name for name, _ in options]
        while True:
            answer = self._read(f"Which one? [1-{len(options)}] ")
            if answer.isdigit() and 1 <= int(answer) <= len(options):
                return int(answer) - 1
            if answer in names:
                return names.index(answer)
            self._err.write(f"  please answer with a number from 1 to {len(options)}\n")

    def ask(self, question: str, *, default: str | None = None, check: Check | None = None) -> str:
        """A free answer; `check` returns a complaint to ask again, or None to accept."""
        suffix = f" [{default}] " if default else " "
        while True:
            answer = self._read(f"{question}{suffix}") or (default or "")
            problem = check(answer) if check is not None else (None if answer else "an answer is needed")
            if problem is None:
                return answer
            self._err.write(f"  {printable(problem, lines=True)}\n")

"""User and group names as a TeamOwnership or an Entitlement writes them: names that read as what they are.

A team's approvers and members are matched exactly against what the cluster's authenticator
reports (Kubernetes user names and groups are case-sensitive), but reviewed by people, who read
`p\u0430ula@example.com` (a Cyrillic a, U+0430) or `paula@example.com ` (a trailing space) as paula. Written
so, the name matches nobody, or someone else the authenticator may one day report, and the review
saw an approver who is not one. So a name is refused unless it is:

- not empty, and without spaces at either end;
- made of letters, marks and digits of any script, and ASCII punctuation (`@ . _ - + : / # =`...);
  a group name may also hold inner spaces (`Domain Admins`), a user name none; nothing else: no
  control, bidirectional or invisible character (`text.is_forbidden`), no look-alike punctuation
  (a fullwidth at sign, U+FF20);
- not a mix of scripts one of which has letters that look like another's: Cyrillic, Greek,
  Armenian, Cherokee or Coptic letters, or fullwidth, mathematical or modifier forms, or the
  letters of phonetic notation (IPA and the phonetic extensions: `\u0251`, a LATIN SMALL LETTER ALPHA,
  drawn as an a), next to letters of any other script (a Cyrillic a in a Latin name) are the
  look-alike trick itself. Other mixes are how names are written (`山田@example.jp`, Japanese kana
  with Han);
- in Unicode's normal form NFKC, the one spelling of what it shows: `pau\u217ca` (a SMALL ROMAN
  NUMERAL FIFTY for its l) shows `paula`, and `rene\u0301e` (an e and a combining accent) shows
  `renée`, each another string than the one the authenticator reports for the name it shows.

Within one object, two names that differ only in case are refused as well: the authenticator
reports one of them, and the other names nobody a reviewer can tell apart.

A name refused on its own (`unreadable`) that was stored before admission refused it (an upgrade,
the webhooks down) confers nothing when a decision is made (`confers_nothing`, `teams.conferring`):
the review saw someone it is not. Two names differing only in case still confer, each being exact.

Names of Kubernetes' own (`system:`: its groups of everyone, of ServiceAccounts, of nodes, of the
cluster's superusers; its ServiceAccount and node users) are no team's (`is_kubernetes_own`,
`stands_for`): admission refuses them where a name confers power, and the decisions do not count
one stored before it did (`teams.conferring`).
"""

from __future__ import annotations

import string
import unicodedata
from collections.abc import Iterable

from jitaccess.domain.text import describe, is_forbidden

_ASCII_PUNCTUATION = frozenset(string.punctuation)
#: Scripts (the first word of a letter's Unicode name) with letters that look like those of others.
_LOOK_ALIKE = frozenset(
    {
        "CYRILLIC",
        "GREEK",
        "ARMENIAN",
        "CHEROKEE",
        "COPTIC",
        "FULLWIDTH",
        "HALFWIDTH",
        "MATHEMATICAL",
        "MODIFIER",
        "PHONETIC",
    }
)
#: The blocks of phonetic notation (IPA Extensions, Phonetic Extensions and its Supplement): letters
#: named LATIN that write sounds, not anyone's name, among them exact look-alikes of the alphabet's
#: (U+0251 LATIN SMALL LETTER ALPHA, U+0261 LATIN SMALL LETTER SCRIPT G, U+1D0F LATIN LETTER SMALL
#: CAPITAL O). They count as a script of their own, `PHONETIC`.
_PHONETIC = ((0x0250, 0x02AF), (0x1D00, 0x1DBF))


#: What begins every name Kubernetes gives its own groups and users.
KUBERNETES_PREFIX = "system:"
#: Kubernetes' groups that stand for a whole population, not a team, in words.
_EVERYONE = {
    "system:authenticated": "every user (ServiceAccounts included)",
    "system:unauthenticated": "every anonymous caller",
    "system:serviceaccounts": "every ServiceAccount of the cluster",
}
_NAMESPACE_SERVICE_ACCOUNTS = "system:serviceaccounts:"


def is_kubernetes_own(name: str) -> bool:
    """Whether `name` is a group or user of Kubernetes' own (`system:`), whose members the cluster
    chooses, whoever they are: never a team's, so it confers nothing in a policy field."""
    return name.startswith(KUBERNETES_PREFIX)


def stands_for(group: str) -> str | None:
    """Who a group of Kubernetes' own (`is_kubernetes_own`) stands for, in words; None for any other
    group. None of them is a team: the authenticator puts everyone, every ServiceAccount (of a
    namespace), nodes or the cluster's superusers in them, whoever they are."""
    if not is_kubernetes_own(group):
        return None
    if group in _EVERYONE:
        return _EVERYONE[group]
    if group.startswith(_NAMESPACE_SERVICE_ACCOUNTS):
        return f"every ServiceAccount of namespace {group[len(_NAMESPACE_SERVICE_ACCOUNTS) :] or '(none)'}"
    return "a group of Kubernetes' own (system:), whose members the cluster chooses, not a team"


def _script(char: str) -> str | None:
    """The script of a letter, from its Unicode name's first word (`LATIN`, `CYRILLIC`, `GREEK`,
    `CJK`...; fullwidth, mathematical and modifier forms, and phonetic letters (`_PHONETIC`), count
    as scripts of their own, being look-alikes); None for anything but a letter."""
    if not unicodedata.category(char).startswith("L"):
        return None
    if any(low <= ord(char) <= high for low, high in _PHONETIC):
        return "PHONETIC"
    return unicodedata.name(char, "UNNAMED").split()[0]


def _allowed(char: str, spaces: bool) -> bool:
    if is_forbidden(char):
        return False
    if char == " ":
        return spaces
    if char.isascii():
        return char.isalnum() or char in _ASCII_PUNCTUATION
    return unicodedata.category(char)[0] in "LMN"


def _flaw(name: str, group: bool) -> tuple[str, str] | None:
    """What keeps `name` from reading as it is, in two parts: what it does, said after the name
    (`mixes the scripts Cyrillic and Latin`), and the rest of a refusal, which says the fix; None
    when nothing does. `group`: a group's name, which may hold inner spaces."""
    what = "a group's name" if group else "a user name"
    if not name.strip():
        return "is empty", f": remove it, or write {what} as the cluster's authenticator reports it"
    if name != name.strip():
        return "has spaces at its ends", f", so it matches nobody: write {name.strip()!r}"
    bad = next((c for c in name if not _allowed(c, group)), None)
    if bad is not None:
        return (
            f"holds {'a space' if bad == ' ' else describe(bad)}",
            f": {what} here is letters, digits and ASCII punctuation"
            + (" (and inner spaces)" if group else "")
            + "; write it exactly as the cluster's authenticator reports it",
        )
    scripts = sorted({s for c in name if (s := _script(c)) is not None})
    if len(scripts) > 1 and _LOOK_ALIKE.intersection(scripts):
        return (
            f"mixes the scripts {' and '.join(s.title() for s in scripts)}",
            ": a look-alike of another name (a Cyrillic a in a Latin name reads the same); write "
            f"{what} in one script, as the cluster's authenticator reports it",
        )
    shown = unicodedata.normalize("NFKC", name)
    if shown != name:
        return (
            f"is not in Unicode's normal form (NFKC): it reads as {shown!r}, another name",
            ": a look-alike (a compatibility character, or an accent written apart from its letter); write "
            f"{shown!r} if that is the name the cluster's authenticator reports",
        )
    return None


def problem(where: str, name: str, *, group: bool = False) -> str | None:
    """Why `name`, found at `where` (`spec.approvers[1]`), is not one a reviewer reads as it is;
    None when it is. `group`: a group's name, which may hold inner spaces."""
    found = _flaw(name, group)
    if found is None:
        return None
    said, rest = found
    return f"{where if not name.strip() else f'{where} {name!r}'} {said}{rest}"


def unreadable(name: str, *, group: bool = False) -> str | None:
    """What makes `name` one admission refuses on its own (`problem`), in a few words after it
    (`has spaces at its ends`); None for a name that reads as it is. Such a name stored before
    admission refused it confers nothing (`confers_nothing`)."""
    found = _flaw(name, group)
    return None if found is None else found[0]


def confers_nothing(name: str, *, group: bool) -> bool:
    """Whether `name`, in a policy field that confers power (a group field if `group`), gives that
    power to nobody: a name of Kubernetes' own (`is_kubernetes_own`), or one that reads as someone
    else's (`unreadable`). Admission refuses both when written; one stored before it did (an upgrade,
    the webhooks down) would give it to whoever the authenticator reports under that exact name, not
    to the person a reviewer read. Two names that differ only in case (`case_twins`) are each exact
    and readable, and confer."""
    return is_kubernetes_own(name) or unreadable(name, group=group) is not None


def case_twins(named: Iterable[tuple[str, str]]) -> str | None:
    """Two names (`(where, name)` pairs of one object) that differ only in case, as a refusal; None
    when there are none."""
    seen: dict[str, tuple[str, str]] = {}
    for where, name in named:
        folded = name.casefold()
        first = seen.setdefault(folded, (where, name))
        if first[1] != name:
            return (
                f"{where} {name!r} differs only in case from {first[0]} {first[1]!r}: Kubernetes user names are "
                "case-sensitive, so one of them matches nobody; write each name exactly as the cluster's "
                "authenticator reports it, once"
            )
    return None

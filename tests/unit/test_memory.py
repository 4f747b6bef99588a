"""When the operator hands freed memory back (jitaccess/memory.py): once per busy spell, in the
first quiet second after it; never while it works, never when it was idle all along."""

from __future__ import annotations

from jitaccess import memory


def test_trims_once_after_a_busy_spell_and_never_while_busy_or_idle() -> None:
    cpu = [0.0]
    trims: list[float] = []
    trimmer = memory.Trimmer(lambda: trims.append(cpu[0]), clock=lambda: cpu[0])

    def second(share: float) -> bool:
        cpu[0] += share
        return trimmer.tick(1.0)

    assert [second(s) for s in (0.01, 0.0, 0.02)] == [False] * 3, "idle all along: nothing to give back"
    assert [second(s) for s in (0.9, 0.5, 0.3, 0.1)] == [False] * 4, "busy, then not yet quiet"
    assert second(0.01) is True and trims == [cpu[0]]
    assert [second(s) for s in (0.0, 0.03, 0.01)] == [False] * 3, "once per spell"
    assert [second(s) for s in (0.6, 0.02)] == [False, True] and len(trims) == 2


def test_starts_where_the_libc_can_trim() -> None:
    trimmer = memory.start()
    assert trimmer is not None  # glibc here; musl would give None

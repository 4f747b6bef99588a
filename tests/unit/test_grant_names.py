"""Which grant names a new request must not take (attack 130), without a read per request."""

from __future__ import annotations

from jitaccess.handlers.grant_names import GrantNames


def test_every_name_is_asked_about_until_the_start_up_listing_is_done() -> None:
    known = GrantNames()
    assert known.may_hold("anything"), "before the listing nothing is known: the API server is asked"
    known.observe("seen-by-the-watch", True)
    known.listed(["g-1", "g-2"])
    assert known.may_hold("g-1") and known.may_hold("seen-by-the-watch")
    assert not known.may_hold("a-new-name"), "once listed, a name no grant was seen under costs no read"


def test_the_watch_keeps_it_current() -> None:
    known = GrantNames()
    known.listed([])
    known.observe("g-1", True)
    assert known.may_hold("g-1")
    known.observe("g-1", False)
    assert not known.may_hold("g-1"), "a deleted grant's name is free again"

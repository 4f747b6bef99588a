"""What a listing may drop from an index and what it must keep (`filings.Filed`): one implementation
for every index (`ObjectIndex`, `GrantNames`, `KnownRequests`), each of which tests it as it uses it."""

from __future__ import annotations

from jitaccess.handlers import filings


def test_a_listing_drops_only_the_names_filed_before_it_began_that_it_lacks() -> None:
    filed = filings.Filed()
    filed.file("ghost")
    filed.file("live")
    since = filings.stamp()  # the listing begins
    filed.file("born")  # created after the listing was served: missing from it, and kept
    assert filed.drop_unlisted({"live"}, since) == ["ghost"]
    assert sorted(filed) == ["born", "live"]


def test_filing_again_renews_the_stamp_and_filing_unless_filed_does_not() -> None:
    filed = filings.Filed()
    filed.file("seen-again")
    filed.file("listed-at-start")
    since = filings.stamp()
    filed.file("seen-again")  # the watch shows it after the listing began: it may have been created since
    assert not filed.file_unless_filed("listed-at-start"), "already filed: its stamp stays"
    assert filed.file_unless_filed("new")
    assert filed.drop_unlisted(set(), since) == ["listed-at-start"]
    assert sorted(filed) == ["new", "seen-again"]


def test_with_a_prefix_only_those_names_are_looked_up_and_without_it() -> None:
    filed = filings.Filed()
    for name in ("accessgrants/g1", "accessgrants/g2", "accessrequests/g1"):
        filed.file(name)
    gone = filed.drop_unlisted({"g2"}, filings.stamp(), prefix="accessgrants/")
    assert gone == ["accessgrants/g1"], "names are given back as filed"
    assert sorted(filed) == ["accessgrants/g2", "accessrequests/g1"], "another kind's names are not this listing's"

"""The pure rules of the web forms (``listserv.web.forms``)."""

from __future__ import annotations

from listserv.web import forms


def test_join_form_accepts_a_person_and_keeps_the_address_as_typed() -> None:
    joined, faults = forms.read_join({"name": "Anna <Schmidt>", "email": " Anna@Schule.EXAMPLE ",
                                      "consent": "yes", "role": "SOFA",
                                      "employer_type": "land"})
    assert faults == [] and joined is not None
    assert joined.address == "anna@schule.example"
    assert joined.as_given == "Anna@schule.example"
    assert joined.name == "Anna Schmidt"        # no angle brackets to bend a header
    assert (joined.role, joined.employer_type) == ("SOFA", "land")


def test_join_form_names_every_fault_and_accepts_nothing_unknown() -> None:
    joined, faults = forms.read_join({"email": "not an address", "role": "admin",
                                      "employer_type": "x"})
    assert joined is None
    assert faults == ["email", "consent", "role", "employer_type"]
    assert forms.read_join({"email": "a@b.example", "consent": "on"})[1] == ["consent"]
    assert forms.read_join({"email": "x" * 250 + "@b.example", "consent": "yes"})[1] == ["email"]


def test_honeypot_and_reason_and_name_cleaning() -> None:
    assert forms.is_robot({"website": "http://spam"}) and not forms.is_robot({"website": " "})
    assert forms.clean_reason("Bitte\r\nnicht\x00 hier\n\n") == "Bitte\nnicht hier"
    assert len(forms.clean_reason("x" * 2000)) == forms.REASON_CHARS
    assert forms.clean_name('Eve"\r\nBcc: x') == "Eve Bcc: x"


def test_same_secret_never_matches_empty() -> None:
    assert forms.same_secret("abc", "abc")
    assert not forms.same_secret("", "")
    assert not forms.same_secret(None, "abc")
    assert not forms.same_secret("abd", "abc")


def test_language_from_query_then_browser_then_german() -> None:
    assert forms.pick_language("en", "de-DE") == "en"
    assert forms.pick_language(None, "fr-FR, en-GB;q=0.8, de;q=0.5") == "en"
    assert forms.pick_language("xx", "fr") == "de"


def test_rate_limit_is_a_sliding_window_per_key() -> None:
    limit = forms.RateLimit(limit=2, window=60)
    assert limit.allow("a", 0) and limit.allow("a", 1)
    assert not limit.allow("a", 2)
    assert limit.allow("b", 2)
    assert limit.allow("a", 61)


def test_rate_limit_memory_is_bounded() -> None:
    limit = forms.RateLimit(limit=1, window=60, max_keys=100)
    for i in range(1000):
        limit.allow(f"ip{i}", float(i) / 1000)
    assert len(limit) <= 100


def test_paging_numbers() -> None:
    paging = forms.Paging(number=3, size=50, total=120)
    assert (paging.offset, paging.pages, paging.previous, paging.next) == (100, 3, 2, None)
    assert forms.Paging(number=1, size=50, total=0).pages == 1
    assert forms.page_number("abc") == 1 and forms.page_number("-4") == 1
    assert forms.page_number("7") == 7

"""The pure query builder: a person's words become quoted FTS5 terms, bounded; paging clamped."""

from __future__ import annotations

import sqlite3

import pytest
from hypothesis import given
from hypothesis import strategies as st

from listserv.archive.query import (
    HIT_END,
    HIT_START,
    MAX_TERMS,
    TOKENIZER,
    Page,
    fts_query,
    index_text,
    plain_snippet,
    post_number,
    segments,
    terms,
    valid_month,
)


@pytest.fixture(scope="module")
def fts() -> sqlite3.Connection:
    db = sqlite3.connect(":memory:")
    db.execute(f"CREATE VIRTUAL TABLE t USING fts5(subject, body, tokenize = '{TOKENIZER}')")
    db.execute("INSERT INTO t VALUES ('Einladung zum FACHTAG', 'Die Weiße Straße ist schön."
               " Übergänge gestalten, Anmeldung bis 3.12.')")
    db.execute("INSERT INTO t VALUES ('Sommerfest', 'Das schon bekannte Fest')")
    return db


def hits(db: sqlite3.Connection, words: str) -> int:
    query = fts_query(words)
    assert query is not None
    return db.execute("SELECT count(*) FROM t WHERE t MATCH ?", (query,)).fetchone()[0]


@pytest.mark.parametrize(("words", "count"), [
    ("straße", 1), ("STRAßE", 1), ("Straße", 1), ("weiße", 1), ("übergänge", 1),
    ("ÜBERGÄNGE", 1), ("fachtag", 1), ("schön", 1), ("schon", 1), ("fachtag schön", 1),
    ("fachtag sommerfest", 0), ("strasse", 0), ("ubergange", 0), ("3.12.", 1),
    ("Fachtag-Einladung", 0), ("Einladung Fachtag", 1),
])
def test_german_words_case_and_sz(fts: sqlite3.Connection, words: str, count: int) -> None:
    assert hits(fts, words) == count


@pytest.mark.parametrize("words", [
    'fachtag OR sommerfest', 'NOT fachtag', '"fachtag', 'subject:fachtag', 'fach*',
    'NEAR(fachtag schön)', '^fachtag', '(fachtag)', 'fachtag AND', "'; DROP TABLE t; --",
    "{subject body}: fachtag", "fachtag + schön",
])
def test_fts_syntax_is_never_syntax(fts: sqlite3.Connection, words: str) -> None:
    query = fts_query(words)
    assert query is not None
    fts.execute("SELECT count(*) FROM t WHERE t MATCH ?", (query,)).fetchone()  # never raises
    assert "OR" not in query.replace('"or"', "") and "*" not in query and ":" not in query


@given(st.text(max_size=400))
def test_any_input_gives_a_bounded_query_of_quoted_words(text: str) -> None:
    query = fts_query(text)
    if query is None:
        return
    parts = query.split(" AND ")
    assert 1 <= len(parts) <= MAX_TERMS
    for part in parts:
        assert part.startswith('"') and part.endswith('"') and '"' not in part[1:-1]
        assert all(ch.isalnum() or ch == " " for ch in part[1:-1])


def test_common_words_and_single_letters_are_dropped() -> None:
    assert fts_query("und der die a") is None
    assert terms("Fachtag und Anmeldung") == ["fachtag", "anmeldung"]
    assert terms("a b c Fachtag") == ["fachtag"]
    assert len(terms(" ".join(f"wort{i}" for i in range(50)))) == MAX_TERMS


def test_snippet_markers_cannot_be_forged_by_a_post() -> None:
    assert HIT_START not in index_text(f"x{HIT_START}y{HIT_END}")
    snippet = f"die {HIT_START}Weiße{HIT_END} Straße"
    assert segments(snippet) == [("die ", False), ("Weiße", True), (" Straße", False)]
    assert plain_snippet(snippet) == "die *Weiße* Straße"


@pytest.mark.parametrize(("number", "size", "offset", "clamped"), [
    (1, 20, 0, (1, 20)), ("3", "10", 20, (3, 10)), ("x", "y", 0, (1, 20)),
    (-5, 0, 0, (1, 1)), (10**9, 10**6, 999 * 50, (1000, 50)),
])
def test_paging_is_clamped(number: object, size: object, offset: int,
                           clamped: tuple[int, int]) -> None:
    page = Page.of(number, size)
    assert (page.number, page.size) == clamped and page.offset == offset


def test_months_and_numbers() -> None:
    assert valid_month("2026-11") == "2026-11"
    assert [valid_month(m) for m in ("2026-13", "2026-1", "../x", "")] == [None] * 4
    assert post_number("12") == 12 and post_number("#7") == 7
    assert post_number("") is None and post_number("0") is None

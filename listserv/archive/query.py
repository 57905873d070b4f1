"""Searching and paging the archive, pure: a person's words become a safe, bounded FTS5 query.

FTS5 has its own query language (``OR``, ``NOT``, ``NEAR``, ``col:``,
``^``, ``*`` prefixes, parentheses, quotes). A ``suche`` line is never
handed to it: ``fts_query`` keeps only the words (runs of letters and
digits, as the ``unicode61`` tokenizer itself splits them) and writes each
as a quoted string, so nothing a person writes is read as syntax. A word
written with inner punctuation ("Fachtag-Anmeldung", "3.12.") becomes a
phrase of its parts. The words are ANDed.

What keeps a query cheap: at most ``MAX_TERMS`` terms of at most
``MAX_TERM_CHARS`` characters, no prefix or NEAR queries (which are the
slow ones), and the most common words (``STOPWORDS``: "und", "der", "the")
dropped, since a term that is in every post makes ranking read every
post's entry. A query with nothing left is no query: the caller says so.

The tokenizer is ``unicode61 remove_diacritics 0``: it folds case for every
letter (Ä → ä; ß has no lower/upper pair to fold but stays ß both ways), and
keeps umlauts as they are, so "schön" does not find "schon" and "zählen"
does not find "zahlen". "ae" for "ä" is not folded (not needed, issue 14).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

TOKENIZER = "unicode61 remove_diacritics 0"
MAX_TERMS = 6
MAX_TERM_CHARS = 40
MAX_INPUT_CHARS = 300
MIN_TERM_CHARS = 2
HIT_START, HIT_END = "\x02", "\x03"   # snippet() markers; never in indexed text (see index_text)

STOPWORDS = frozenset("""
aber alle als also am an auch auf aus bei bin bis da dann das dass dem den der des die
dies diese dieser doch du durch ein eine einem einen einer eines er es für hat hatte ich
ihr im in ist ja kann mit nach nicht noch nur oder sich sie sind so über um und uns von
vor war wie wir wird zu zum zur a an and are as at be by for from has have in is it of on
or that the this to was with
""".split())  # noqa: SIM905 (a word list)

_WORD = re.compile(r"[^\W_]+")
_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


def terms(text: str) -> list[str]:
    """The searchable terms of ``text``: each a word, or a phrase of a word's parts."""
    found: list[str] = []
    for chunk in text[:MAX_INPUT_CHARS].split():
        parts = [p.lower()[:MAX_TERM_CHARS] for p in _WORD.findall(chunk)]
        if len(parts) == 1 and (len(parts[0]) < MIN_TERM_CHARS or parts[0] in STOPWORDS):
            continue
        if parts:
            term = " ".join(parts[:MAX_TERMS])
            if term not in found:
                found.append(term)
        if len(found) == MAX_TERMS:
            break
    return found


def fts_query(text: str) -> str | None:
    """An FTS5 MATCH expression for the words in ``text``, or None when no word is left.

    Every term is a double-quoted string holding only letters, digits and
    spaces: no operator, column filter or prefix can come from the input.
    """
    found = terms(text)
    if not found:
        return None
    return " AND ".join(f'"{term}"' for term in found)


def index_text(text: str) -> str:
    """Text as indexed: without our snippet markers, so a post cannot fake a highlight."""
    return text.replace(HIT_START, " ").replace(HIT_END, " ")


def segments(snippet: str) -> list[tuple[str, bool]]:
    """A snippet as (text, is_hit) pieces, for a page to escape and mark, or a mail."""
    out: list[tuple[str, bool]] = []
    for i, piece in enumerate(re.split(f"[{HIT_START}{HIT_END}]", snippet)):
        if piece:
            out.append((piece, i % 2 == 1))
    return out


def plain_snippet(snippet: str, mark: str = "*") -> str:
    """A snippet for a text mail: hits between ``mark`` characters, on one line."""
    text = "".join(f"{mark}{t}{mark}" if hit else t for t, hit in segments(snippet))
    return " ".join(text.split())


@dataclass(frozen=True)
class Page:
    """One page of a listing: ``number`` from 1, ``size`` rows; both clamped."""

    number: int = 1
    size: int = 20

    MAX_SIZE = 50
    MAX_NUMBER = 1000   # page 1,000 of 50 is post 50,000: deeper is a crawler, not a reader

    @classmethod
    def of(cls, number: object = 1, size: object = 20) -> Page:
        """A page from what a request said (strings, junk); out of range is clamped."""
        def whole(value: object, default: int) -> int:
            try:
                return int(str(value))
            except ValueError:
                return default
        return cls(min(max(whole(number, 1), 1), cls.MAX_NUMBER),
                   min(max(whole(size, 20), 1), cls.MAX_SIZE))

    @property
    def offset(self) -> int:
        return (self.number - 1) * self.size


def month_of(moment: datetime) -> str:
    return moment.strftime("%Y-%m")


def valid_month(text: str) -> str | None:
    """``"2026-11"`` as given, or None for anything else (a path segment from a URL)."""
    return text if _MONTH.match(text or "") else None


def post_number(text: str) -> int | None:
    """The number in ``hole 12`` / ``get #12``; None when there is none or it is absurd."""
    match = re.search(r"\d{1,9}", text)
    return int(match.group(0)) if match and int(match.group(0)) > 0 else None

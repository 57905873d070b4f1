"""The corpus of natural replies and requests (tests/commands/corpus*.py), scored.

Both sets must have no wrong action and at least 97 % right; everything else
must be a re-ask. ``pytest -s`` (or ``bench/reader_corpus.py``) prints the table.
"""

from __future__ import annotations

import pytest

from tests.commands import corpus_dev, corpus_heldout, corpus_heldout2
from tests.commands.corpus import outcome, score

SETS = {"development": corpus_dev.CASES, "held-out": corpus_heldout.CASES,
        "held-out 2": corpus_heldout2.CASES}


@pytest.mark.parametrize("name", list(SETS))
def test_no_wrong_action_and_97_percent_right(name: str) -> None:
    result, misses = score(SETS[name])
    print("\n" + result.line(name))
    for case, got, category in misses:
        print(f"    {case['id']}: expected {case['expect']}, got {got} ({category})")
    assert result.wrong_actions == 0, misses
    assert result.silent == 0, misses
    assert result.percent_right >= 97.0, misses


def test_the_corpus_is_large_and_covers_every_kind() -> None:
    cases = corpus_dev.CASES + corpus_heldout.CASES + corpus_heldout2.CASES
    assert len(cases) >= 150
    assert len({c["id"] for c in cases}) == len(cases)
    situations = {c["situation"] for c in cases}
    assert situations >= {"own_subscribe", "own_unsubscribe", "invitation", "mod_post",
                          "mod_post_req", "mod_member", "mod_invite", "list"}
    bodies = " ".join(c.get("body", "") for c in cases)
    for macro in ("{gmail}", "{apple}", "{ios}", "{tb}\n\n", "{outlook}", "{outlook_plain}",
                  "{orig}", "{en_gmail}", "{en_outlook}", "Von meinem iPhone gesendet"):
        assert macro in bodies, macro
    assert sum("html" in c for c in cases) >= 5
    assert sum(c.get("via") == "request" for c in cases) >= 6


def test_a_case_runs_through_the_core_as_written() -> None:
    case = {"situation": "mod_post", "body": "ok\n\n{gmail}", "expect": "approve"}
    assert outcome(case)[0] == "approve"
    assert outcome({**case, "body": "\n\n{gmail}"})[0] == "reask"

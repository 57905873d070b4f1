"""Score the reply/request reader on the corpus: listserv's own, and mail-parser-reply.

    PYTHONPATH=$PWD python3 bench/reader_corpus.py [-v]

Prints, per set (development, held-out): cases, right, wrong actions,
re-asks, silent. The second block swaps only the quote stripper: the fresh
lines come from the PyPI library ``mail-parser-reply`` (``EmailReplyParser``,
languages de+en) instead of ``listserv.mail.text.split_reply``; the decision
on those lines is the same core (``commands.reader.decide_lines``). The
library is not a dependency of listserv: the block is skipped without it.
"""

from __future__ import annotations

import sys
from email.message import EmailMessage

from listserv.mail.text import body_text
from tests.commands import corpus_dev, corpus_heldout, corpus_heldout2
from tests.commands.corpus import score

SETS = [("development", corpus_dev.CASES), ("held-out", corpus_heldout.CASES),
        ("held-out 2", corpus_heldout2.CASES)]


def library_lines(msg: EmailMessage) -> list[str]:
    from mailparser_reply import EmailReplyParser

    text = EmailReplyParser(languages=["de", "en"]).parse_reply(text=body_text(msg))
    return [line.strip() for line in text.splitlines() if line.strip()]


def main() -> None:
    verbose = "-v" in sys.argv
    readers = [("listserv reader", None)]
    try:
        import mailparser_reply  # noqa: F401

        readers.append(("mail-parser-reply + same decision", library_lines))
    except ImportError:
        print("mail-parser-reply not installed: its block is skipped")
    for name, lines_of in readers:
        print(name)
        for set_name, cases in SETS:
            result, misses = score(cases, lines_of) if lines_of else score(cases)
            print("  " + result.line(set_name))
            replies = [c for c in cases if c["situation"] != "list"]
            only, _ = score(replies, lines_of) if lines_of else score(replies)
            print("  " + only.line(f"{set_name}, replies only"))
            for case, got, category in misses if verbose else []:
                expected = str(case["expect"])
                print(f"      {case['id']:10} expected {expected:22} got {got:14} {category}")


if __name__ == "__main__":
    main()

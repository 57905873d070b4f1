"""The network's sample mails parse as ``shared/samples/expected.json`` says; no corpus mail
makes the parser raise."""

from __future__ import annotations

import email
import email.policy
import json
from email.message import EmailMessage
from pathlib import Path

import pytest

from listserv.commands.parse import Command, Context, Verb, parse_commands
from listserv.commands.reader import Asker, Choice, read_reply
from listserv.commands.requests import Ask, read_request
from listserv.mail.text import body_text, header_text

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
SAMPLES = SHARED / "samples"
CORPUS = SHARED / "corpus"
NOT_MAIL = {".json", ".md", ".tsv"}

INTENTS = {
    "subscribe": Verb.SUBSCRIBE,
    "unsubscribe": Verb.UNSUBSCRIBE,
    "confirm": Verb.CONFIRM,
    "approve": Verb.APPROVE,
    "reject": Verb.REJECT,
    "discard": Verb.DISCARD,
    "help": Verb.HELP,
}


def load(path: Path) -> EmailMessage:
    return email.message_from_bytes(path.read_bytes(), policy=email.policy.default)  # type: ignore[return-value]


def context_for(msg: EmailMessage) -> str:
    """The role the router would pick from the recipient address."""
    to = header_text(msg, "To").lower()
    if "-confirm+" in to:
        return "reply"
    if "-request@" in to:
        return "request"
    return "post"


def expected() -> dict[str, dict[str, str]]:
    if not (SAMPLES / "expected.json").is_file():
        return {}
    return json.loads((SAMPLES / "expected.json").read_text(encoding="utf-8"))


def actionable(commands: list[Command]) -> list[Verb]:
    """The verbs the caller would act on; UNKNOWN only earns a "not understood" answer."""
    return [c.verb for c in commands if c.verb is not Verb.UNKNOWN]


@pytest.mark.parametrize("name", sorted(expected()) or ["<samples missing>"])
def test_sample_intent(name: str) -> None:
    if not expected():
        pytest.skip(f"samples not found at {SAMPLES}")
    msg = load(SAMPLES / name)
    intent = expected()[name]["intent"]
    context = context_for(msg)
    if context == "reply":  # replies are read by the reader, as roles/confirm.py does
        asker = Asker.MODERATOR if intent in ("approve", "reject", "discard") else Asker.PERSON
        meaning = {Choice.YES: "confirm" if asker is Asker.PERSON else "approve",
                   Choice.NO: "reject", Choice.DISCARD: "discard", Choice.IGNORE: "none",
                   Choice.NONE: "none"}[read_reply(msg, asker).choice]
        assert meaning == intent, expected()[name]["note"]
        return
    if context == "post":  # the list address: roles/posting.py reads requests so
        ask = read_request(msg, "").ask
        found = {Ask.JOIN: [Verb.SUBSCRIBE], Ask.LEAVE: [Verb.UNSUBSCRIBE]}.get(ask, [])
    else:
        found = actionable(parse_commands(msg, Context.REQUEST))
    assert found == ([] if intent == "none" else [INTENTS[intent]]), expected()[name]["note"]


def test_sample_reject_reason_is_kept_whole() -> None:
    path = SAMPLES / "06-outlook-moderator-reject.eml"
    if not path.is_file():
        pytest.skip(f"sample not found: {path}")
    reading = read_reply(load(path), Asker.MODERATOR)
    assert (reading.choice, reading.reason) == (
        Choice.NO, "Bitte nicht über den Verteiler werben.")


def test_sample_contexts_cover_all_three_addresses() -> None:
    if not expected():
        pytest.skip(f"samples not found at {SAMPLES}")
    contexts = {context_for(load(SAMPLES / name)) for name in expected()}
    assert contexts == {"reply", "request", "post"}


def test_sample_html_only_mail_is_read() -> None:
    path = SAMPLES / "09-abmelden-outlook-html.eml"
    if not path.is_file():
        pytest.skip(f"sample not found: {path}")
    assert "tragen Sie mich aus dem Verteiler aus" in body_text(load(path))


def corpus_files() -> list[Path]:
    return sorted(
        path
        for folder in ("messages", "bounces")
        for path in (CORPUS / folder).rglob("*")
        if path.is_file() and path.suffix.lower() not in NOT_MAIL
    )


def test_corpus_never_makes_the_parser_raise() -> None:
    files = corpus_files()
    if not files:
        pytest.skip(f"corpus not found at {CORPUS}")
    for path in files:
        msg = load(path)
        assert isinstance(parse_commands(msg, Context.REQUEST), list), path
        assert isinstance(read_request(msg, "a@b.example").ask, Ask), path
        for asker in Asker:
            assert isinstance(read_reply(msg, asker).choice, Choice), path
        assert isinstance(body_text(msg), str), path
    assert len(files) > 1000  # the whole corpus was read, not a stray subfolder


def test_corpus_hazard_files_are_read() -> None:
    """The files on which the stdlib raises (python-email-hazards.json) still give text."""
    hazards = CORPUS / "python-email-hazards.json"
    if not hazards.is_file():
        pytest.skip(f"not found: {hazards}")
    names = json.loads(hazards.read_text(encoding="utf-8"))["files"]
    read = 0
    for name in names:
        path = CORPUS / name
        if path.is_file():
            msg = load(path)
            assert isinstance(header_text(msg, "From"), str)
            read += bool(body_text(msg).strip())
            parse_commands(msg, Context.REQUEST)
            read_request(msg, "a@b.example")
            read_reply(msg, Asker.MODERATOR)
    assert read >= 0.8 * len(names)

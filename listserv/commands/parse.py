"""Commands by mail to ``L-request@D`` (DESIGN §5): from an ``EmailMessage`` to ``Command``s.

Pure: no I/O, no clock, no database; whether the sender may give a command,
whether the mail is automatic (``Auto-Submitted``) and what a token is bound to
are the caller's business. The subject, then up to ``max_lines`` non-empty
fresh body lines are read, one command a line; ``end``/``ende`` stops.

Two other readers live beside this one: a reply to one of our notices is read
by ``commands.reader`` (a decision, never a command list), and a mail to the
list address by ``commands.requests`` (a join, a leave, a colleague, or a post).
A ``confirm TOKEN`` line, or a token in the subject, comes back as ``CONFIRM``
with the token only: what the reply decided is the reader's business.

A line nobody understood comes back once as ``Verb.UNKNOWN`` when nothing else
was found, so the caller can answer "not understood, send 'hilfe'".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.message import Message
from enum import StrEnum

from listserv.mail.text import (
    body_text,
    header_text,
    split_reply,
    strip_greeting,
    strip_subject,
)

__all__ = ["Command", "Context", "Verb", "find_token", "parse_commands"]


class Verb(StrEnum):
    """What a command asks for; values are the English command words."""

    SUBSCRIBE = "subscribe"
    UNSUBSCRIBE = "unsubscribe"
    CONFIRM = "confirm"
    HELP = "help"
    APPROVE = "approve"
    REJECT = "reject"
    DISCARD = "discard"
    WHO = "who"
    INVITE = "invite"
    REMOVE = "remove"
    NOMAIL = "nomail"
    MAIL = "mail"
    SETTINGS = "settings"
    INDEX = "index"
    GET = "get"
    SEARCH = "search"
    UNKNOWN = "unknown"


class Context(StrEnum):
    """Which list address the mail was sent to. Only ``-request`` is read as commands
    here; replies and the list address have their own readers (module docstring)."""

    REQUEST = "request"


@dataclass(frozen=True)
class Command:
    """One command. ``argument``: the token for CONFIRM ("" = the one in the address),
    the reason for REJECT, "ADDRESS [Name]" for INVITE/REMOVE, the line for UNKNOWN,
    the number for GET ("" when none was given), the words for SEARCH."""

    verb: Verb
    argument: str = ""


_WORDS: dict[str, Verb] = {
    **dict.fromkeys(["subscribe", "join", "anmelden", "eintragen", "abonnieren"], Verb.SUBSCRIBE),
    **dict.fromkeys(["unsubscribe", "leave", "abmelden", "austragen"], Verb.UNSUBSCRIBE),
    **dict.fromkeys(["confirm", "bestätigen", "bestaetigen"], Verb.CONFIRM),
    **dict.fromkeys(["help", "hilfe"], Verb.HELP),
    **dict.fromkeys(
        ["approve", "approved", "ok", "okay", "yes", "ja", "freigeben", "freigegeben"],
        Verb.APPROVE,
    ),
    **dict.fromkeys(["reject", "rejected", "ablehnen", "abgelehnt"], Verb.REJECT),
    **dict.fromkeys(["discard", "verwerfen", "verworfen"], Verb.DISCARD),
    **dict.fromkeys(["who", "mitglieder"], Verb.WHO),
    **dict.fromkeys(["invite", "einladen"], Verb.INVITE),
    **dict.fromkeys(["remove", "entfernen"], Verb.REMOVE),
    **dict.fromkeys(["nomail", "pausieren", "pause"], Verb.NOMAIL),
    **dict.fromkeys(["mail", "fortsetzen", "resume"], Verb.MAIL),
    **dict.fromkeys(["settings", "einstellungen"], Verb.SETTINGS),
    **dict.fromkeys(["index", "inhalt", "inhaltsverzeichnis"], Verb.INDEX),
    **dict.fromkeys(["get", "hole", "holen"], Verb.GET),
    **dict.fromkeys(["search", "suche", "suchen"], Verb.SEARCH),
}
_END_WORDS = frozenset({"end", "ende"})
_ALLOWED: dict[Context, frozenset[Verb]] = {
    Context.REQUEST: frozenset(Verb) - {Verb.APPROVE, Verb.REJECT, Verb.DISCARD, Verb.UNKNOWN},
}

_TOKEN = re.compile(r"(?<![A-Za-z0-9])[A-Za-z2-7]{32}(?![A-Za-z0-9])")
_ADDRESS = re.compile(r"[^\s<>()\[\]\"',;:@]+@[^\s<>()\[\]\"',;:@]+\.[^\s<>()\[\]\"',;:@.]+")
_POLITE = re.compile(r"^((bitte|please|gerne|hiermit|ich)\b[\s,:!]*)+", re.IGNORECASE)
_FIRST_WORD = re.compile(r"^\W*(o\.k\.?|[^\W\d_]+)(.*)$", re.DOTALL | re.IGNORECASE)
# Free text asking to join or leave. LEAVE is tried first: "mich aus dem Verteiler
# austragen und die neue Adresse eintragen" holds a join word too.
_LEAVE = re.compile(
    r"\b(abmelden|abmeldung|abgemeldet|austragen|austragung|ausgetragen|unsubscribe|streichen|"
    r"löschen|loeschen|entfernen|(melden|melde)\s+(sie\s+)?mich\b.*\bab|tragen sie mich\b.*\baus|"
    r"nehmen sie mich\b.*\b(aus|von|vom)|(remove|take)\s+me\b|leave\s+the\b)\b",
    re.IGNORECASE,
)
_JOIN = re.compile(
    r"\b(anmelden|anmeldung|eintragen|eintragung|abonnieren|aufnehmen|aufnahme|aufgenommen|"
    r"hinzufügen|hinzufuegen|subscribe|(melden|melde)\s+(sie\s+)?mich\b.*\ban|"
    r"tragen sie mich\b.*\bein|nehmen sie mich\b.*\bauf|setzen sie mich|(add|sign)\s+me\b|"
    r"join\s+the\b)\b",
    re.IGNORECASE,
)
_MAX_LINE_CHARS = 1000  # a command line is short; bounds the regex work on hostile input


def find_token(text: str) -> str | None:
    """The first confirmation token in text (32 chars of base32), lowercased, or None."""
    match = _TOKEN.search(text)
    return match.group(0).lower() if match else None


def _first_word(line: str) -> tuple[str, str]:
    """The leading word, lowercased, and the rest with punctuation after the word removed."""
    line = _POLITE.sub("", line)
    match = _FIRST_WORD.match(line)
    if not match:
        return "", ""
    word = match.group(1).lower()
    word = "ok" if word.startswith("o.k") else word
    return word, match.group(2).strip().lstrip(":,.!;-–—").strip()


def _address_argument(rest: str) -> str | None:
    """ "ADDRESS [Name]" from "max@x.de Max Muster" or "Max Muster <max@x.de>"; None without
    an address, so that "entfernen Sie mich aus dem Verteiler" is not a REMOVE."""
    rest = rest.replace("mailto:", "")
    match = _ADDRESS.search(rest)
    if not match:
        return None
    before, after = rest[: match.start()], rest[match.end() :]
    bracketed = before.rstrip().endswith("<")
    name = before.rstrip().rstrip("<") if bracketed else after
    name = " ".join(re.sub(r"<[^>]*>?|[<>\"]", " ", name).split()).strip(" ,;-")
    return f"{match.group(0)} {name}".strip()


def _word_command(line: str, allowed: frozenset[Verb]) -> Command | None:
    """A command given by its word at the start of the line, if that verb is allowed here."""
    word, rest = _first_word(line)
    verb = _WORDS.get(word)
    if verb is None or verb not in allowed:
        return None
    if verb is Verb.CONFIRM:
        return Command(verb, find_token(rest) or "")
    if verb is Verb.REJECT:
        return Command(verb, rest)
    if verb in (Verb.INVITE, Verb.REMOVE):
        argument = _address_argument(rest)
        return Command(verb, argument) if argument else None
    if verb is Verb.GET:
        number = re.match(r"^(nr\.?|no\.?|nummer|number)?\s*#?\s*(\d{1,9})\b", rest,
                          re.IGNORECASE)
        return Command(verb, number.group(2) if number else "")
    if verb is Verb.SEARCH:
        return Command(verb, " ".join(rest.split())[:300])
    return Command(verb)


def _free_text(line: str) -> Command | None:
    """A join/leave request in prose ("bitte tragen Sie mich aus dem Verteiler aus")."""
    if _LEAVE.search(line):
        return Command(Verb.UNSUBSCRIBE)
    if _JOIN.search(line):
        return Command(Verb.SUBSCRIBE)
    return None


def _explicit(line: str, *, subject: bool = False) -> Command | None:
    """A command given by its word at the start of the line; a token alone in a subject
    ("Re: confirm <token>" styles) is a CONFIRM of that token."""
    command = _word_command(line, _ALLOWED[Context.REQUEST])
    if command is None and subject and (token := find_token(line)):
        command = Command(Verb.CONFIRM, token)
    return command


def _dedup(commands: list[Command | None]) -> list[Command]:
    return list(dict.fromkeys(c for c in commands if c is not None))


def parse_commands(msg: Message, context: Context = Context.REQUEST, *, max_lines: int = 5
                   ) -> list[Command]:
    """The commands in a mail sent to ``-request``.

    Never raises, whatever the mail. The subject first, then up to
    ``max_lines`` non-empty fresh body lines. Greetings ("Hallo,", "Liebe
    Frau X,") are skipped. Command words win: prose is read only when no
    line holds a command word, so a "Re: Ihre Anmeldung" subject does not add
    a SUBSCRIBE to a body that says "abmelden". Duplicates are dropped in
    order: subject and body "anmelden" give one SUBSCRIBE.
    """
    reply = split_reply(body_text(msg))
    fresh = [strip_greeting(line[:_MAX_LINE_CHARS]) for line in reply.fresh]
    subject = strip_subject(header_text(msg, "Subject")[:_MAX_LINE_CHARS])
    body: list[str] = []
    for line in [line for line in fresh if line][:max_lines]:
        if _first_word(line)[0] in _END_WORDS:
            break
        body.append(line)
    lines = [(subject, True)] if subject else []
    lines += [(line, False) for line in body]
    found = _dedup([_explicit(line, subject=subj) for line, subj in lines])
    found = found or _dedup([_free_text(line) for line, _ in lines])
    if not found and body:
        return [Command(Verb.UNKNOWN, body[0])]
    return found

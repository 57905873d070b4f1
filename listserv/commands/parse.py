"""Commands by mail (DESIGN §5): from an ``EmailMessage`` to a short list of :class:`Command`.

Pure: no I/O, no clock, no database; whether the sender may give a command,
whether the mail is automatic (``Auto-Submitted``) and what a token is bound to
are the caller's business. What is read depends on the address the mail came to:

* ``Context.POST`` (``L@D``): a command only when the subject or the first
  line of the body asks to join or leave; anything else is a post (``[]``).
  Free text must point into or out of the list ("in den Verteiler", "vom
  Verteiler", "from the list") and, except in a short subject, sound personal
  ("mich", "bitte", "me"), so "bitte bis Freitag zum Fachtag anmelden" stays a post.
* ``Context.REQUEST`` (``L-request@D``): the subject, then up to ``max_lines``
  non-empty body lines, one command a line; ``end``/``ende`` stops.
* ``Context.REPLY`` (``L-confirm+TOKEN@D``): one decision from the first line
  of the reply; an empty reply (nothing above the quote) is ``CONFIRM``. The
  subject is not read: it repeats the notice ("Bitte bestätigen Sie …").

The first word decides ("Ja, passt." is APPROVE; "ok, aber …" too); only
REJECT keeps the rest of its line (and a hard-wrapped continuation) as reason;
"Ablehnen" alone takes the line right below it.
A line nobody understood comes back once as ``Verb.UNKNOWN`` when nothing else
was found, so the caller can answer "not understood, send 'hilfe'".
``Command(Verb.UNKNOWN, "")`` in REPLY means the reply had text only below a
``>`` quote (a bottom post), which is never read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.message import Message
from enum import StrEnum

from listserv.mail.text import body_text, header_text, split_reply, strip_subject

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
    UNKNOWN = "unknown"


class Context(StrEnum):
    """Which list address the mail was sent to; it decides what is read (module docstring)."""

    POST = "post"
    REQUEST = "request"
    REPLY = "reply"


@dataclass(frozen=True)
class Command:
    """One command. ``argument``: the token for CONFIRM ("" = the one in the address),
    the reason for REJECT, "ADDRESS [Name]" for INVITE/REMOVE, the line for UNKNOWN."""

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
}
_END_WORDS = frozenset({"end", "ende"})
_ALLOWED: dict[Context, frozenset[Verb]] = {
    Context.POST: frozenset({Verb.SUBSCRIBE, Verb.UNSUBSCRIBE}),
    Context.REQUEST: frozenset(Verb) - {Verb.APPROVE, Verb.REJECT, Verb.DISCARD, Verb.UNKNOWN},
    Context.REPLY: frozenset({Verb.CONFIRM, Verb.HELP, Verb.APPROVE, Verb.REJECT, Verb.DISCARD}),
}

_TOKEN = re.compile(r"(?<![A-Za-z0-9])[A-Za-z2-7]{32}(?![A-Za-z0-9])")
_ADDRESS = re.compile(r"[^\s<>()\[\]\"',;:@]+@[^\s<>()\[\]\"',;:@]+\.[^\s<>()\[\]\"',;:@.]+")
_GREETING = re.compile(
    r"^(hallo|hello|hi|hey|moin|servus|guten\s+(morgen|tag|abend)|sehr\s+geehrte[rs]?|"
    r"liebe[rs]?|dear|good\s+(morning|afternoon|evening))\b",
    re.IGNORECASE,
)
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
# In a post, the request must also point into or out of the list ("in den
# Verteiler", "vom E-Mail-Verteiler", "from the list").
_LIST = (
    r"\s+((den|die|das|dem|der|ihren|ihre|ihrem|ihrer|euren|eure|diesen|diese|the|your|this)\s+)?"
    r"([\w-]+\s+)?[\w-]*(verteiler\w*|liste\w*|list)\b"
)
_INTO_LIST = re.compile(r"\b(in|ins|auf|zu|zum|zur|für|to|on)" + _LIST, re.IGNORECASE)
_OUT_OF_LIST = re.compile(r"\b(aus|von|vom|from|off)" + _LIST, re.IGNORECASE)
_PERSONAL = re.compile(r"\b(mich|mir|mein\w*|ich|bitte|me|my|please|i)\b", re.IGNORECASE)
_NEGATION = re.compile(r"\b(nicht|kein\w*|not|no|never|nie)\b", re.IGNORECASE)
_MAX_LINE_CHARS = 1000  # a command line is short; bounds the regex work on hostile input
_REASON_WRAP = 60  # a reason line this long without a full stop was hard-wrapped


def find_token(text: str) -> str | None:
    """The first confirmation token in text (32 chars of base32), lowercased, or None."""
    match = _TOKEN.search(text)
    return match.group(0).lower() if match else None


def _strip_greeting(line: str) -> str:
    """Drop "Hallo," / "Liebe Frau X," openings; keep what follows a comma on the same line."""
    for _ in range(3):
        if not _GREETING.match(line):
            break
        _, comma, rest = line.partition(",")
        if comma:
            line = rest.strip()
        elif len(line) <= 40 or line.endswith("!"):
            return ""
        else:
            break
    return line


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
    return Command(verb)


def _free_text(line: str, *, strict: bool) -> Command | None:
    """A join/leave request in prose; strict (POST) also needs the direction named."""
    if _LEAVE.search(line) and (not strict or _OUT_OF_LIST.search(line)):
        return Command(Verb.UNSUBSCRIBE)
    if _JOIN.search(line) and (not strict or _INTO_LIST.search(line)):
        return Command(Verb.SUBSCRIBE)
    return None


def _explicit(line: str, context: Context, *, subject: bool = False) -> Command | None:
    """A command given by its word; in POST only when the word is the whole line."""
    if context is Context.REQUEST:
        command = _word_command(line, _ALLOWED[context])
        if command is None and subject and (token := find_token(line)):
            command = Command(Verb.CONFIRM, token)  # "Re: confirm <token>" style subjects
        return command
    word, rest = _first_word(line)
    verb = _WORDS.get(word)
    if verb in _ALLOWED[Context.POST] and not _POLITE.sub("", rest).strip(" .,!?"):
        return Command(verb)  # "anmelden", "Bitte abmelden!"
    return None


def _prose(line: str, context: Context, *, subject: bool = False) -> Command | None:
    """A join/leave request in free text. In POST it must name the list and, unless
    it is a short subject, sound personal ("mich", "bitte"), so that "Bitte melden
    Sie sich zum Fachtag an" in a post stays a post."""
    if context is Context.REQUEST:
        return _free_text(line, strict=False)
    if not ((subject and len(line.split()) <= 8) or _PERSONAL.search(line)):
        return None
    return _free_text(line, strict=True)


def _reply_command(fresh: list[str], below_quote: bool) -> list[Command]:
    """One decision from the first line of a reply to a notice (REPLY context)."""
    lines = [line for line in fresh if line]
    if not lines:
        return [Command(Verb.UNKNOWN)] if below_quote else [Command(Verb.CONFIRM)]
    first = lines[0]
    word, rest = _first_word(first)
    command = _word_command(first, _ALLOWED[Context.REPLY])
    if command is None and word.startswith(("bestätig", "bestaetig", "confirm")):
        command = Command(Verb.CONFIRM, find_token(rest) or "")  # "Ich bestätige."
    if command is not None and command.verb is Verb.CONFIRM and _NEGATION.search(rest):
        command = None  # "Ich bestätige nicht ..."
    if command is None:
        return [Command(Verb.UNKNOWN, first)]
    if command.verb is Verb.REJECT:
        command = Command(Verb.REJECT, _reason(command.argument, fresh, fresh.index(first)))
    return [command]


def _reason(reason: str, fresh: list[str], index: int) -> str:
    """The reject reason, joined with up to two hard-wrapped continuation lines."""
    parts = [reason] if reason else []
    line = fresh[index]
    for following in fresh[index + 1 : index + 3]:
        if not following or len(line) < _REASON_WRAP or line.endswith((".", "!", "?")):
            break
        parts.append(following)
        line = following
    if not parts:  # "Ablehnen" alone: the reason is on the line right below
        nxt = fresh[index + 1] if index + 1 < len(fresh) else ""
        parts = [nxt] if nxt and _first_word(nxt)[0] not in _WORDS else []
    return " ".join(parts)[:500]


def _dedup(commands: list[Command | None]) -> list[Command]:
    return list(dict.fromkeys(c for c in commands if c is not None))


def parse_commands(msg: Message, context: Context, *, max_lines: int = 5) -> list[Command]:
    """The commands in a mail sent to a list address of the given context.

    Never raises, whatever the mail. POST and REQUEST read the subject first,
    then the body: REQUEST up to ``max_lines`` non-empty fresh lines, POST its
    first line only (REPLY decides on its first line). Greetings ("Hallo,",
    "Liebe Frau X,") are skipped. Command words win: prose is read only when no
    line holds a command word, so a "Re: Ihre Anmeldung" subject does not add a
    SUBSCRIBE to a body that says "abmelden". Duplicates are dropped in order:
    subject and body "anmelden" give one SUBSCRIBE.
    """
    reply = split_reply(body_text(msg))
    fresh = [_strip_greeting(line[:_MAX_LINE_CHARS]) for line in reply.fresh]
    if context is Context.REPLY:
        return _reply_command(fresh, reply.text_below_quote)
    subject = strip_subject(header_text(msg, "Subject")[:_MAX_LINE_CHARS])
    body: list[str] = []
    for line in [line for line in fresh if line][: 1 if context is Context.POST else max_lines]:
        if _first_word(line)[0] in _END_WORDS:
            break
        body.append(line)
    lines = [(subject, True)] if subject else []
    lines += [(line, False) for line in body]
    found = _dedup([_explicit(line, context, subject=subj) for line, subj in lines])
    found = found or _dedup([_prose(line, context, subject=subj) for line, subj in lines])
    if not found and body and context is Context.REQUEST:
        return [Command(Verb.UNKNOWN, body[0])]
    return found

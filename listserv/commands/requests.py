"""Requests written in free text: is a mail to the list address a request, not a post?

Pure, never raises. People write to the list address as to a colleague:
"ich möchte gerne auf die Mailingliste", "bitte streichen Sie mich aus dem
Verteiler", "please add me", "bitte nehmen Sie meine Kollegin x@… auf".
Reading such a mail as a post would put a request before every member; reading
an announcement ("Anmeldung zum Fachtag bis 25.11.") as a request would swallow
a post. Both are wrong actions, so the reader is conservative:

* ``Ask.JOIN`` / ``Ask.LEAVE``: the sender herself (``ich``/``mich``/``me``/
  ``I``), a join or leave phrase, and the list named ("in den Verteiler", "auf
  die Mailingliste", "from the list") — or a phrase that can only mean the list
  ("nehmen Sie mich auf", "unsubscribe", "add me"); never a line about an event
  ("zum Fachtag", "für die Fortbildung").
* ``Ask.COLLEAGUE``: a join phrase about someone else ("meine Kollegin",
  "my colleague") with that person's address in the same line.
* ``Ask.LIKE_JOIN``: only a hint (the list named together with a join word, "die
  Infos bekommen"): the post goes its normal way, and a held-post notice offers
  "aufnehmen" beside ok/ablehnen/verwerfen.
* ``Ask.NONE``: a post.

Only the subject and the first three lines the sender wrote are read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.message import Message
from enum import StrEnum

from listserv.mail.text import body_text, fresh_lines, header_text, strip_subject

__all__ = ["Ask", "Asked", "read_request"]


class Ask(StrEnum):
    JOIN = "join"
    LEAVE = "leave"
    COLLEAGUE = "colleague"
    LIKE_JOIN = "like_join"
    NONE = "none"


@dataclass(frozen=True)
class Asked:
    """What the mail asks; ``address``/``name`` of the colleague for COLLEAGUE."""

    ask: Ask
    address: str = ""
    name: str = ""


_MAX_CHARS = 600
_GREETING = re.compile(
    r"^(hallo|hello|hi|hey|moin|servus|guten\s+(morgen|tag|abend)|sehr\s+geehrte[rs]?|"
    r"liebe[rs]?|dear|good\s+(morning|afternoon|evening))\b[^,!]{0,60}[,!]?\s*",
    re.IGNORECASE,
)
_LIST_NAME = r"([\w-]*(verteiler\w*|mailingliste\w*|mailing-liste\w*|mailing\s+list)|\blist)\b"
_INTO_LIST = re.compile(
    r"\b(in|ins|auf|zu|zum|zur|für|to|on)\s+((den|die|das|dem|der|ihren|ihre|ihrem|ihrer|"
    r"euren|eure|diesen|diese|the|your|this|e-?mail)\s+)?([\w-]+\s+)?" + _LIST_NAME,
    re.IGNORECASE)
_OUT_OF_LIST = re.compile(
    r"\b(aus|von|vom|from|off)\s+((den|die|das|dem|der|ihren|ihre|ihrem|ihrer|euren|eurem|"
    r"diesem|the|your|this)\s+)?([\w-]+\s+)?" + _LIST_NAME,
    re.IGNORECASE)
_SELF = re.compile(r"\b(ich|mich|mir|me|i|i'm|i'd)\b", re.IGNORECASE)
_OTHER_PERSON = re.compile(
    r"\b(kolleg\w*|colleague\w*|frau|herr|herrn|mitarbeiter\w*|praktikant\w*|nachfolger\w*|"
    r"vertretung|referendar\w*)\b", re.IGNORECASE)
_EVENT = re.compile(
    r"\b(zum|zur|für\s+(den|die|das|unseren|unsere)|beim|vom|am)\s+[\w-]*(fachtag|veranstaltung|"
    r"fortbildung|workshop|treffen|seminar|tagung|elternabend|termin|konferenz|kurs|schulung|"
    r"ausflug|fest|vortrag|webinar|infoabend|sitzung|arbeitskreis|gruppe|exkursion|"
    r"netzwerktreffen|event|meeting)\w*|\b(fachtag|veranstaltung|fortbildung|workshop|"
    r"seminar|tagung|webinar|event|meeting)\w*\b", re.IGNORECASE)
# A join or leave phrase; "plain" ones name the list by themselves.
_JOIN_PLAIN = re.compile(
    r"\b(nehmen\s+sie\s+mich\b.{0,40}\bauf|nimm\s+mich\b.{0,30}\bauf|add\s+me|subscribe\s+me|"
    r"sign\s+me\s+up|(möchte|würde|will|would\s+like\s+to|want\s+to)\b.{0,30}\b(join|subscribe))\b",
    re.IGNORECASE)
_JOIN_WORD = re.compile(
    r"\b(nehmen\b.{0,80}\bauf|setzen|aufnehmen|aufnahme|aufgenommen|eintragen|eingetragen|"
    r"anmelden|anmeldung|hinzufügen|"
    r"hinzufuegen|subscribe|join|add|möchte|möchten|würde|would\s+like|want)\b", re.IGNORECASE)
_LEAVE_PLAIN = re.compile(
    r"\b(unsubscribe|austragen|tragen\s+sie\s+mich\b.{0,40}\baus|remove\s+me|take\s+me\s+off|"
    r"melden\s+sie\s+mich\b.{0,40}\bab)\b", re.IGNORECASE)
_LEAVE_WORD = re.compile(
    r"\b(abmelden|abmeldung|austragen|streichen|löschen|loeschen|entfernen|nehmen|remove|"
    r"unsubscribe|leave|take)\b", re.IGNORECASE)
_HINT_JOIN = re.compile(
    r"\b(aufnehmen|aufnahme|aufgenommen|eintragen|anmelden|anmeldung|hinzufügen|subscribe|"
    r"join|add)\b", re.IGNORECASE)
_HINT = re.compile(
    r"\b(infos|informationen|rundmails?|mails|einladungen|newsletter)\b.{0,40}\b(bekommen|"
    r"erhalten|receive|get)\b", re.IGNORECASE)
_NEGATION = re.compile(r"\b(nicht|kein\w*|not|don't|never)\b", re.IGNORECASE)
_NOT_THAT = re.compile(r"\b(nicht|not)\b[^.;!?]{0,20}\b(dass|daß|that)\b", re.IGNORECASE)
_ADDRESS = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")
_COMMANDS = {
    "anmelden": Ask.JOIN, "subscribe": Ask.JOIN, "eintragen": Ask.JOIN, "abonnieren": Ask.JOIN,
    "join": Ask.JOIN, "abmelden": Ask.LEAVE, "unsubscribe": Ask.LEAVE, "austragen": Ask.LEAVE,
    "leave": Ask.LEAVE, "abmeldung": Ask.LEAVE, "anmeldung": Ask.JOIN,
}


def _lines(msg: Message) -> tuple[str, list[str]]:
    subject = strip_subject(header_text(msg, "Subject")[:_MAX_CHARS])
    body = []
    for line in fresh_lines(body_text(msg)):
        line = _GREETING.sub("", line[:_MAX_CHARS]).strip()
        if line:
            body.append(line)
        if len(body) == 3:
            break
    return subject, body


def _bare_command(line: str) -> Ask | None:
    """"anmelden", "Bitte abmelden!", "Abmeldung": the line is nothing but the command."""
    words = re.sub(r"\b(bitte|please)\b|[^\w\s]", " ", line.lower()).split()
    return _COMMANDS.get(words[0]) if len(words) == 1 else None


def _colleague(line: str, sender: str) -> Asked | None:
    addresses = [m.group(0) for m in _ADDRESS.finditer(line)
                 if m.group(0).lower().strip(".") != sender.lower()]
    if not addresses or not _OTHER_PERSON.search(line) or _EVENT.search(line):
        return None
    if not (_JOIN_WORD.search(line) or re.search(r"\b(einladen|invite)\b", line, re.I)):
        return None
    return Asked(Ask.COLLEAGUE, addresses[0].strip(".").lower())


def _self_request(line: str, subject: str) -> Ask | None:
    """A join or leave for the sender herself, or None."""
    if not _SELF.search(line) or _EVENT.search(line) or _OTHER_PERSON.search(line):
        return None
    if _NOT_THAT.search(line):  # "Ich möchte nicht, dass Sie mich austragen"
        return None
    leave = _LEAVE_PLAIN.search(line) or (_OUT_OF_LIST.search(line) and _LEAVE_WORD.search(line))
    if leave:
        return None if _NEGATION.search(_clause(line, leave.start())) else Ask.LEAVE
    named = _INTO_LIST.search(line) or (_INTO_LIST.search(subject) or _bare_list(subject))
    join = _JOIN_PLAIN.search(line) or (named and _JOIN_WORD.search(line))
    if join:
        return None if _NEGATION.search(_clause(line, join.start())) else Ask.JOIN
    return None


def _clause(line: str, at: int) -> str:
    """The part of the line between punctuation marks around position ``at``: a "nicht"
    in "bitte tragen Sie mich aus, ich bin nicht mehr an der Schule" is not the request's."""
    start = max(line.rfind(mark, 0, at) for mark in ",.;!?") + 1
    ends = [i for i in (line.find(mark, at) for mark in ",.;!?") if i >= 0]
    return line[start:min(ends) if ends else len(line)]


def _bare_list(subject: str) -> bool:
    """A subject that is only the list's name or a request for it ("Mailingliste")."""
    return bool(re.fullmatch(r"\W*(aufnahme\s+)?(in\s+)?(den\s+|die\s+)?" + _LIST_NAME + r"\W*",
                             subject, re.IGNORECASE))


def read_request(msg: Message, sender: str) -> Asked:
    """What a mail to the list address asks (module docstring)."""
    try:
        subject, body = _lines(msg)
    except Exception:
        return Asked(Ask.NONE)
    for line in body:
        if (asked := _colleague(line, sender)) is not None:
            return asked
    if body and (bare := _bare_command(body[0])) is not None:
        return Asked(bare)
    for line in body:
        if (ask := _self_request(line, subject)) is not None:
            return Asked(ask)
    if not body and subject:
        if (bare := _bare_command(subject)) is not None:
            return Asked(bare)
        if len(subject.split()) <= 8 and (ask := _self_request(f"ich {subject}", "")):
            return Asked(ask)
    if _looks_like_join(subject, body):
        return Asked(Ask.LIKE_JOIN)
    return Asked(Ask.NONE)


def _looks_like_join(subject: str, body: list[str]) -> bool:
    for line in [subject, *body]:
        if (_EVENT.search(line) or _OTHER_PERSON.search(line) or _NEGATION.search(line)
                or _LEAVE_WORD.search(line)):
            continue
        if _HINT_JOIN.search(line) and re.search(_LIST_NAME, line, re.IGNORECASE):
            return True
        if _SELF.search(line) and _HINT.search(line):
            return True
    return False

"""The reader of replies: what a person meant by her answer to one of our notices.

Pure: an ``EmailMessage`` (or its fresh lines) in, a :class:`Reading` out;
never raises. Who answers decides how much is read into the answer
(DESIGN §5, "Decisions and wrong actions"):

* ``Asker.PERSON`` confirms her *own* request (join, leave, invitation):
  anything that is not a no confirms — an empty reply, thanks, an emoji,
  "ok". A no declines: "nein", a negation ("das war ich nicht", "bitte
  nicht"), or the opposite wish ("abmelden" on a join). A question, or a
  yes and a no together, is asked again.
* ``Asker.MODERATOR`` decides for others, so only an explicit decision word
  at the start of the first line that says anything acts: ``ok``/``ja``/
  ``freigeben``/``approve``/``yes`` (YES), ``ablehnen [Grund]``/``nein``/
  ``reject`` (NO), ``verwerfen``/``discard`` (DISCARD), ``aufnehmen``
  (JOIN: the caller says what it means for that notice). Empty, thanks,
  an emoji, prose, a question, a negated word ("nicht freigeben", "keine
  Aufnahme") or a yes with a condition ("ok, aber erst Montag") is NONE:
  nothing happens, and she is asked again.

Reading states, in order: out-of-office text → IGNORE (no answer at all);
no fresh line → the asker's empty answer; the first line that says
something decides (greetings, and for moderators thanks and emoji, are
passed over). The reader stops at that line and never looks into a quote
(``mail.text.split_reply``); an answer written below the quote is read
only when nothing was written above it.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import Message
from enum import StrEnum
from itertools import pairwise

from listserv.mail.text import body_text, split_reply, strip_greeting

__all__ = ["Asker", "Choice", "Reading", "decide_lines", "fresh_reply_lines", "read_reply"]


class Asker(StrEnum):
    """Who answers: a person about her own request, or a moderator about someone else's."""

    PERSON = "person"
    MODERATOR = "moderator"


class Choice(StrEnum):
    """What the answer chose. NONE: ask again; IGNORE: an absence note, answer nothing."""

    YES = "yes"
    NO = "no"
    DISCARD = "discard"
    JOIN = "join"
    NONE = "none"
    IGNORE = "ignore"


@dataclass(frozen=True)
class Reading:
    """A decision and why it was read so (``why`` goes to the log; never the text)."""

    choice: Choice
    why: str
    reason: str = ""  # a moderator's "ablehnen Grund"


_MAX_LINES = 8
_MAX_LINE_CHARS = 500
_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)?")
_POSITIVE_IDIOMS = re.compile(
    r"\b(gar\s+)?kein(e)?\s+(problem|ursache|thema)\b|\bnichts\s+dagegen\b|\bno\s+problem\b|"
    r"\bwarum\s+nicht\b|\bwhy\s+not\b|\bnicht\s+wahr\b",
    re.IGNORECASE,
)
_NEGATORS = frozenset({
    "nicht", "kein", "keine", "keinen", "keinem", "keiner", "keines", "nie", "niemals",
    "nein", "not", "no", "nope", "never", "don't", "dont", "didn't", "didnt", "do not",
    "won't", "stop", "stopp", "nö", "nee", "falsch", "irrtum", "versehen", "wrong", "mistake",
    "versehentlich", "irrtümlich", "irrtuemlich", "accidentally", "mistakenly", "spam",
})
_PERSON_YES = frozenset({
    "ja", "jawohl", "jep", "jo", "yes", "yep", "yeah", "ok", "okay", "bestätigt", "bestätige",
    "bestätigen", "bestaetigt", "bestaetige", "bestaetigen", "confirm", "confirmed",
    "einverstanden", "genau", "richtig", "stimmt", "gerne", "gern", "sure", "passt",
})
_THANKS = frozenset({
    "danke", "dankeschön", "vielen", "herzlichen", "besten", "thanks", "thank", "thx", "merci",
    "super", "prima", "toll", "klasse", "perfekt", "great", "top", "lg", "vg", "gruß", "grüße",
    "dank", "schön", "sehr", "ihnen", "dir", "euch", "you", "very", "much", "so",
})
# The opposite of what the person is asked to confirm: that is a no.
_LEAVE_WORDS = frozenset({"abmelden", "austragen", "unsubscribe", "löschen", "entfernen",
                          "streichen", "remove", "abmeldung"})
_STAY_WORDS = frozenset({"bleiben", "drinbleiben", "stay", "remain"})
_OPPOSITE = {"join": _LEAVE_WORDS, "leave": _STAY_WORDS}
_POLITE = frozenset({"bitte", "gerne", "gern", "please", "dann", "also", "hiermit", "ich"})
_MODERATOR_WORDS: dict[str, Choice] = {
    **dict.fromkeys(["ok", "okay", "ja", "yes", "freigeben", "freigegeben", "freigabe", "approve",
                     "approved", "veröffentlichen", "verschicken", "bestätigen", "bestätige",
                     "bestaetigen", "confirm", "einverstanden", "okey", "jawohl"], Choice.YES),
    **dict.fromkeys(["ablehnen", "abgelehnt", "reject", "rejected", "nein", "no"], Choice.NO),
    **dict.fromkeys(["verwerfen", "verworfen", "discard", "löschen", "delete"], Choice.DISCARD),
    **dict.fromkeys(["aufnehmen", "aufgenommen", "einladen", "add", "invite"], Choice.JOIN),
}
_REASON_WORDS = frozenset({"ablehnen", "abgelehnt", "reject", "rejected"})
# After a yes: a condition or a doubt means "not now", so ask again.
_CONDITION = re.compile(
    r"\b(aber|jedoch|allerdings|erst|später|noch|sondern|falls|wenn|but|later|after|"
    r"wait|warte\w*|unless|if)\b|\?", re.IGNORECASE)
_PERSON_CONDITION = re.compile(r"\b(aber\s+erst|erst\s+(nach|wenn|ab)|unless|only\s+after|"
                               r"but\s+(only|first|wait))\b", re.IGNORECASE)
_ABSENT = re.compile(
    r"\b(nicht\s+im\s+(büro|haus|dienst)|au(ß|ss)er\s+haus|abwesen\w*|im\s+urlaub|urlaubsbedingt|"
    r"elternzeit|mutterschutz|wieder\s+(im\s+büro|erreichbar|da)|nicht\s+erreichbar|"
    r"keinen\s+zugriff\s+auf|out\s+of\s+(the\s+)?office|on\s+(annual\s+)?leave|on\s+vacation|"
    r"back\s+in\s+the\s+office|limited\s+access\s+to\s+(my\s+)?e-?mail)",
    re.IGNORECASE,
)


def _norm(line: str) -> str:
    line = unicodedata.normalize("NFC", line[:_MAX_LINE_CHARS]).strip()
    return re.sub(r"\bo\.\s?k\.?", "ok", line, flags=re.IGNORECASE)


def _words(line: str) -> list[str]:
    return [w.lower().replace("’", "'") for w in _WORD.findall(line)]


def _negated(line: str) -> bool:
    """A negation in the line, after positive idioms ("kein Problem") are taken out."""
    words = _words(_POSITIVE_IDIOMS.sub(" ", line))
    pairs = {f"{a} {b}" for a, b in pairwise(words)}
    return bool(set(words) & _NEGATORS or pairs & _NEGATORS)


def fresh_reply_lines(msg: Message) -> list[str]:
    """The lines the writer wrote: above the quote, else the first block below it."""
    reply = split_reply(body_text(msg))
    lines = [strip_greeting(_norm(line)) for line in reply.fresh]
    if not any(lines) and reply.below:
        lines = [strip_greeting(_norm(line)) for line in reply.below]
    return [line for line in lines if line][:_MAX_LINES]


def read_reply(msg: Message, asker: Asker, *, wish: str = "join") -> Reading:
    """The decision in a reply to one of our notices. ``wish``: what a PERSON is asked
    to confirm, "join" or "leave" (so that "abmelden" on a join is a no)."""
    return decide_lines(fresh_reply_lines(msg), asker, wish=wish)


def decide_lines(lines: Sequence[str], asker: Asker, *, wish: str = "join") -> Reading:
    """The decision in the given fresh lines (the reader without the mail around it)."""
    lines = [strip_greeting(_norm(line)) for line in lines]
    lines = [line for line in lines if line][:_MAX_LINES]
    if not lines:
        return Reading(Choice.YES if asker is Asker.PERSON else Choice.NONE, "empty")
    if _absent(lines):
        return Reading(Choice.IGNORE, "out of office")
    if asker is Asker.PERSON:
        return _person(lines, _OPPOSITE.get(wish, _LEAVE_WORDS))
    return _moderator(lines)


def _absent(lines: Sequence[str]) -> bool:
    """An absence note a robot or a person sent instead of an answer."""
    first = _words(lines[0])[:1]
    if first and (first[0] in _MODERATOR_WORDS or first[0] in _PERSON_YES):
        return False  # "Ja, bin aber ab Montag im Urlaub": she did answer
    return any(_ABSENT.search(line) for line in lines[:4])


def _is_no(line: str, opposite: frozenset[str]) -> bool:
    words = _words(line)
    return _negated(line) or bool(set(words) & opposite)


def _person(lines: Sequence[str], opposite: frozenset[str]) -> Reading:
    """Her own request: anything but a no is a yes. A no after a yes or thanks ("Danke!
    … leider nicht dabei") may be about something else: ask again, never decline."""
    explicit_yes = positive = False
    for line in lines:
        words = _words(line)
        if _is_no(line, opposite):
            if positive:
                return Reading(Choice.NONE, "yes and no")
            return Reading(Choice.NO, "no")
        if words and words[0] in _PERSON_YES:
            if _PERSON_CONDITION.search(line):
                return Reading(Choice.NONE, "yes with a condition")
            explicit_yes = True
        positive = positive or not words or set(words) <= _PERSON_YES | _THANKS
    first = _words(lines[0])
    lead = first[0] if first else ""
    if "?" in lines[0] and lead not in _PERSON_YES and lead not in _THANKS:
        return Reading(Choice.NONE, "question")
    return Reading(Choice.YES, "yes word" if explicit_yes else "not a no")


def _decision_word(words: list[str]) -> str:
    """The first word after polite fillers ("bitte freigeben")."""
    return next((word for word in words[:4] if word not in _POLITE), "")


def _moderator(lines: Sequence[str]) -> Reading:
    """Only an explicit decision word at the start of the first line that says something."""
    for index, line in enumerate(lines):
        words = _words(line)
        if not words or set(words) <= _THANKS:
            continue  # "Danke!", an emoji, "LG": nothing said yet
        word = _decision_word(words)
        choice = _MODERATOR_WORDS.get(word)
        if choice is None:
            return Reading(Choice.NONE, "negated" if _negated(line) else "no decision word")
        rest = _after_word(line, word)
        if re.match(r"\W*\?", line[line.lower().find(word) + len(word):]):
            return Reading(Choice.NONE, "a question")  # "Verwerfen?", "ok?"
        if choice in (Choice.YES, Choice.JOIN) and (
            _negated(line) or _CONDITION.search(rest)
        ):
            return Reading(Choice.NONE, "negated or conditional")
        if choice is Choice.NO and word in _REASON_WORDS:
            return Reading(choice, "decision word", _reason(rest, lines[index + 1:]))
        return Reading(choice, "decision word")
    return Reading(Choice.NONE, "empty")


def _after_word(line: str, word: str) -> str:
    """The text after the decision word, without the punctuation that follows it."""
    match = re.search(re.escape(word), line, re.IGNORECASE)
    rest = line[match.end():] if match else ""
    return rest.strip().lstrip(":,.!;-–—").strip()


def _reason(rest: str, following: Sequence[str]) -> str:
    """"ablehnen Grund": the rest of the line; "Ablehnen" alone takes the next line."""
    if rest:
        return rest[:500]
    if following and _words(following[0])[:1] and _words(following[0])[0] not in (
            _MODERATOR_WORDS):
        return following[0][:500]
    return ""

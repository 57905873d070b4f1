"""What the web forms accept, and the small rules around them; pure, tested without HTTP.

Every value a page takes from a form passes through here before any
handler acts on it: the join form's fields, a name or role correction, a
reason, a search word, a page number. The shell (``join``, ``me``,
``desk``) only moves strings between HTTP and these functions.
"""

from __future__ import annotations

import hmac
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

from listserv.mail.message import normalise_address, one_line

#: The roles of the network (Schulsozialarbeit, Sozialarbeit in Förderschulen,
#: Multiprofessionelle Teams, Schulpsychologischer Dienst); "" = not said.
ROLES = ("SchuSo", "SOFA", "MPT", "SDS", "other")
#: Who employs the member: the city, an independent provider, the state.
EMPLOYERS = ("stadt", "freier_traeger", "land", "other")
NAME_CHARS = 100
REASON_CHARS = 500


@dataclass(frozen=True)
class JoinForm:
    name: str
    address: str          # validated and lower-cased
    as_given: str         # as typed, domain lower-cased: the address mail goes to
    role: str
    employer_type: str


def read_join(fields: Mapping[str, str]) -> tuple[JoinForm | None, list[str]]:
    """The join form's fields, or the names of the faults (``email``, ``consent``, ...).

    The honeypot ``website`` (hidden from people by CSS and ``aria-hidden``,
    filled by robots) is not a fault the robot is told about: the caller
    answers it with the usual page and does nothing.
    """
    faults: list[str] = []
    typed = fields.get("email", "").strip()
    address = normalise_address(typed) if typed and len(typed) <= 254 else None
    if address is None:
        faults.append("email")
    if fields.get("consent") != "yes":
        faults.append("consent")
    role = fields.get("role", "")
    employer = fields.get("employer_type", "")
    if role and role not in ROLES:
        faults.append("role")
    if employer and employer not in EMPLOYERS:
        faults.append("employer_type")
    if faults or address is None:
        return None, faults
    local, _, domain = typed.rpartition("@")
    return JoinForm(name=clean_name(fields.get("name", "")), address=address,
                    as_given=f"{local}@{domain.lower()}", role=role,
                    employer_type=employer), []


def is_robot(fields: Mapping[str, str]) -> bool:
    """The honeypot field was filled: a person never sees it."""
    return bool(fields.get("website", "").strip())


def clean_name(value: str) -> str:
    """One line, no angle brackets or quotes that could bend a header, at most 100 chars."""
    text = one_line(value, NAME_CHARS)
    return "".join(c for c in text if c not in '<>"\\').strip()


def clean_reason(value: str) -> str:
    """A rejection reason as it goes into the poster's mail: plain lines, bounded."""
    lines = [one_line(line, REASON_CHARS) for line in value.splitlines()]
    return "\n".join(line for line in lines if line)[:REASON_CHARS].strip()


def same_secret(given: str | None, expected: str | None) -> bool:
    """A CSRF or session comparison in constant time; an empty value never matches."""
    if not given or not expected:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


def pick_language(asked: str | None, accept_language: str) -> str:
    """``?lang=en`` wins; else the browser's first of de/en; else German."""
    if asked in ("de", "en"):
        return asked
    for part in accept_language.lower().split(","):
        tag = part.split(";")[0].strip()[:2]
        if tag in ("de", "en"):
            return tag
    return "de"


class RateLimit:
    """At most ``limit`` events per key in ``window`` seconds (a sliding window).

    In memory: a restart forgets it, which costs an attacker nothing he could
    not get by waiting, and the per-address mail cap in ``outbox.respond``
    stays in force beneath it. ``now`` is passed in (monotonic seconds).
    """

    def __init__(self, limit: int, window: float, max_keys: int = 10_000) -> None:
        self.limit, self.window, self.max_keys = limit, window, max_keys
        self._seen: dict[str, deque[float]] = {}

    def __len__(self) -> int:
        """How many keys are remembered (bounded by ``max_keys``)."""
        return len(self._seen)

    def allow(self, key: str, now: float) -> bool:
        """Count one event for ``key``; False when it is over the limit (not counted then)."""
        if len(self._seen) >= self.max_keys:
            self._forget_old(now)
        times = self._seen.setdefault(key, deque())
        while times and times[0] <= now - self.window:
            times.popleft()
        if len(times) >= self.limit:
            return False
        times.append(now)
        return True

    def _forget_old(self, now: float) -> None:
        for key in [k for k, t in self._seen.items() if not t or t[-1] <= now - self.window]:
            del self._seen[key]
        if len(self._seen) >= self.max_keys:   # a flood of distinct keys: start afresh
            self._seen.clear()


@dataclass(frozen=True)
class Paging:
    """One page of a long list (the desk's members): numbers for the SQL and the links."""

    number: int
    size: int
    total: int

    @property
    def offset(self) -> int:
        return (self.number - 1) * self.size

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.size))

    @property
    def previous(self) -> int | None:
        return self.number - 1 if self.number > 1 else None

    @property
    def next(self) -> int | None:
        return self.number + 1 if self.number < self.pages else None


def page_number(value: str | None) -> int:
    """A page number from the query; anything odd is page 1."""
    try:
        number = int(value or "1")
    except ValueError:
        return 1
    return number if 1 <= number <= 1_000_000 else 1


def search_word(value: str | None) -> str:
    """The desk's search box: one line, bounded, LIKE wildcards taken literally later."""
    return one_line(value or "", 100).strip()

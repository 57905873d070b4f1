"""What became of each recipient of a hand-over: accepted, temporary, permanent.

Outcomes are values, not exceptions: a relay that is down is a
``temporary`` outcome for every recipient, a ``550`` for one RCPT is
``permanent`` for that one only. The sender's bookkeeping is then one pure
function over a table of these (``plan.classify``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum


class Outcome(StrEnum):
    ACCEPTED = "accepted"
    TEMPORARY = "temporary"   # 4xx, a connection fault, a timeout: try again later
    PERMANENT = "permanent"   # 5xx: this recipient will not work


@dataclass(frozen=True, slots=True)
class RcptOutcome:
    outcome: Outcome
    code: int = 250
    text: str = ""

    @property
    def reply(self) -> str:
        """The reply as one line, for ``deliveries.last_reply`` and the log."""
        return f"{self.code} {self.text}".strip()


ACCEPTED = RcptOutcome(Outcome.ACCEPTED, 250, "OK")


@dataclass(frozen=True)
class DeliveryResult:
    """One outcome per recipient of a ``deliver`` call."""

    outcomes: dict[str, RcptOutcome]

    @classmethod
    def every(cls, rcpts: Iterable[str], outcome: RcptOutcome) -> DeliveryResult:
        return cls({r: outcome for r in rcpts})

    @classmethod
    def temporary(cls, rcpts: Iterable[str], code: int, text: str) -> DeliveryResult:
        return cls.every(rcpts, RcptOutcome(Outcome.TEMPORARY, code, text))

    def merged(self, other: DeliveryResult) -> DeliveryResult:
        return DeliveryResult({**self.outcomes, **other.outcomes})

    def of(self, kind: Outcome) -> list[str]:
        return [r for r, o in self.outcomes.items() if o.outcome is kind]


def outcome_for_code(code: int, text: str) -> RcptOutcome:
    """An SMTP reply code as an outcome (2xx accepted, 5xx permanent, else temporary)."""
    if 200 <= code < 300:
        return RcptOutcome(Outcome.ACCEPTED, code, text)
    if 500 <= code < 600:
        return RcptOutcome(Outcome.PERMANENT, code, text)
    return RcptOutcome(Outcome.TEMPORARY, code, text)

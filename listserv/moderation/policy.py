"""May this post pass? The rules and the post policy as one ordered table.

Pure: a message's facts and the list's settings in, a ``Decision`` out.
Like Mailman's built-in chain, the table is read top to bottom and the
first rule that fires decides; unlike it, a rule is a plain function
returning a reason (or None), and nothing reads a global config.

    rule                       fires when                                 action
    ------------------------   ----------------------------------------   -------
    loop                       our own List-Id or X-Loop is on it         discard
    own_address                From or envelope sender is one of ours     discard
    automatic                  auto-reply, bounce, other list's mail      discard
    not_addressed              the list is in neither To nor Cc (Bcc)     hold
    moderator_verified         From a moderator, DKIM-aligned and valid   accept
    policy                     moderate_all / moderate_non_members /     hold /
                               members_only / open                        reject / accept
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from listserv.config import ListConfig


class Action(StrEnum):
    ACCEPT = "accept"
    HOLD = "hold"
    REJECT = "reject"
    DISCARD = "discard"


@dataclass(frozen=True)
class Facts:
    """What the shell found out about a post before deciding."""

    sender: str | None            # validated From address
    is_member: bool
    is_moderator: bool
    dkim_aligned_moderator: bool  # mail.dkim_proof holds and the proof is new (inbox.proof)
    list_addressed: bool          # the list address appears in To or Cc
    has_own_list_id: bool         # our List-Id header, or our X-Loop
    from_own_address: bool
    automatic: str | None         # automatic.automatic_reason(...)


@dataclass(frozen=True)
class Decision:
    action: Action
    rule: str
    reason: str


Rule = Callable[[Facts, ListConfig], Decision | None]


def loop(f: Facts, m: ListConfig) -> Decision | None:
    if f.has_own_list_id:
        return Decision(Action.DISCARD, "loop", "the post already went through this list")
    return None


def own_address(f: Facts, m: ListConfig) -> Decision | None:
    if f.from_own_address:
        return Decision(Action.DISCARD, "own_address", "sent from one of the list's addresses")
    return None


def automatic(f: Facts, m: ListConfig) -> Decision | None:
    if f.automatic:
        return Decision(Action.DISCARD, "automatic", f"automatic mail ({f.automatic})")
    return None


def not_addressed(f: Facts, m: ListConfig) -> Decision | None:
    if not f.list_addressed:
        return Decision(Action.HOLD, "not_addressed",
                        "the list is not in To or Cc (sent as Bcc)")
    return None


def moderator_verified(f: Facts, m: ListConfig) -> Decision | None:
    if f.is_moderator and f.dkim_aligned_moderator:
        return Decision(Action.ACCEPT, "moderator_verified",
                        "from a moderator, with a valid aligned DKIM signature")
    return None


def post_policy(f: Facts, m: ListConfig) -> Decision | None:
    policy = m.post_policy
    if policy == "moderate_all":
        return Decision(Action.HOLD, "moderate_all", "every post is checked by the moderators")
    if policy == "open":
        return Decision(Action.ACCEPT, "open", "the list is open")
    if f.is_member:
        return Decision(Action.ACCEPT, policy, "from a member")
    if policy == "members_only":
        return Decision(Action.REJECT, "members_only", "only members may post to this list")
    return Decision(Action.HOLD, "moderate_non_members", "the sender is not a member")


RULES: tuple[Rule, ...] = (loop, own_address, automatic, not_addressed, moderator_verified,
                           post_policy)


def decide(facts: Facts, mlist: ListConfig) -> Decision:
    for rule in RULES:
        decision = rule(facts, mlist)
        if decision is not None:
            return decision
    raise AssertionError("post_policy always decides")  # pragma: no cover

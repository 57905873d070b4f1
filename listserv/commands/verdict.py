"""What a reading means for the notice it answers: one table, used by the shell and the corpus.

Pure. The reader (``reader``) says what the writer chose — yes, no, discard,
join, none, ignore; the notice she answers (the token's action) says what
that choice does. The table is written out so that a wrong action can only
come from a row here, never from a guess somewhere else:

=================  =========  ========  =========  ===========================  ======
notice             YES        NO        DISCARD    JOIN ("aufnehmen")           NONE
=================  =========  ========  =========  ===========================  ======
own join/leave     confirm    decline   decline    confirm                      reask
held post          approve    reject    discard    reask                        reask
held post, looks   approve    reject    discard    join (the sender's join      reask
like a request                                     starts; nothing published)
membership         approve    reject    discard    approve                      reask
ready invitation   approve    discard   discard    approve                      reask
removal            approve    discard   discard    reask (the opposite wish)    reask
=================  =========  ========  =========  ===========================  ======

IGNORE (an absence note) is ``ignore`` everywhere: nothing happens, no answer.
"""

from __future__ import annotations

from dataclasses import dataclass

from listserv.commands.reader import Asker, Choice

__all__ = ["Notice", "notice_for", "verdict"]


@dataclass(frozen=True)
class Notice:
    """The notice a reply answers, as far as reading the reply is concerned."""

    kind: str          # "own", "post", "post_request", "member", "invite", "remove"
    asker: Asker
    wish: str = "join"  # what an "own" notice asks to confirm: "join" or "leave"


def notice_for(action: str, *, request_like: bool = False) -> Notice:
    """The notice kind of a token's action (``tokens.Action``, a ``StrEnum``; compared by
    value so that this core module needs no shell import). ``request_like``: the held
    post's flag."""
    if action == "unsubscribe":
        return Notice("own", Asker.PERSON, "leave")
    if action in ("subscribe", "invitation"):
        return Notice("own", Asker.PERSON, "join")
    if action == "moderate_post":
        return Notice("post_request" if request_like else "post", Asker.MODERATOR)
    if action == "approve_member":
        return Notice("member", Asker.MODERATOR)
    if action == "remove_request":
        return Notice("remove", Asker.MODERATOR)
    return Notice("invite", Asker.MODERATOR)  # invite_request


_TABLE: dict[str, dict[Choice, str]] = {
    "own": {Choice.YES: "confirm", Choice.NO: "decline", Choice.DISCARD: "decline",
            Choice.JOIN: "confirm"},
    "post": {Choice.YES: "approve", Choice.NO: "reject", Choice.DISCARD: "discard"},
    "post_request": {Choice.YES: "approve", Choice.NO: "reject", Choice.DISCARD: "discard",
                     Choice.JOIN: "join"},
    "member": {Choice.YES: "approve", Choice.NO: "reject", Choice.DISCARD: "discard",
               Choice.JOIN: "approve"},
    "invite": {Choice.YES: "approve", Choice.NO: "discard", Choice.DISCARD: "discard",
               Choice.JOIN: "approve"},
    # "aufnehmen"/"einladen" under "Entfernen bestätigen" is the opposite wish: ask again.
    "remove": {Choice.YES: "approve", Choice.NO: "discard", Choice.DISCARD: "discard"},
}


def verdict(notice: Notice, choice: Choice) -> str:
    """confirm, decline, approve, reject, discard, join, reask or ignore."""
    if choice is Choice.IGNORE:
        return "ignore"
    return _TABLE[notice.kind].get(choice, "reask")

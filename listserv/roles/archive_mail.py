"""The archive by mail (DESIGN §5): ``inhalt``, ``hole N``, ``suche WORT`` (index, get, search).

For members of the list (and its moderators) only; anyone else gets the
usual "only for members" answer and nothing of the archive. Every answer is
an ordinary capped answer (``outbox.respond.answer``): a forged From costs
the member it names at most ``replies_per_address_per_day`` mails, and
automatic mail never gets here (``roles.mailcommands`` drops it first).

``hole N`` answers with the archived copy attached as it is
(``message/rfc822``): the member gets exactly the copy the list sent,
while the answer itself follows the rules of automatic mail (our From,
``Auto-Submitted``, no List-Id of the post in the answer's own headers).
"""

from __future__ import annotations

from datetime import datetime
from email.message import EmailMessage
from zoneinfo import ZoneInfo

import aiosqlite

from listserv.archive import browse
from listserv.archive.browse import Summary
from listserv.archive.query import plain_snippet, post_number, terms
from listserv.clock import from_iso, local_text
from listserv.commands.parse import Command, Verb
from listserv.inbox.request import Request
from listserv.mail.message import message_id, references
from listserv.membership import members
from listserv.membership.actions import is_moderator, reply
from listserv.outbox.respond import answer
from listserv.texts.compose import compose

INDEX_COUNT = 20
SEARCH_COUNT = 10


def _when(req: Request, posted_at: str) -> str:
    moment: datetime = from_iso(posted_at)
    return local_text(moment, ZoneInfo(req.timezone), req.language)


def _line(req: Request, post: Summary) -> str:
    extra = f" [{post.attachments}]" if post.attachments else ""
    return f"Nr. {post.number} · {_when(req, post.posted_at)} · {post.subject or '-'}" \
           f" ({post.sender_name or post.sender_address or '-'}){extra}"


async def archive_command(db: aiosqlite.Connection, req: Request, command: Command) -> str:
    """Answer one archive command; return the inbox outcome."""
    mlist, sender = req.mlist, req.sender
    assert sender is not None
    if await members.get(db, mlist.address, sender) is None and not is_moderator(mlist, sender):
        await reply(db, req, "members_only")
        return f"archive {command.verb} refused: not a member"
    if mlist.archive == "off":
        await reply(db, req, "archive_off")
        return "archive is off for this list"
    if command.verb is Verb.INDEX:
        posts = await browse.latest(db, mlist.address, INDEX_COUNT)
        await reply(db, req, "archive_index", count=len(posts),
                    posts="\n".join(_line(req, p) for p in posts) or "-")
        return f"archive index sent ({len(posts)})"
    if command.verb is Verb.GET:
        return await _send_post(db, req, post_number(command.argument or ""))
    return await _search(db, req, command.argument)


async def _send_post(db: aiosqlite.Connection, req: Request, number: int | None) -> str:
    mlist = req.mlist
    found = None if number is None else await browse.post(db, mlist.address, number)
    raw = None if number is None else await browse.original(db, mlist.address, number)
    if found is None or raw is None or number is None:
        await reply(db, req, "archive_not_found", number=number or "-")
        return f"archive post {number} not found"
    msg: EmailMessage = compose(
        mlist, to=req.sender or "", template="archive_post", language=req.language,
        now=req.now, in_reply_to=message_id(req.msg), references=references(req.msg),
        values={"number": number, "subject": found.summary.subject or "-",
                "date": _when(req, found.summary.posted_at),
                "sender": found.summary.sender_name or found.summary.sender_address or "-"})
    msg.make_mixed()
    msg.attach(_as_attachment(raw))
    sent = await answer(db, mlist, msg, to=req.sender or "", now=req.now,
                        kind="archive_post", inbox_id=req.item.id)
    return f"archive post {number} {'sent' if sent else 'held back by the daily cap'}"


def _as_attachment(raw: bytes) -> EmailMessage:
    """The archived copy as a ``message/rfc822`` part, its bytes unchanged.

    Set as a string payload, which the generator writes out as it is; a
    parsed message would be written anew (headers refolded).
    """
    part = EmailMessage()
    part["Content-Type"] = "message/rfc822"
    part["Content-Disposition"] = "inline"
    part["Content-Transfer-Encoding"] = "7bit" if raw.isascii() else "8bit"
    part.set_payload(raw.decode("ascii", "surrogateescape"))
    return part


async def _search(db: aiosqlite.Connection, req: Request, words: str) -> str:
    mlist = req.mlist
    shown = " ".join(terms(words))   # only the searchable words are echoed, never the line
    found = await browse.search(db, mlist.address, words, browse.Page(1, SEARCH_COUNT))
    if found is None:
        await reply(db, req, "archive_search_empty")
        return "archive search without a searchable word"
    lines = [f"{_line(req, hit.summary)}\n   {plain_snippet(hit.snippet)}" for hit in found.hits]
    more = "über" if req.language == "de" else "more than"
    total = f"{more} {browse.COUNTED}" if found.more_than_counted else found.total
    await reply(db, req, "archive_search", words=shown, total=total,
                count=len(found.hits), hits="\n\n".join(lines) or "-")
    return f"archive search answered ({found.total} hits)"

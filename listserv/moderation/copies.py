"""The list copy of a post, from its raw bytes: run in the worker process.

``publish_approved`` builds each approved post's copy through
``inbox.worker.Worker.call(build_copy, …)``: parsing and re-writing a post
is the step where a hostile mail would cost time and memory, and a post
that cannot be built within the limits is parked there instead of
stopping the posts after it. Module-level and pure so the worker can call
it by name.
"""

from __future__ import annotations

from dataclasses import dataclass

from listserv.archive.extract import Extract, extract
from listserv.config import ListConfig
from listserv.delivery.transform import list_copy
from listserv.mail.message import message_id, parse, to_bytes


@dataclass(frozen=True)
class BuiltCopy:
    raw: bytes
    message_id: str
    archived: Extract | None = None   # what the archive keeps; None: archive off or unreadable


def build_copy(raw: bytes, mlist: ListConfig, rewrite_from: bool, add_footer: bool) -> BuiltCopy:
    """The list copy, and (unless the list's archive is off) what the archive keeps of it.

    The archive reads the copy as published, but names the sender of the
    mail as it arrived (a DMARC-rewritten From names the list). A copy the
    archive cannot read is still published: the archive is never a reason
    to hold a post back.
    """
    msg = parse(raw)
    copy = to_bytes(list_copy(msg, mlist, rewrite_from=rewrite_from, add_footer=add_footer))
    archived = None
    if mlist.archive != "off":
        try:
            archived = extract(copy, original=raw)
        except Exception:
            archived = None
    return BuiltCopy(raw=copy, message_id=message_id(msg), archived=archived)

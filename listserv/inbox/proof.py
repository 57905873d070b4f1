"""Is a moderator's mail proof enough to act without the token round trip?

The shell around ``mail.dkim_proof``: only for a From that is one of the
list's moderators (so DNS is asked only for mail that could profit), with
the address the mail reached as the recipient the signature must name,
and the replay table (``store.replay``) as the last rule. The answer is a
plain bool and never an error: a mail that is not proven goes the
ordinary way, the confirm-by-token path.
"""

from __future__ import annotations

from listserv.inbox.request import Request
from listserv.log import event
from listserv.mail.dkim_proof import DnsFunc, prove
from listserv.store.database import Store
from listserv.store.replay import first_use


async def moderator_proven(store: Store, req: Request, dnsfunc: DnsFunc | None) -> bool:
    """True when the From is a moderator and the DKIM proof holds, first time seen."""
    sender = req.sender
    if sender is None or sender not in req.mlist.moderators:
        return False
    proof = await prove(req.item.raw, from_domain=sender.rpartition("@")[2],
                        recipients={req.item.rcpt.lower()}, now=req.now, dnsfunc=dnsfunc)
    fresh = False
    if proof.ok:
        async with store.transaction() as db:
            fresh = await first_use(db, message_id=proof.message_id, signature=proof.signature,
                                    inbox_id=req.item.id, now=req.now)
    reason = proof.reason if not proof.ok else ("verified" if fresh else "replayed")
    event("dkim_proof", inbox=req.item.id, msgid=req.item.message_id, sender=sender,
          ok=proof.ok and fresh, reason=reason,
          level="warning" if proof.ok and not fresh else "info")   # a replay is worth a look
    return proof.ok and fresh

"""The member copy of a post: list headers, subject prefix, footer, DMARC rewrite.

Pure: the list, the one-click URL and the DMARC decision are passed in, so
tests need no clock, database or network. A post comes from someone else's
mail client, often badly made; ``list_copy`` never raises on it. When the
body cannot be changed safely (a broken multipart, an unknown charset) the
footer is left out, and the copy prints the poster's header lines as they
came instead of re-folding them (re-folding is what raises on some, see
``shared/corpus/python-email-hazards.json``).

Choices:

* Signed or encrypted posts (multipart/signed, multipart/encrypted, S/MIME,
  inline PGP) get no footer, not even as an outer wrapper: a wrapper makes
  Outlook show the post as an attachment, and List-Unsubscribe says how to
  leave anyway.
* The footer goes *into* the first text body (``footer.py``), never into a
  new MIME part: Outlook shows a text part after an attachment as
  ``ATT00001.txt``. A post without a leading text body gets no footer.
* The poster's DKIM-Signature and ARC-* go: our changes break them and we
  do not seal ARC. Received stays; receipt requests, Bcc and local delivery
  headers (Return-Path, Delivered-To, X-Original-To) go.
* A missing subject becomes just the prefix.
"""

from __future__ import annotations

import copy
import re
from email import policy as email_policy
from email.header import Header, decode_header, make_header
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import Policy
from typing import Literal

from listserv.config import ListConfig
from listserv.delivery.footer import append_footer, render_footer

__all__ = ["COPY_POLICY", "append_footer", "header_text", "list_copy", "list_headers",
           "prefixed_subject", "render_footer"]

#: Printing policy of every copy: the poster's header lines pass unchanged,
#: ours are folded by their header objects.
COPY_POLICY = email_policy.default.clone(refold_source="none")

_DROP_HEADERS = frozenset({
    "return-receipt-to", "disposition-notification-to", "x-confirm-reading-to",
    "bcc", "resent-bcc", "dkim-signature", "return-path", "delivered-to",
    "x-original-to", "x-original-from", "precedence",
})
_DROP_PREFIXES = ("list-", "arc-")


PosterHeader = Literal["Reply-To", "Cc"]


def list_copy(
    msg: EmailMessage,
    mlist: ListConfig,
    *,
    unsubscribe_url: str | None = None,
    archive_url: str | None = None,
    rewrite_from: bool = False,
    poster_header: PosterHeader = "Reply-To",
    add_footer: bool = True,
) -> EmailMessage:
    """Return the copy of ``msg`` that goes to the members; ``msg`` is unchanged.

    ``unsubscribe_url`` is the member's (or the list's) RFC 8058 one-click URL,
    ``archive_url`` the List-Archive target. ``rewrite_from`` (decided by
    ``mail.dmarc.needs_rewrite``) puts the list address into From and the poster
    into ``poster_header`` (Reply-To, or Cc when the list wants replies to go
    to both).
    """
    out = copy.deepcopy(msg)
    if add_footer:
        try:
            changed = append_footer(out, render_footer(mlist, unsubscribe_url=unsubscribe_url))
        except Exception:  # a post we cannot change safely goes out unchanged
            changed = False
        if not changed:
            out = copy.deepcopy(msg)
    _drop_headers(out, mlist.address)
    subject = header_text(out, "Subject")
    new_subject = prefixed_subject(subject, mlist.subject_prefix)
    if subject is not None or new_subject:
        _replace(out, "Subject", new_subject)
    if rewrite_from:
        _rewrite_from(out, mlist, poster_header)
    for name, value in list_headers(mlist, unsubscribe_url=unsubscribe_url,
                                    archive_url=archive_url):
        out[name] = value
    out["Precedence"] = _Verbatim("Precedence", "list")
    out["X-Loop"] = _Verbatim("X-Loop", _one_line(mlist.address))
    out.policy = COPY_POLICY
    return out


# -- headers -----------------------------------------------------------------


def list_headers(
    mlist: ListConfig, *, unsubscribe_url: str | None = None, archive_url: str | None = None
) -> list[tuple[str, _Verbatim]]:
    """RFC 2919 List-Id and RFC 2369/8058 List-* headers, in a fixed order.

    The values are folded here and printed as they are: the ``email``
    package would turn a long URL into an RFC 2047 encoded word, which no
    client follows.
    """
    unsubscribe = [f"<mailto:{mlist.sub_address('leave')}>"]
    if unsubscribe_url:
        unsubscribe.insert(0, f"<{_url(unsubscribe_url)}>")
    values: list[tuple[str, list[str]]] = [
        ("List-Id", [f"{_phrase(mlist.display_name)} <{mlist.list_id}>"]),
        ("List-Post", [f"<mailto:{mlist.address}>"]),
        ("List-Help", [f"<mailto:{mlist.request_address}?subject=help>"]),
        ("List-Subscribe", [f"<mailto:{mlist.sub_address('join')}>"]),
        ("List-Unsubscribe", unsubscribe),
    ]
    if unsubscribe_url:
        values.append(("List-Unsubscribe-Post", ["List-Unsubscribe=One-Click"]))
    if archive_url:
        values.append(("List-Archive", [f"<{_url(archive_url)}>"]))
    values.append(("List-Owner", [f"<mailto:{mlist.owner_address}>"]))
    return [(name, _Verbatim(name, _fold_items(name, items))) for name, items in values]


class _Verbatim(str):
    """A header value folded by us; ``email`` stores and prints it unchanged.

    The policy protocol: a value with a ``name`` attribute is a header object,
    kept as is by ``header_store_parse`` and printed by its own ``fold``.
    """

    name: str

    def __new__(cls, name: str, value: str) -> _Verbatim:
        obj = super().__new__(cls, value)
        obj.name = name
        return obj

    def __getnewargs__(self) -> tuple[str, str]:  # type: ignore[override]
        return (self.name, str(self))

    def fold(self, *, policy: Policy) -> str:
        return f"{self.name}: {self}".replace("\n", policy.linesep) + policy.linesep


def _fold_items(name: str, items: list[str]) -> str:
    """Join ``items`` on one line if it fits 78 columns, else one item a line."""
    line = ", ".join(items)
    return line if len(name) + 2 + len(line) <= 78 else ",\n ".join(items)


def _phrase(text: str) -> str:
    """A display name as an RFC 5322 phrase: quoted if ASCII, else RFC 2047."""
    text = _one_line(text)
    if text.isascii():
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return Header(text, "utf-8").encode(maxlinelen=998)


def _url(url: str) -> str:
    """A URL as it may stand inside ``<...>``: no line breaks, blanks or brackets."""
    return re.sub(r"[\s<>\0]", "", url)


def _one_line(text: str) -> str:
    """Headers built from user input must never carry CR, LF or NUL."""
    return re.sub(r"[\r\n\0]+", " ", text)


def _clean(text: str) -> str:
    """Turn raw 8-bit bytes kept as surrogates into text (UTF-8 guessed)."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def header_text(msg: EmailMessage, name: str) -> str | None:
    """The decoded value of the first ``name`` header, or None; never raises."""
    raw = next((v for k, v in msg.raw_items() if k.lower() == name.lower()), None)
    if raw is None:
        return None
    for decode in (lambda: str(msg[name]), lambda: str(make_header(decode_header(raw)))):
        try:
            return _one_line(_clean(decode()))
        except Exception:
            continue
    return _one_line(_clean(str(raw)))


def _replace(msg: EmailMessage, name: str, value: str | Address) -> None:
    """Set the one ``name`` header, in the place of the first one if present."""
    if sum(k.lower() == name.lower() for k, _ in msg.raw_items()) == 1:
        msg.replace_header(name, value)
    else:
        del msg[name]
        msg[name] = value


def prefixed_subject(subject: str | None, prefix: str) -> str:
    """Add ``prefix`` once: "AW: [SAS] x" stays, "Re: x" becomes "[SAS] Re: x"."""
    subject = _one_line(subject or "").strip()
    prefix = _one_line(prefix).strip()
    if not prefix or prefix.lower() in subject.lower():
        return subject
    return f"{prefix} {subject}".rstrip()


def _drop_headers(msg: EmailMessage, own_loop: str) -> None:
    """Remove what must not travel; keep other lists' X-Loop for their loop check."""
    foreign_loops = [
        _one_line(str(v)).strip() for k, v in msg.raw_items()
        if k.lower() == "x-loop" and _one_line(str(v)).strip().lower() != own_loop.lower()
    ]
    for name in {k.lower() for k, _ in msg.raw_items()}:
        if name in _DROP_HEADERS or name.startswith(_DROP_PREFIXES) or name == "x-loop":
            del msg[name]
    for value in foreign_loops:
        if value.isascii():
            msg["X-Loop"] = _Verbatim("X-Loop", value)


def _poster(msg: EmailMessage) -> Address | None:
    """The poster as a clean Address, or None if From cannot be read as one."""
    try:
        first = msg["From"].addresses[0]
        return Address(display_name=_one_line(_clean(first.display_name)),
                       addr_spec=first.addr_spec)
    except Exception:  # no From, a group, an unparsable or an SMTPUTF8 address
        return None


def _rewrite_from(msg: EmailMessage, mlist: ListConfig, poster_header: PosterHeader) -> None:
    """DMARC mitigation: From is the list, the poster moves to Reply-To or Cc."""
    poster = _poster(msg)
    original = header_text(msg, "From")
    name = mlist.display_name
    if poster is not None:
        name = f"{poster.display_name or poster.addr_spec} via {mlist.display_name}"
    _replace(msg, "From", Address(display_name=_one_line(_clean(name)), addr_spec=mlist.address))
    if original:
        msg["X-Original-From"] = original
    if poster is None:
        return
    if poster_header == "Cc":
        try:
            cc = list(msg["Cc"].addresses) if msg["Cc"] is not None else []
        except Exception:
            cc = None
        if cc is not None:
            if all(a.addr_spec.lower() != poster.addr_spec.lower() for a in cc):
                del msg["Cc"]
                msg["Cc"] = [*cc, poster]
            return
    if not any(k.lower() == "reply-to" for k, _ in msg.raw_items()):
        msg["Reply-To"] = poster

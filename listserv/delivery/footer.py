"""The list footer: its text, and where in a post it goes.

Pure. The footer always goes *into* a text body the poster wrote, never
into a MIME part of its own: Outlook shows any text part that follows an
attachment as an attachment called ``ATT00001.txt``, and members then
never see the footer at all.

* text/plain or text/html: appended to the text (in HTML before
  ``</body>``).
* multipart/alternative: into both the plain and the HTML version.
* multipart/mixed (a post with attachments): into the body that comes
  first, the leading text/plain or text/html part or the leading
  alternative (both of its versions); the attachments keep their bytes.
  When the first part is not such a body (an attachment first, a
  forwarded message, a body with a file name), the post gets no footer:
  List-Unsubscribe still says how to leave.
* Signed or encrypted posts (multipart/signed, S/MIME, inline PGP), a
  structure the parser had to guess at, or a charset we cannot re-encode:
  no footer either, the post goes out unchanged.
"""

from __future__ import annotations

import html
import re
from email.message import EmailMessage, MIMEPart

from listserv.config import ListConfig
from listserv.texts.render import render

PROTECTED_TYPES = frozenset({
    "multipart/signed", "multipart/encrypted",
    "application/pkcs7-mime", "application/x-pkcs7-mime",
    "application/pgp-encrypted", "application/pgp-signature",
})

_BROKEN_STRUCTURE = frozenset({
    "StartBoundaryNotFoundDefect", "CloseBoundaryNotFoundDefect",
    "MultipartInvariantViolationDefect", "NoBoundaryInMultipartDefect",
})

#: Charsets a changed text part keeps; others (utf-16, iso-2022-jp, ...) do not
#: survive line-based re-encoding, so such a part is re-encoded as UTF-8.
_KEPT_CHARSETS = frozenset(
    ["us-ascii", "utf-8"]
    + [f"iso-8859-{n}" for n in range(1, 16)]
    + [f"windows-{n}" for n in range(1250, 1259)]
)

_PGP_ARMOR = re.compile(r"^-----BEGIN PGP (SIGNED )?MESSAGE-----", re.MULTILINE)
_ABSENT = "\0"
_MAX_DEPTH = 3   # mixed inside mixed: as deep as real clients nest a leading body


def _one_line(text: str) -> str:
    return re.sub(r"[\r\n\0]+", " ", text)


def _url(url: str) -> str:
    return re.sub(r"[\s<>\0]", "", url)


def render_footer(
    mlist: ListConfig, *, unsubscribe_url: str | None = None, member: str | None = None
) -> str:
    """The footer text from ``texts/<language>/footer.txt`` (or the list's override).

    A template line that names a value we do not have (``$unsubscribe_url``
    without a web endpoint, ``$member`` in a copy shared by all members) is
    left out, so one template serves every case.
    """
    text = render(
        mlist.language, "footer", texts_dir=mlist.texts_dir,
        list_name=_one_line(mlist.display_name),
        list_address=mlist.address,
        leave_address=mlist.sub_address("leave"),
        unsubscribe_url=_url(unsubscribe_url) if unsubscribe_url else _ABSENT,
        member=_one_line(member) if member else _ABSENT,
    ).body
    lines = [line for line in text.splitlines() if _ABSENT not in line]
    return "\n".join(lines).strip("\n") + "\n"


def append_footer(msg: EmailMessage, footer: str) -> bool:
    """Add ``footer`` inside the body the members read first; False if we must not."""
    if (_structure_broken(msg) or msg.get_content_type() in PROTECTED_TYPES
            or msg.get_content_disposition() == "attachment"):
        return False
    targets = _targets(msg, _MAX_DEPTH)
    texts = [t.get_content() for t in targets]
    if not targets or any(_PGP_ARMOR.search(text) for text in texts):
        return False  # nothing to add to, or inline PGP that a footer would spoil
    for target, text in zip(targets, texts, strict=True):
        _append(target, text, footer)
    if "MIME-Version" not in msg:
        msg["MIME-Version"] = "1.0"
    return True


def _targets(part: EmailMessage, depth: int) -> list[EmailMessage]:
    """The text parts that make up the post's (first) body; [] when there is none."""
    ctype = part.get_content_type()
    if ctype in PROTECTED_TYPES or depth <= 0:
        return []
    if ctype == "multipart/mixed":
        first = next(part.iter_parts(), None)
        if first is None or _is_attachment(first):
            return []
        return _targets(first, depth - 1)  # type: ignore[arg-type]
    branches = list(part.iter_parts()) if ctype == "multipart/alternative" else [part]
    return [t for branch in branches if (t := _body_of(branch)) is not None]


def _is_attachment(part: MIMEPart) -> bool:
    """A part the poster attached, not wrote: disposition attachment, or a named file."""
    return part.get_content_disposition() == "attachment" or part.get_filename() is not None


def _structure_broken(msg: EmailMessage) -> bool:
    """A multipart the parser had to guess at: re-printing it could move parts."""
    for part in msg.walk():
        if any(type(d).__name__ in _BROKEN_STRUCTURE for d in part.defects):
            return True
        if part.get_content_maintype() == "multipart" and not part.is_multipart():
            return True
    return False


def _body_of(part: EmailMessage) -> EmailMessage | None:
    """The text/plain or text/html body of a message or of one alternative."""
    if part.get_content_disposition() == "attachment":
        return None
    if part.get_content_type() in ("text/plain", "text/html"):
        return part
    if part.get_content_type() == "multipart/related":
        root = next(part.iter_parts(), None)
        if root is not None and root.get_content_type() == "text/html":
            return root  # type: ignore[return-value]
    return None


def _append(part: EmailMessage, text: str, footer: str) -> None:
    if part.get_content_subtype() == "html":
        block = _html_footer(footer)
        at = text.lower().rfind("</body")
        text = text[:at] + block + text[at:] if at >= 0 else text + block
    else:
        text = text + ("" if not text or text.endswith("\n") else "\n") + footer
    charset = (part.get_content_charset() or "us-ascii").lower()
    old_cte = str(part.get("Content-Transfer-Encoding", "7bit")).strip().lower()
    _set_text(part, text, part.get_content_subtype(), charset=charset, cte=old_cte)


def _set_text(part: MIMEPart, text: str, subtype: str, *, charset: str, cte: str) -> None:
    """Set a text body, keeping the part's other Content-* headers and params."""
    if charset not in _KEPT_CHARSETS:
        charset = "utf-8"
    try:
        data = text.encode(charset)
    except UnicodeEncodeError:
        charset, data = "utf-8", text.encode("utf-8")
    if data.isascii() and max(map(len, data.splitlines()), default=0) <= 998:
        cte = "7bit"
    elif cte != "base64":
        cte = "quoted-printable"  # never 8bit: a relay's 8bit->QP conversion breaks DKIM
    params = {k: v for k, v in part.get_params(header="content-type", failobj=[])[1:]
              if k.lower() != "charset"} if part.get("Content-Type") else {}
    kept = [(k, v) for k, v in part.raw_items()
            if k.lower().startswith("content-")
            and k.lower() not in ("content-type", "content-transfer-encoding")]
    # MIMEPart's method: EmailMessage's would add MIME-Version to inner parts.
    MIMEPart.set_content(part, text, subtype=subtype, charset=charset, cte=cte, params=params)
    for name, value in kept:
        part[name] = re.sub(r"\r?\n", "", str(value))  # unfold: the policy refuses line breaks
def _html_footer(footer: str) -> str:
    lines = []
    for line in footer.splitlines():
        if line and set(line) <= set("_-"):
            lines.append("<hr>")
            continue
        line = html.escape(line)
        line = re.sub(r"https?://[^\s<>\"']+", lambda m: f'<a href="{m[0]}">{m[0]}</a>', line)
        line = re.sub(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+",
                      lambda m: f'<a href="mailto:{m[0]}">{m[0]}</a>', line)
        lines.append(line + "<br>")
    block = '\n<div class="list-footer">\n' + "\n".join(lines) + "\n</div>\n"
    # ASCII with character references fits any charset the HTML declares.
    return block.encode("ascii", "xmlcharrefreplace").decode("ascii")

"""Reading failed recipients out of the prose of non-standard bounces.

The last resort after RFC 3464 fields, flufl.bounce and X-Failed-Recipients. MTAs phrase
failures in hundreds of ways (qmail "<addr>:", Exim "RCPT TO:<addr>", Sendmail's
"----- The following addresses had permanent fatal errors -----", Exchange's "Delivery
has failed to these recipients", GMX's "Ihre E-Mail konnte nicht ... zugestellt werden"),
but almost all of them name the recipient in the text *before* the returned copy of the
mail. So the reader cuts the text at that copy and takes the addresses that are left,
minus those known to be ours (the bounce's own headers, the returned mail's sender).
A wrong extra address is cheap (the caller only acts on members); a missed one is not.
"""

from __future__ import annotations

import re

from listserv.bounces.mime import addresses_in

# Where the human part ends and the returned copy of our mail begins.
_CUT_RE = re.compile(
    r"""^[ \t>|=*_\#~-]*+(?:
        (?:the\s+)?(?:original|unsent|returned|undelivered|bounced|source)\s+
            (?:message|mail|e-?mail|headers?)\b(?![ \t]+(?:was|could|has|is|had|from)\b)
      | (?<=[=*-])[^\n]*?\b(?:copy\s+of\s+(?:the|your)\s+(?:original\s+)?(?:message|mail)
            |message\s+(?:(?:header|headers|text)\s+)?follows
            |headers?\s+of\s+the\s+(?:original|source)|original\s+message
            |kopie\s+der\s+(?:original)?nachricht|header\s+of\s+the)
      | (?:below\s+(?:is|this\s+line\s+is)\s+a\s+copy|original\s+message\s+headers?
            |bounced\s+e-?mail|the\s+header\s+of\s+the\s+original)
      | (?:received|return-path|message-id|dkim-signature|mime-version|x-mailer|in-reply-to
            |references|x-originating-ip|authentication-results|arc-seal):
    )""",
    re.IGNORECASE | re.MULTILINE | re.VERBOSE,
)

# Addresses named next to these words are the failed ones, whatever else the text holds.
_STRONG_RES = (
    re.compile(r"RCPT\s+TO:?\s*<?([^>\s@]+@[^>\s@]+)", re.IGNORECASE),
    re.compile(r"<([^>\s@]+@[^>\s@]+)>\.\.\.\s"),  # Sendmail: "550 <addr>... User unknown"
    re.compile(
        r"\b(?:deliver(?:ing|ed|y)?|sent|send(?:ing)?|zugestellt|remis)\b[^\n<]{0,40}?"
        r"\b(?:to|an|à)\s*:?\s*<([^>\s@]+@[^>\s@]+)>",
        re.IGNORECASE,
    ),
    re.compile(r"^[ \t]*<([^>\s@]+@[^>\s@]+)>", re.MULTILINE),
    re.compile(r"^[ \t]*([^\s<>:@]+@[^\s<>:@]+):\s", re.MULTILINE),
    re.compile(
        r"(?:recipient|address|adresse|empfänger|destinataire|to|an)\s*(?:address\s*)?[:=]\s*"
        r"<?([^\s<>()\"',;@]+@[^\s<>()\"',;@]+)",
        re.IGNORECASE,
    ),
    re.compile(r"^[ \t]*([^\s<>()\"',;:@]+@[^\s<>()\"',;:@]+)[ \t]*$", re.MULTILINE),
)

_TEMPORARY_RE = re.compile(
    r"\b(?:delayed|deferred|will\s+(?:retry|continue\s+trying|keep\s+trying|try\s+again)"
    r"|still\s+trying|has\s+not\s+(?:yet\s+)?been\s+delivered|not\s+yet\s+been\s+delivered"
    r"|temporar(?:y|ily)\s+(?:failure|problem|error|unavailable)|warning:\s+message"
    r"|verzögert|noch\s+nicht\s+zugestellt|later\s+retry)\b",
    re.IGNORECASE,
)
_GIVEN_UP_RE = re.compile(
    r"\b(?:permanent(?:ly)?|fatal|giving\s+up|gave\s+up|failed\s+permanently|unknown\s+user"
    r"|user\s+unknown|no\s+such\s+user|does\s+not\s+exist|5\.\d{1,3}\.\d{1,3})\b",
    re.IGNORECASE,
)
_ROLE_LOCALS = frozenset({"mailer-daemon", "postmaster", "mail-daemon", "mailerdaemon", "abuse"})


_BOUNCE_PHRASE_RE = re.compile(
    r"could\s+not\s+be\s+delivered|undeliverable|delivery\s+(?:has\s+)?failed"
    r"|(?:user|mailbox|address)\s+(?:unknown|not\s+found|unavailable|is\s+full)"
    r"|no\s+such\s+(?:user|mailbox|address)|mailbox\s+(?:is\s+)?full|permanent\s+error"
    r"|following\s+(?:addresses|recipients?)\s+(?:had|failed)|delivery\s+to\s+the\s+following"
    r"|nicht\s+zugestellt|unzustellbar|n'a\s+pas\s+pu\s+être\s+(?:remis|délivré)",
    re.IGNORECASE,
)


def human_part(text: str) -> str:
    """Text before the returned copy of the original mail."""
    match = _CUT_RE.search(text)
    return text[: match.start()] if match else text


def returned_part(text: str) -> str:
    """Text from the returned copy of the original mail on (empty when none is marked)."""
    match = _CUT_RE.search(text)
    return text[match.start() :] if match else ""


def says_undeliverable(texts: list[str]) -> bool:
    """Does the prose speak of a failed delivery, whatever the headers claim?"""
    return any(_BOUNCE_PHRASE_RE.search(human_part(t)) for t in texts)


def failed_in_text(texts: list[str], ours: set[str]) -> list[str]:
    """Failed recipients named in the bounce's prose, best candidates first."""
    human = "\n".join(human_part(t) for t in texts)
    strong: list[str] = []
    for pattern in _STRONG_RES:
        for match in pattern.finditer(human):
            for address in addresses_in(match.group(1)):
                if address not in ours and address not in strong:
                    strong.append(address)
    if strong:
        return strong
    return [
        a for a in addresses_in(human)
        if a not in ours and a.split("@")[0].strip('"') not in _ROLE_LOCALS
    ]


def looks_temporary(texts: list[str]) -> bool:
    """Does the prose say the MTA is still trying, rather than that it gave up?"""
    human = "\n".join(human_part(t) for t in texts)
    return bool(_TEMPORARY_RE.search(human)) and not _GIVEN_UP_RE.search(human)

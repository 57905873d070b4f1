"""The reply and request corpus, run through the pure core, and its score.

A case (``corpus_dev.py``, ``corpus_heldout.py``) is a dict:

* ``situation``: what the mail answers or where it goes —
  ``own_subscribe``/``own_unsubscribe``/``invitation`` (a person about her own
  request), ``mod_post``/``mod_post_req``/``mod_member``/``mod_invite``/``mod_remove`` (the
  coordinator on a held post, a held post that looks like a request, a
  membership request, a ready invitation), ``list`` (mail to the list address);
* ``body`` (text/plain) or ``html`` (HTML only); ``subject``, ``headers``;
  ``via: "request"``: sent to ``-request`` with the token in the Subject;
* ``expect``: one outcome or a list of acceptable ones; ``reason`` for reject.

Quote macros in a body are replaced by the notice quoted as each client does:
``{gmail}`` ``{apple}`` ``{ios}`` ``{tb}`` ``{outlook}`` (line + "Von:" block)
``{outlook_plain}`` (the block alone) ``{orig}`` ("-----Ursprüngliche
Nachricht-----") ``{en_gmail}`` ``{en_outlook}`` ``{gmx}`` (GMX/web.de:
"Gesendet:" before "Von:") ``{notes}`` (Lotus Notes: "… schrieb am …:", no quote marks).

Outcomes: confirm, decline, approve, reject, discard, join, reask, ignore (no
answer), and for the list address subscribe, unsubscribe, colleague, post,
post_request (a post whose held notice offers "aufnehmen").

Scoring: *right* when the outcome is expected; a *wrong action* when the
outcome acts (adds, removes, publishes, rejects, discards, cancels, or sends a
request round as a post) and was not expected; a *re-ask* when it asks again
(reask, post_request); *silent* otherwise (ignore when an answer was due).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.message import EmailMessage

from listserv.commands.parse import find_token
from listserv.commands.reader import Asker, Reading, decide_lines, fresh_reply_lines
from listserv.commands.requests import read_request
from listserv.commands.tokens import Action
from listserv.commands.verdict import Notice, notice_for, verdict
from listserv.config import ListConfig
from listserv.inbox.automatic import automatic_reason
from listserv.texts.compose import standard_values
from listserv.texts.render import render
from tests.builders import parse

LIST = "soziale.arbeit.an.schulen@gelsenkirchen.de"
MODERATOR = "koordination@gelsenkirchen.de"
PERSON = "jana.becker@schule-gelsenkirchen.de"
TOKEN = "q2xhcmetmtizndu2nzg5mgfiy2rlzgya"
CONFIRM = LIST.replace("@", f"-confirm+{TOKEN}@")
MLIST = ListConfig(address=LIST, display_name="Netzwerk Soziale Arbeit an Schulen",
                   moderators=(MODERATOR,))
ACTS = {"confirm", "decline", "approve", "reject", "discard", "join", "subscribe",
        "unsubscribe", "colleague"}
REQUESTS = {"subscribe", "unsubscribe", "colleague"}
REASKS = {"reask", "post_request"}

_NOTICE_TEMPLATE = {
    "own_subscribe": "confirm_subscribe", "own_unsubscribe": "confirm_unsubscribe",
    "invitation": "invitation", "mod_post": "held_notice", "mod_post_req": "held_notice",
    "mod_member": "approve_member", "mod_invite": "confirm_invite",
    "mod_remove": "confirm_remove",
}
_SITUATION = {
    "own_subscribe": (Action.SUBSCRIBE, False), "own_unsubscribe": (Action.UNSUBSCRIBE, False),
    "invitation": (Action.INVITATION, False), "mod_post": (Action.MODERATE_POST, False),
    "mod_post_req": (Action.MODERATE_POST, True), "mod_member": (Action.APPROVE_MEMBER, False),
    "mod_invite": (Action.INVITE_REQUEST, False),
    "mod_remove": (Action.REMOVE_REQUEST, False),
}


class _Values(dict):
    def __missing__(self, key: str) -> str:
        return {"subject": "Sommerfest an der GS Bulmke", "confirm_address": CONFIRM,
                "list_address": LIST, "list_name": MLIST.display_name}.get(key, "x")


def notice(situation: str) -> tuple[str, str]:
    """The notice this case answers: (subject, body) as our texts render it."""
    rendered = render("de", _NOTICE_TEMPLATE[situation], **_Values(
        **standard_values(MLIST), address=PERSON, person=f"Jana Becker ({PERSON})",
        name="Jana Becker", sender=f"Jana Becker <{PERSON}>", date="x", size="3 KB",
        reason="alle Beiträge werden geprüft", attachments="-",
        excerpt="  | Liebe Kolleginnen und Kollegen", days=7, confirm_address=CONFIRM,
        subject="Sommerfest an der GS Bulmke", choices="", join_choice=""))
    return rendered.subject, rendered.body


def _quotes(subject: str, body: str) -> dict[str, str]:
    quoted = "\n".join(f"> {line}".rstrip() for line in body.splitlines())
    frm = f"Netzwerk Soziale Arbeit an Schulen <{CONFIRM}>"
    block = (f"Von: {frm}\nGesendet: Montag, 30. November 2026 10:15\nAn: {MODERATOR}\n"
             f"Betreff: {subject}\n\n{body}")
    en_block = (f"From: {frm}\nSent: Monday, November 30, 2026 10:15 AM\nTo: {MODERATOR}\n"
                f"Subject: {subject}\n\n{body}")
    return {
        "gmail": f"Am Mo., 30. Nov. 2026 um 10:15 Uhr schrieb {frm}:\n{quoted}",
        "apple": f"Am 30.11.2026 um 10:15 schrieb {frm}:\n\n{quoted}",
        "ios": f"> Am 30.11.2026 um 10:15 schrieb {frm}:\n>\n{quoted}",
        "tb": f"Am 30.11.26 um 10:15 schrieb Netzwerk Soziale Arbeit an Schulen:\n{quoted}",
        "outlook": f"________________________________\n{block}",
        "outlook_plain": block,
        "orig": f"-----Ursprüngliche Nachricht-----\n{block}",
        "en_gmail": f"On Mon, Nov 30, 2026 at 10:15 AM {frm} wrote:\n{quoted}",
        "en_outlook": f"________________________________\n{en_block}",
        "gmx": (f"Gesendet: Montag, 30. November 2026 um 10:15 Uhr\nVon: {frm}\nAn: {PERSON}\n"
                f"Betreff: {subject}\n\n{body}"),
        "notes": f"Netzwerk/Stadt/GE@STADT schrieb am 30.11.2026 10:15:\n\n{body}",
    }


def build(case: dict) -> EmailMessage:
    situation = case["situation"]
    msg = EmailMessage()
    sender = MODERATOR if situation.startswith("mod_") else PERSON
    msg["From"] = sender
    if situation == "list":
        msg["To"] = LIST
        msg["Subject"] = case.get("subject", "")
        body = case.get("body", "")
    else:
        subject, text = notice(situation)
        msg["To"] = CONFIRM
        msg["Subject"] = case.get("subject", f"AW: {subject}")
        if case.get("via") == "request":
            msg.replace_header("Subject", f"AW: {subject} [confirm {TOKEN}]")
        body = case.get("body", "")
        for name, value in _quotes(subject, text).items():
            body = body.replace("{" + name + "}", value)
    for name, value in case.get("headers", {}).items():
        msg[name] = value
    if "html" in case:
        msg.set_content(case["html"], subtype="html")
    else:
        msg.set_content(body)
    return parse(msg.as_bytes())


Reader = Callable[[EmailMessage], list[str]]


def outcome(case: dict, lines_of: Reader = fresh_reply_lines) -> tuple[str, Reading | None]:
    """What listserv's pure core does with the case: (outcome, the reading if any)."""
    msg = build(case)
    sender = MODERATOR if case["situation"].startswith("mod_") else PERSON
    if automatic_reason(msg, sender, [MLIST]) is not None:
        return "ignore", None
    if case["situation"] == "list":
        return {"join": "subscribe", "leave": "unsubscribe", "colleague": "colleague",
                "like_join": "post_request", "none": "post"}[read_request(msg, sender).ask], None
    if case.get("via") == "request":
        assert find_token(str(msg["Subject"])) == TOKEN
    action, request_like = _SITUATION[case["situation"]]
    kind: Notice = notice_for(action, request_like=request_like)
    asker = Asker.MODERATOR if sender == MODERATOR else Asker.PERSON
    reading = decide_lines(lines_of(msg), asker, wish=kind.wish)
    return verdict(kind, reading.choice), reading


@dataclass
class Score:
    cases: int = 0
    right: int = 0
    wrong_actions: int = 0
    reasks: int = 0
    silent: int = 0

    @property
    def percent_right(self) -> float:
        return 100.0 * self.right / self.cases if self.cases else 0.0

    def line(self, name: str) -> str:
        return (f"{name:34} cases {self.cases:4}  right {self.right:4} "
                f"({self.percent_right:5.1f} %)  wrong actions {self.wrong_actions:3}  "
                f"re-asks {self.reasks:3}  silent {self.silent:3}")


def score(cases: Sequence[dict], lines_of: Reader = fresh_reply_lines
          ) -> tuple[Score, list[tuple[dict, str, str]]]:
    """The score, and the cases not right as (case, outcome, category)."""
    result, misses = Score(), []
    for case in cases:
        expected = case["expect"] if isinstance(case["expect"], list) else [case["expect"]]
        got, reading = outcome(case, lines_of)
        if got == "reject" and "reason" in case and reading is not None:
            got = got if reading.reason == case["reason"] else "reject (other reason)"
        result.cases += 1
        if got in expected:
            result.right += 1
            continue
        acts = got.split(" ")[0] in ACTS or (got == "post" and set(expected) & REQUESTS)
        category = "wrong action" if acts else "re-ask" if got in REASKS else "silent"
        if acts:
            result.wrong_actions += 1
        elif got in REASKS:
            result.reasks += 1
        else:
            result.silent += 1
        misses.append((case, got, category))
    return result, misses

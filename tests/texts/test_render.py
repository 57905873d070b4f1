"""Every text renders in both languages, and an operator's override wins, per list."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from listserv.cli.main import main
from listserv.config import Config, ListConfig
from listserv.daemon import Daemon
from listserv.errors import ConfigError
from listserv.texts.compose import compose, standard_values
from listserv.texts.render import (
    LANGUAGES,
    STANDARD_PLACEHOLDERS,
    override_problems,
    packaged_names,
    render,
)
from tests.conftest import LIST, MODERATOR, FakeDns, mail, make_daemon, write_config
from tests.mailflow import Flow, reply_to, text_of

SAS = ListConfig(LIST, "Netzwerk Soziale Arbeit an Schulen", (MODERATOR,))
NAMES = sorted(packaged_names("de"))
# Every placeholder any template uses, with a value a reader could mistake for nothing else.
VALUES = {**standard_values(SAS), "address": "a@b.de", "person": "Sabine Müller (a@b.de)",
          "name": "Sabine Müller", "confirm_address": "l-confirm+x@d.de", "days": 7,
          "subject": "Sommerfest", "sender": "a@b.de", "count": 3, "reason": "Werbung",
          "date": "30.11.2026, 13:19 Uhr", "size": "3 KB", "attachments": "-",
          "excerpt": "  | Hallo", "posts": "  - x", "members": "a@b.de", "lines": "> x",
          "outcome": "-", "by": "k@d.de", "at": "30.11.2026, 13:19 Uhr", "score": 5,
          "threshold": 5, "last_bounce": "30.11.2026", "last_error": "550",
          "reply_address": "a@b.de", "unsubscribe_url": "https://x/u/1", "member": "a@b.de",
          "token": "t" * 32, "asker": "b@c.de", "about": "a@b.de", "join_choice": "",
          "url": "https://listen.example/login/" + "t" * 32, "minutes": 30,
          "number": 12, "words": "fachtag", "total": 4, "hits": "Nr. 12 · Fachtag"}


def test_the_standard_placeholders_are_what_compose_fills() -> None:
    assert set(standard_values(SAS)) == STANDARD_PLACEHOLDERS


def test_both_languages_have_the_same_texts() -> None:
    assert packaged_names("de") == packaged_names("en")


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("name", NAMES)
def test_every_text_renders_without_raw_tokens_or_empty_names(language: str, name: str) -> None:
    text = render(language, name.removesuffix(".txt"), **VALUES)
    whole = text.subject + "\n" + text.body
    assert "$" not in whole
    assert "(-)" not in whole and "()" not in whole
    assert "t" * 32 not in text.subject                 # the token lives in Reply-To only
    assert " bei Netzwerk" not in whole and " bei $" not in whole
    if language == "de":   # one language per mail: no English half below the German
        assert not re.search(r"\b(please|the list|Hello)\b", whole)
    else:
        assert not re.search(r"\b(bitte|Guten Tag|Verteiler)\b", whole)


def override_dir(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "texte"
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    return root


def test_an_override_wins_and_others_stay_packaged(tmp_path: Path) -> None:
    root = override_dir(tmp_path, {"de/welcome.txt": "Subject: Hallo $list_name\n\nEigener Text\n"})
    mine = render("de", "welcome", texts_dir=str(root), **VALUES)
    assert mine.subject == "Hallo Netzwerk Soziale Arbeit an Schulen"
    assert mine.body == "Eigener Text\n"
    assert render("en", "welcome", texts_dir=str(root), **VALUES).subject.startswith("Welcome")
    assert render("de", "help", texts_dir=str(root), **VALUES).subject.startswith("Hilfe")


def test_a_misnamed_override_and_an_unknown_placeholder_are_found(tmp_path: Path) -> None:
    root = override_dir(tmp_path, {"de/welcome.txt": "x $list_name", "de/wilkommen.txt": "x",
                                   "en/welcome.txt": "Hi $naem"})
    assert override_problems(str(root)) == [
        "de/wilkommen.txt overrides no text of listserv (a typo?)",
        "en/welcome.txt uses $naem, which the packaged text does not have"]


def test_a_broken_override_falls_back_to_the_packaged_text(tmp_path: Path) -> None:
    root = override_dir(tmp_path, {"de/welcome.txt": "Subject: Hallo $naem\n\nx\n"})
    text = render("de", "welcome", texts_dir=str(root), flowing=True, **VALUES)
    assert text.subject == "Willkommen im Netzwerk Soziale Arbeit an Schulen"
    with pytest.raises(KeyError):
        render("de", "welcome", name="x")   # our own text missing a value: loud


def list_table(texts_dir: str) -> dict[str, object]:
    return {"address": LIST, "display_name": "Netzwerk Soziale Arbeit an Schulen",
            "moderators": [MODERATOR], "subject_prefix": "[SAS]", "texts_dir": texts_dir}


def test_a_missing_texts_dir_is_a_config_error(config_factory: Callable[..., Config],
                                               tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\[lists\.0\] texts_dir: .*nope is not a directory"):
        config_factory(lists=[list_table(str(tmp_path / "nope"))])


def test_check_reports_an_override_that_replaces_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = override_dir(tmp_path, {"de/wilkommen.txt": "x"})
    path = write_config(tmp_path, lists=[list_table(str(root))])
    assert main(["check", "--config", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "[lists.0] texts_dir:" in err and "de/wilkommen.txt overrides no text" in err
    (root / "de" / "wilkommen.txt").rename(root / "de" / "welcome.txt")
    assert main(["check", "--config", str(path)]) == 0


@pytest.fixture
async def flow(config_factory: Callable[..., Config], tmp_path: Path, dns: FakeDns
               ) -> AsyncIterator[Flow]:
    root = override_dir(tmp_path, {"de/welcome.txt": (
        "Subject: Herzlich willkommen $list_in\n\nLiebe Kollegin, lieber Kollege,\n\n"
        "schön, dass Sie dabei sind! Beiträge an $list_address.\n")})
    daemon: Daemon = make_daemon(config_factory(lists=[list_table(str(root))]), dns)
    await daemon.start()
    try:
        yield Flow(daemon)
    finally:
        await daemon.stop()


async def test_the_new_member_receives_the_overridden_welcome(flow: Flow) -> None:
    who = "neu@schule.example"
    join = LIST.replace("@", "-join@")
    await flow.send(mail(sender=who, to=join, subject="", body=""), mail_from=who, to=join)
    confirm = flow.last_to(who)
    assert confirm["Subject"].startswith("Bitte bestätigen")      # not overridden: packaged
    await flow.send(reply_to(confirm, sender=who), mail_from=who, to=str(confirm["Reply-To"]))
    approval = flow.last_to(MODERATOR)
    await flow.send(reply_to(approval, sender=MODERATOR, body="ok"), mail_from=MODERATOR,
                    to=str(approval["Reply-To"]))
    welcome = flow.last_to(who)
    assert welcome["Subject"] == "Herzlich willkommen im Netzwerk Soziale Arbeit an Schulen"
    assert text_of(welcome).startswith("Liebe Kollegin, lieber Kollege,")
    assert f"Beiträge an {LIST}." in text_of(welcome)


def test_a_missing_subject_is_named_not_a_dash() -> None:
    msg = compose(SAS, to="k@b.de", template="ack_post_discarded", language="de",
                  now=datetime(2026, 11, 30, tzinfo=UTC),
                  values={"subject": "", "sender": "a@b.de"})
    assert msg["Subject"] == "Verworfen: »(ohne Betreff)« von a@b.de"


def test_an_override_in_cp1252_is_reported_and_not_used(tmp_path: Path) -> None:
    root = override_dir(tmp_path, {})
    (root / "de").mkdir(parents=True)
    (root / "de" / "welcome.txt").write_bytes("Subject: Grüße\n\nx\n".encode("cp1252"))
    assert override_problems(str(root))[0].startswith("de/welcome.txt cannot be read as UTF-8")
    assert render("de", "welcome", texts_dir=str(root), **VALUES).subject.startswith("Willkommen")

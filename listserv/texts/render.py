"""Mail texts, one file per text and language, never in code.

A template file is ``texts/<language>/<name>.txt``: an optional first
line ``Subject: ...``, a blank line, then the body. Placeholders are
``$name`` / ``${name}`` (``string.Template``), so a ``{`` or ``%`` in German
prose needs no escaping. A missing placeholder value is a programming
error and raises ``KeyError`` at once rather than mailing ``$token`` to a
member.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from string import Template

LANGUAGES = ("de", "en")


@dataclass(frozen=True)
class Rendered:
    subject: str
    body: str


@cache
def _source(language: str, name: str) -> str:
    if language not in LANGUAGES:
        language = "de"
    ref = resources.files(__package__).joinpath(language, f"{name}.txt")
    return ref.read_text(encoding="utf-8")


def template_text(language: str, name: str) -> str:
    """The template as written (tests audit which placeholders a text uses)."""
    return _source(language, name)


def render(language: str, name: str, /, **values: object) -> Rendered:
    """Fill template ``name`` in ``language`` (falling back to German)."""
    text = Template(_source(language, name)).substitute({k: str(v) for k, v in values.items()})
    subject = ""
    if text.startswith("Subject:"):
        head, _, text = text.partition("\n")
        subject = head.removeprefix("Subject:").strip()
        text = text.removeprefix("\n")
    return Rendered(subject=subject, body=text)


@cache
def labels(language: str, name: str) -> dict[str, str]:
    """A file of ``key: text`` lines (names of things in mails), e.g. ``notice_kinds``."""
    found = {}
    for line in _source(language, name).splitlines():
        key, sep, text = line.partition(":")
        if sep and key.strip() and not key.startswith("#"):
            found[key.strip()] = text.strip()
    return found

"""Mail texts, one file per text and language, never in code.

A template file is ``texts/<language>/<name>.txt``: an optional first
line ``Subject: ...``, a blank line, then the body. Placeholders are
``$name`` / ``${name}`` (``string.Template``), so a ``{`` or ``%`` in German
prose needs no escaping. A missing placeholder value is a programming
error and raises ``KeyError`` at once rather than mailing ``$token`` to a
member.

An operator overrides any text per list without touching the package: a
file of the same name under the list's ``texts_dir``
(``<texts_dir>/de/welcome.txt``) wins over the packaged one. Overrides are
read at every use, so an edited text takes effect without a restart; the
packaged texts are read once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from string import Template

LANGUAGES = ("de", "en")
#: Placeholders every mail may use (``compose.standard_values`` fills them).
STANDARD_PLACEHOLDERS = frozenset({
    "list_name", "list_in", "list_into", "list_from", "list_address", "request_address",
    "join_address", "leave_address", "owner_address"})


@dataclass(frozen=True)
class Rendered:
    subject: str
    body: str


@cache
def _packaged(language: str, name: str) -> str:
    ref = resources.files(__package__).joinpath(language, f"{name}.txt")
    return ref.read_text(encoding="utf-8")


def packaged_names(language: str) -> frozenset[str]:
    """The file names of the packaged texts of ``language`` (``welcome.txt``, …)."""
    folder = resources.files(__package__).joinpath(language)
    return frozenset(p.name for p in folder.iterdir() if p.name.endswith(".txt"))


def _placeholders(source: str) -> set[str]:
    return {m.group("named") or m.group("braced")
            for m in Template.pattern.finditer(source)
            if m.group("named") or m.group("braced")}


def override_problems(texts_dir: str) -> list[str]:
    """What is wrong with the overrides in ``texts_dir``, one line each.

    A file that replaces no packaged text (a typo would otherwise be
    ignored), and a placeholder the packaged text does not fill (the mail
    could not be written; ``render`` then falls back to the packaged text).
    """
    root = Path(texts_dir)
    problems: list[str] = []
    for language in LANGUAGES:
        folder = root / language
        if not folder.is_dir():
            continue
        known = packaged_names(language)
        for path in sorted(p for p in folder.iterdir() if p.is_file()):
            where = f"{language}/{path.name}"
            if path.name not in known:
                problems.append(f"{where} overrides no text of listserv (a typo?)")
                continue
            try:
                own = _placeholders(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError) as exc:
                problems.append(f"{where} cannot be read as UTF-8 text: {exc}")
                continue
            packaged = _packaged(language, path.name.removesuffix(".txt"))
            unknown = own - _placeholders(packaged) - STANDARD_PLACEHOLDERS
            if unknown:
                problems.append(f"{where} uses ${sorted(unknown)[0]}, which the packaged text"
                                " does not have")
    return problems


def _source(language: str, name: str, texts_dir: str) -> str:
    if language not in LANGUAGES:
        language = "de"
    if texts_dir:
        override = Path(texts_dir, language, f"{name}.txt")
        try:
            return override.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            pass   # none, or unreadable (``listserv check`` says which): the packaged text
    return _packaged(language, name)


_ALONE = re.compile(r"^\$\{?\w+\}?$")   # a line that is one placeholder: a block of its own


def unwrap(source: str) -> str:
    """Join the hard-wrapped lines of each prose paragraph into one line.

    The files are wrapped at ~72 columns to be edited; a mail is read on a
    phone, where hard breaks plus the client's own wrapping give ragged
    half-lines, and a long placeholder ("im Netzwerk Soziale Arbeit an
    Schulen") would push a line far past the others. So a paragraph goes
    out as one line and every client wraps it to its own width. Indented
    lines (tables, lists) and a line that is only a placeholder (``$posts``)
    keep their breaks.
    """
    out: list[str] = []
    for line in source.split("\n"):
        previous = out[-1] if out else ""
        prose = line and not line[0].isspace() and not _ALONE.match(line.strip())
        if (prose and previous and not previous[0].isspace()
                and not _ALONE.match(previous.strip()) and not previous.startswith("Subject:")):
            out[-1] = f"{previous} {line}"
        else:
            out.append(line)
    return "\n".join(out)


def template_text(language: str, name: str) -> str:
    """The packaged template as written (tests audit which placeholders a text uses)."""
    return _source(language, name, "")


def render(language: str, name: str, /, *, texts_dir: str = "", flowing: bool = False,
           **values: object) -> Rendered:
    """Fill template ``name`` in ``language`` (falling back to German).

    ``texts_dir``: the list's override directory ("" = the packaged texts only).
    ``flowing``: one line per paragraph (``unwrap``), for mails; the footer
    keeps its lines.
    """
    mapping = {k: str(v) for k, v in values.items()}
    source = _source(language, name, texts_dir)
    try:
        text = Template(unwrap(source) if flowing else source).substitute(mapping)
    except (KeyError, ValueError):
        if not texts_dir:
            raise   # our own text: a programming error, found by the tests
        # A broken override must not stop a welcome or a decision: the packaged text.
        source = _packaged(language if language in LANGUAGES else "de", name)
        text = Template(unwrap(source) if flowing else source).substitute(mapping)
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
    for line in _packaged(language if language in LANGUAGES else "de", name).splitlines():
        key, sep, text = line.partition(":")
        if sep and key.strip() and not key.startswith("#"):
            found[key.strip()] = text.strip()
    return found

"""Reading a member list from a CSV file, as offices actually export them.

Outlook and Excel on a German Windows write semicolon-separated files in
cp1252 (Windows-1252), sometimes with a UTF-8 BOM instead, with headers
like "E-Mail-Adresse;Vorname;Nachname" or none at all. Pure: bytes in,
rows and a list of per-line problems out, so the operator learns which
lines were skipped and why instead of a traceback.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from listserv.mail.message import decode_words, normalise_address, one_line

_EMAIL_HEADERS = {"e-mail", "email", "e-mail-adresse", "emailadresse", "e-mail address",
                  "email address", "mail", "adresse", "address", "e-mail 1", "e-mail-adresse 1"}
_NAME_HEADERS = {"name", "anzeigename", "display name", "vollständiger name", "full name"}
_FIRST = {"vorname", "first name", "firstname", "given name"}
_LAST = {"nachname", "last name", "lastname", "surname", "family name"}
_ROLE = {"funktion", "rolle", "role", "profession", "beruf"}
_EMPLOYER = {"träger", "traeger", "arbeitgeber", "anstellungsträger", "employer", "träger-typ"}


@dataclass(frozen=True)
class Row:
    address: str       # as written (local part kept), domain lower-cased
    name: str
    line: int
    role: str = ""     # SchuSo, SOFA, MPT, SDS … when the file has such a column
    employer: str = ""


@dataclass(frozen=True)
class Problem:
    line: int
    text: str


def decode(data: bytes) -> str:
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", "replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", "replace")


def read_members(data: bytes) -> tuple[list[Row], list[Problem]]:
    text = decode(data)
    first_line = text.splitlines()[0] if text.strip() else ""
    delimiter = ";" if first_line.count(";") >= first_line.count(",") else ","
    if "\t" in first_line and first_line.count("\t") > first_line.count(delimiter):
        delimiter = "\t"
    lines = list(csv.reader(io.StringIO(text), delimiter=delimiter))
    rows: list[Row] = []
    problems: list[Problem] = []
    if not lines:
        return rows, problems
    header = [h.strip().lower() for h in lines[0]]
    has_header = not any("@" in cell for cell in lines[0])
    email_col = next((i for i, h in enumerate(header) if h in _EMAIL_HEADERS), None)
    name_col = next((i for i, h in enumerate(header) if h in _NAME_HEADERS), None)
    first_col = next((i for i, h in enumerate(header) if h in _FIRST), None)
    last_col = next((i for i, h in enumerate(header) if h in _LAST), None)
    role_col = next((i for i, h in enumerate(header) if h in _ROLE), None)
    employer_col = next((i for i, h in enumerate(header) if h in _EMPLOYER), None)
    seen: set[str] = set()
    for number, cells in enumerate(lines[1:] if has_header else lines,
                                   start=2 if has_header else 1):
        if not any(c.strip() for c in cells):
            continue
        if email_col is not None and email_col < len(cells):
            candidate = cells[email_col]
        else:
            candidate = next((c for c in cells if "@" in c), "")
        if not candidate.strip():
            problems.append(Problem(number, "no e-mail address in this line"))
            continue
        address = normalise_address(candidate)
        if address is None:
            problems.append(Problem(number, f"not a valid address: {one_line(candidate, 60)!r}"))
            continue
        if address in seen:
            problems.append(Problem(number, f"{address} appears twice; kept the first"))
            continue
        seen.add(address)
        local = candidate.strip().strip("<>").strip().rpartition("@")[0]
        rows.append(Row(f"{local}@{address.rpartition('@')[2]}",
                        _name(cells, name_col, first_col, last_col, candidate), number,
                        _cell(cells, role_col), _cell(cells, employer_col)))
    return rows, problems


def _cell(cells: list[str], index: int | None) -> str:
    return one_line(cells[index], 60) if index is not None and index < len(cells) else ""


def _name(cells: list[str], name_col: int | None, first: int | None, last: int | None,
          email_cell: str) -> str:
    """The person's name as text; an Outlook export may hold RFC 2047 encoded words."""
    def cell(i: int | None) -> str:
        return decode_words(cells[i].strip()) if i is not None and i < len(cells) else ""

    if cell(name_col):
        return one_line(cell(name_col), 100)
    joined = " ".join(x for x in (cell(first), cell(last)) if x)
    if joined:
        return one_line(joined, 100)
    others = [decode_words(c.strip()) for c in cells
              if c.strip() and c != email_cell and "@" not in c]
    return one_line(" ".join(others[:2]), 100)

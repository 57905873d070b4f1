"""The SQL the shell writes, said again for PostgreSQL.

Every module of the shell writes its statements once, in the SQLite
dialect with ``?`` or ``:name`` parameters; the PostgreSQL store hands each
statement through ``to_postgres`` before asyncpg sees it. Keeping one text
per statement, instead of two, is what keeps the two backends from drifting
apart: a statement that this module cannot say for PostgreSQL fails in the
parametrised store tests, not in the field.

What is translated, and why each rule is safe:

* ``?`` and ``:name`` become ``$1 …`` (names keep one number each), outside
  string literals and quoted identifiers only.
* ``seal(?)`` and ``unseal(column) [AS name]``: the key never goes to the
  database server, so sealing is done in Python by the store. The
  translation says which parameter to seal and which result column to
  unseal (``Translated.sealed``, ``Translated.unsealed``).
* ``INSERT OR IGNORE`` is ``INSERT … ON CONFLICT DO NOTHING``.
* An ``INSERT`` into a table with an ``id`` column gets ``RETURNING id``, so
  the cursor's ``lastrowid`` means what it means in SQLite.
* ``LIKE`` is ``ILIKE``: SQLite's LIKE ignores ASCII case, PostgreSQL's does
  not, and the shell relies on the former (address searches).
* ``instr(a, b)`` is ``strpos(a, b)`` (same arguments, same 1-based answer).
* ``WHERE +column`` (SQLite's hint to leave an index alone) loses its
  unary plus, which changes no value.
* ``?NNN`` (SQLite's numbered parameter) is ``$NNN``; ``x IS ?`` and ``x IS
  NOT ?`` (SQLite compares any two values so) are ``IS [NOT] DISTINCT FROM``.

Nothing here does I/O; it is tested by itself (tests/store/test_dialect.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

# Tables whose rows have an INTEGER PRIMARY KEY "id" (migrations.py).
ID_TABLES = frozenset({
    "inbox", "members", "consent_log", "reply_log", "outgoing", "deliveries", "posts",
    "notice_log", "archive",
})
# NOTIFY channel payloads: an insert into these wakes the daemons listening.
NOTIFY_TABLES = {"deliveries": "deliveries", "inbox": "inbox"}

_SEALED_MARK = "\x00"
_SEAL = re.compile(r"\bseal\(\s*(\?|:\w+)\s*\)", re.IGNORECASE)
_UNSEAL = re.compile(
    r"\b(unseal_text|unseal)\(\s*([\w.]+)\s*\)(?:\s+AS\s+(\w+))?", re.IGNORECASE)
_INSERT = re.compile(r"^\s*INSERT\s+(OR\s+IGNORE\s+)?INTO\s+(\w+)", re.IGNORECASE)
_UPDATE = re.compile(r"^\s*UPDATE\s+(\w+)", re.IGNORECASE)
_RETURNING = re.compile(r"\bRETURNING\b", re.IGNORECASE)
_PENDING = re.compile(r"\bSET\s+state\s*=\s*'pending'", re.IGNORECASE)
_INSERT_SELECT = re.compile(r"\)\s*SELECT\b", re.IGNORECASE)
_ROWS = re.compile(r"^\s*(SELECT|WITH|VALUES)\b", re.IGNORECASE)
_WORDS = (
    # "WHERE +list_address = ?": SQLite's way to keep the planner off an index; the
    # unary plus changes no value, and PostgreSQL has none for text.
    (re.compile(r"\b(WHERE|AND|OR|ON)\s+\+(?=[A-Za-z_])", re.IGNORECASE), r"\1 "),
    # SQLite's IS / IS NOT compare any two values; PostgreSQL says it this way.
    (re.compile(r"\bIS\s+NOT\s+(?=[$?:])", re.IGNORECASE), "IS DISTINCT FROM "),
    (re.compile(r"\bIS\s+(?=[$?:])", re.IGNORECASE), "IS NOT DISTINCT FROM "),
    (re.compile(r"\bNOT\s+LIKE\b", re.IGNORECASE), "NOT ILIKE"),
    (re.compile(r"(?<!NOT )\bLIKE\b", re.IGNORECASE), "ILIKE"),
    (re.compile(r"\binstr\(", re.IGNORECASE), "strpos("),
)


@dataclass(frozen=True)
class Translated:
    """One statement as PostgreSQL takes it, and what the store does around it."""

    sql: str
    names: tuple[str, ...] | None      # the order of :name parameters, or None for ?
    count: int                         # how many parameters the statement takes
    sealed: frozenset[int]             # 0-based positions of parameters to seal
    unsealed: tuple[tuple[str, str], ...]  # (result column, "bytes" | "text")
    returns_rows: bool                 # fetch (SELECT, RETURNING) or execute
    returning: bool                    # rows are the changed ones: rowcount is their number
    returning_id: bool                 # RETURNING id was added: lastrowid
    notify: str | None                 # payload to NOTIFY on commit


@lru_cache(maxsize=2048)
def to_postgres(sql: str) -> Translated:
    """Translate one statement of the SQLite dialect; see the module docstring."""
    text = _SEAL.sub(lambda m: m.group(1) + _SEALED_MARK, sql)
    unsealed: list[tuple[str, str]] = []

    def unseal(m: re.Match[str]) -> str:
        kind = "text" if m.group(1).lower() == "unseal_text" else "bytes"
        alias = m.group(3)
        if alias is None:
            alias = f'"{m.group(0)}"'   # the name SQLite gives an unnamed column
            unsealed.append((m.group(0), kind))
        else:
            unsealed.append((alias, kind))
        return f"{m.group(2)} AS {alias}"

    text = _UNSEAL.sub(unseal, text)
    text, names, count, sealed = _parameters(text)
    text = _outside_literals(text, _rewrite_words)
    insert = _INSERT.match(text)
    returning_id = False
    notify = None
    if insert is not None:
        table = insert.group(2).lower()
        notify = NOTIFY_TABLES.get(table)
        if insert.group(1):
            text = _INSERT.sub(lambda m: f"INSERT INTO {m.group(2)}", text, count=1)
            text = _before_returning(text, " ON CONFLICT DO NOTHING")
        many = _INSERT_SELECT.search(text) is not None   # lastrowid means nothing there
        if table in ID_TABLES and not many and not _RETURNING.search(text):
            text = text.rstrip().rstrip(";") + " RETURNING id"
            returning_id = True
    else:
        update = _UPDATE.match(text)
        if (update is not None and update.group(1).lower() == "deliveries"
                and _PENDING.search(text)):
            notify = "deliveries"   # claims given back: sendable now (not every outcome)
    returning = _RETURNING.search(text) is not None
    returns_rows = returning or _ROWS.match(text) is not None
    return Translated(text, names, count, frozenset(sealed), tuple(unsealed),
                      returns_rows, returning, returning_id, notify)


def _parameters(sql: str) -> tuple[str, tuple[str, ...] | None, int, set[int]]:
    """Number the ``?`` and ``:name`` parameters outside literals."""
    out: list[str] = []
    names: list[str] = []
    sealed: set[int] = set()
    positional = 0
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        if c in "'\"":
            end = _closing(sql, i)
            out.append(sql[i:end])
            i = end
            continue
        if c == "?":
            j = i + 1
            while j < n and sql[j].isdigit():
                j += 1
            if j > i + 1:                  # ?NNN: SQLite's numbered parameter
                number = int(sql[i + 1:j])
                positional = max(positional, number)
            else:
                positional += 1
                number = positional
            i = j
        elif c == ":" and i + 1 < n and (sql[i + 1].isalpha() or sql[i + 1] == "_") \
                and (i == 0 or sql[i - 1] != ":"):
            j = i + 1
            while j < n and (sql[j].isalnum() or sql[j] == "_"):
                j += 1
            name = sql[i + 1:j]
            if name not in names:
                names.append(name)
            number = names.index(name) + 1
            i = j
        else:
            out.append(c)
            i += 1
            continue
        out.append(f"${number}")
        if i < n and sql[i] == _SEALED_MARK:
            sealed.add(number - 1)
            i += 1
    if names and positional:
        raise ValueError("a statement mixes ? and :name parameters")
    count = len(names) if names else positional
    return "".join(out), (tuple(names) if names else None), count, sealed


def _closing(sql: str, start: int) -> int:
    """The index just past the literal or quoted identifier opened at ``start``."""
    quote = sql[start]
    i = start + 1
    while i < len(sql):
        if sql[i] == quote:
            if i + 1 < len(sql) and sql[i + 1] == quote:   # '' inside a literal
                i += 2
                continue
            return i + 1
        i += 1
    return len(sql)


def _outside_literals(sql: str, rewrite: object) -> str:
    """Apply ``rewrite`` to the parts of ``sql`` that are not literals."""
    assert callable(rewrite)
    parts: list[str] = []
    i = start = 0
    while i < len(sql):
        if sql[i] in "'\"":
            parts.append(rewrite(sql[start:i]))
            end = _closing(sql, i)
            parts.append(sql[i:end])
            i = start = end
        else:
            i += 1
    parts.append(rewrite(sql[start:]))
    return "".join(parts)


def _rewrite_words(part: str) -> str:
    for pattern, replacement in _WORDS:
        part = pattern.sub(replacement, part)
    return part


def _before_returning(sql: str, clause: str) -> str:
    m = _RETURNING.search(sql)
    if m is None:
        return sql.rstrip().rstrip(";") + clause
    return sql[:m.start()].rstrip() + clause + " " + sql[m.start():]


def arguments(t: Translated, params: object) -> list[object]:
    """The parameters in asyncpg's order, from a sequence or a mapping."""
    if t.names is not None:
        if not isinstance(params, dict):
            raise TypeError("a statement with :name parameters needs a mapping")
        return [params[name] for name in t.names]
    values = list(params) if params is not None else []   # type: ignore[call-overload]
    if len(values) != t.count:
        raise ValueError(f"statement takes {t.count} parameters, {len(values)} given")
    return values


def status_count(status: str) -> int:
    """The row count in a command tag: ``UPDATE 3`` → 3, ``INSERT 0 1`` → 1."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else -1

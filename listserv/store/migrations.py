"""Ordered schema migrations. Append only: never edit a step that has shipped.

Each step is a file of SQL in ``steps/``: ``0014.sql`` in SQLite's dialect,
and ``0014.postgresql.sql`` beside it only where PostgreSQL must be told
something else (``migrations_pg`` says which and why). One numbered list,
so both backends always hold the same tables.

A database records the highest step applied in ``schema_version``; opening
it applies the missing steps in order, each in its own transaction, so a
database already in use keeps its rows when a later release adds tables.
"""

from __future__ import annotations

from importlib import resources

STEPS = resources.files("listserv.store") / "steps"


def _load(dialect: str = "") -> list[tuple[int, str]]:
    suffix = f".{dialect}.sql" if dialect else ".sql"
    found = []
    for entry in STEPS.iterdir():
        name = entry.name
        stem = name.removesuffix(suffix)
        if name.endswith(suffix) and stem.isdigit():
            found.append((int(stem), entry.read_text(encoding="utf-8")))
    return sorted(found)


MIGRATIONS: list[tuple[int, str]] = _load()
POSTGRESQL_STEPS: dict[int, str] = dict(_load("postgresql"))

"""``listserv store migrate-to URL``: an SQLite installation copied into PostgreSQL, counted.

The target is an *empty* PostgreSQL database that ``PgStore.connect`` has
just migrated to the code's schema; the source is the SQLite file at the
same schema version (the command line checks both, and that no daemon
holds data_dir, before it calls ``copy_all``). What is copied, and how:

* Every table the PostgreSQL schema has, except ``schema_version`` (the
  target's own migrations wrote it). The two lists of tables must be the
  same; a table on one side only is a bug in the migrations, and nothing is
  copied.
* Rows keep their ids, and the rowids SQLite keeps implicitly are copied
  into the columns PostgreSQL has for them (``tokens.rowid``, the
  desk's request number; ``archive_fts.rowid`` = ``archive.id``). Then every
  identity sequence is set to the column's maximum, so the next insert on
  PostgreSQL does not collide with a copied id.
* Sealed columns (``inbox.raw``, ``inbox.extension``, ``outgoing.raw``,
  ``archive.raw``) go as the bytes they are: both sides read them with the
  same ``mail.key``, so nothing is opened and sealed again. SQLite keeps
  the sealed extension in a TEXT column; a value that is text there (one
  written before sealing) becomes its UTF-8 bytes in PostgreSQL's BYTEA.
* Tables are written parents first (by their foreign keys), with ``COPY``
  (asyncpg's ``copy_records_to_table``), all in one transaction: a copy that
  fails half way leaves the target empty, and can be run again.

The counts of both sides are compared inside that transaction; a
difference rolls everything back.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from listserv.errors import StoreError
from listserv.store.database import Store

if TYPE_CHECKING:
    from listserv.store.postgres import PgStore

BATCH = 5000              # rows per COPY: bounded memory for a large archive
SKIPPED = frozenset({"schema_version"})
# SQLite keeps these implicitly; PostgreSQL has a column of that name.
IMPLICIT = frozenset({"rowid"})


@dataclass(frozen=True)
class Counted:
    """One table's rows in the source and, after the copy, in the target."""

    table: str
    source: int
    target: int


@dataclass(frozen=True)
class Column:
    name: str
    type: str              # PostgreSQL's name of the type: bigint, text, bytea, ...
    identity: bool         # an identity column: its sequence is set after the copy


def render(counted: Sequence[Counted]) -> str:
    """The counts as the operator reads them: one row per table, and the total."""
    width = max([len("table"), *(len(c.table) for c in counted)])
    lines = [f"{'table':<{width}}  {'sqlite':>8}  {'postgresql':>10}"]
    lines += [f"{c.table:<{width}}  {c.source:>8}  {c.target:>10}" for c in counted]
    total_source = sum(c.source for c in counted)
    total_target = sum(c.target for c in counted)
    lines.append(f"{'total':<{width}}  {total_source:>8}  {total_target:>10}")
    return "\n".join(lines)


def for_postgres(value: Any, pg_type: str) -> Any:
    """A value as SQLite gave it, as PostgreSQL's column takes it (see the docstring)."""
    if value is None:
        return None
    if pg_type == "bytea":
        return value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value
    if pg_type in ("bigint", "integer", "smallint"):
        return int(value)
    if pg_type == "double precision":
        return float(value)
    if pg_type == "text" and not isinstance(value, str):
        return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) \
            else str(value)
    return value


def order_by_references(tables: Sequence[str], references: Sequence[tuple[str, str]]
                        ) -> list[str]:
    """``tables`` with every referenced table before the tables that refer to it."""
    needs = {t: {parent for child, parent in references if child == t and parent != t}
             for t in tables}
    ordered: list[str] = []
    while len(ordered) < len(tables):
        ready = sorted(t for t in tables if t not in ordered and needs[t] <= set(ordered))
        if not ready:
            left = sorted(set(tables) - set(ordered))
            raise StoreError(f"foreign keys form a cycle among {left}")
        ordered.extend(ready)
    return ordered


async def _pg_tables(conn: Any) -> tuple[list[str], list[tuple[str, str]]]:
    tables = [r[0] for r in await conn.fetch(
        "SELECT table_name FROM information_schema.tables"
        " WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'")]
    references = [(r[0], r[1]) for r in await conn.fetch(
        "SELECT conrelid::regclass::text, confrelid::regclass::text FROM pg_constraint"
        " WHERE contype = 'f' AND connamespace = current_schema()::regnamespace")]
    return sorted(t for t in tables if t not in SKIPPED), references


async def _pg_columns(conn: Any, table: str) -> list[Column]:
    """The columns a row is written into (a generated column is computed, never copied)."""
    rows = await conn.fetch(
        "SELECT attname, format_type(atttypid, atttypmod), attidentity <> ''"
        " FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0"
        " AND NOT attisdropped AND attgenerated = '' ORDER BY attnum", table)
    return [Column(r[0], r[1], r[2]) for r in rows]


async def _sqlite_tables(source: Store) -> set[str]:
    rows = await source.fetchall(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
    names = {r[0] for r in rows}
    virtual = {r[0] for r in await source.fetchall(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND sql LIKE 'CREATE VIRTUAL%'")}
    # An FTS5 table keeps its index in shadow tables named after it: not data of ours.
    shadows = {n for n in names for v in virtual if n.startswith(v + "_")}
    return names - shadows - SKIPPED


async def _sqlite_columns(source: Store, table: str) -> set[str]:
    return {r[1] for r in await source.fetchall(f"PRAGMA table_info({table})")}


async def _count(source: Store, table: str) -> int:
    row = await source.fetchone(f"SELECT count(*) FROM {table}")
    return int(row[0]) if row else 0


async def copy_all(source: Store, target: PgStore, *,
                   progress: Callable[[str, int], None] | None = None) -> list[Counted]:
    """Copy every table of ``source`` into the empty ``target``; the counts, in copy order.

    ``StoreError`` (and nothing written) when the target has rows, when the
    two schemas do not hold the same tables and columns, or when a count
    differs after the copy.
    """
    async with target.connection() as conn:
        tables, references = await _pg_tables(conn)
        filled = [t for t in tables if await conn.fetchval(f"SELECT EXISTS (SELECT 1 FROM {t})")]
        if filled:
            raise StoreError(f"the target database is not empty ({', '.join(filled)} have rows):"
                             " migrate-to copies into an empty database only")
        theirs = await _sqlite_tables(source)
        if theirs != set(tables):
            raise StoreError("the two schemas differ (a bug in the migrations): only in SQLite"
                             f" {sorted(theirs - set(tables))}, only in PostgreSQL"
                             f" {sorted(set(tables) - theirs)}")
        counted = []
        async with conn.transaction():
            for table in order_by_references(tables, references):
                columns = await _pg_columns(conn, table)
                await _check_columns(source, table, columns)
                copied = await _copy_table(source, conn, table, columns)
                if progress is not None:
                    progress(table, copied)
                for column in columns:
                    if column.identity:
                        await conn.execute(
                            f"SELECT setval(pg_get_serial_sequence($1, $2),"
                            f" coalesce(max({column.name}), 1), max({column.name}) IS NOT NULL)"
                            f" FROM {table}", table, column.name)
                in_target = int(await conn.fetchval(f"SELECT count(*) FROM {table}"))
                counted.append(Counted(table, await _count(source, table), in_target))
            wrong = [c for c in counted if c.source != c.target]
            if wrong:
                raise StoreError("counts differ after the copy, nothing kept: " + ", ".join(
                    f"{c.table} {c.source} in SQLite, {c.target} in PostgreSQL" for c in wrong))
    return counted


async def _check_columns(source: Store, table: str, columns: Sequence[Column]) -> None:
    """Every column on one side is on the other (SQLite's implicit rowid counts)."""
    theirs = await _sqlite_columns(source, table)
    ours = {c.name for c in columns}
    missing = (ours - IMPLICIT) - theirs
    lost = theirs - ours
    if missing or lost:
        raise StoreError(f"{table}: the two schemas differ (a bug in the migrations): only in"
                         f" SQLite {sorted(lost)}, only in PostgreSQL {sorted(missing)}")


async def _copy_table(source: Store, conn: Any, table: str, columns: Sequence[Column]) -> int:
    names = [c.name for c in columns]
    types = [c.type for c in columns]
    copied = 0
    async with source.reader.execute(f"SELECT {', '.join(names)} FROM {table}") as cursor:
        while True:
            rows = await cursor.fetchmany(BATCH)
            if not rows:
                break
            records = [tuple(for_postgres(v, t) for v, t in zip(row, types, strict=True))
                       for row in rows]
            await conn.copy_records_to_table(table, records=records, columns=names)
            copied += len(records)
    return copied

"""The store: SQLite or PostgreSQL, one list of migrations, and the rows that cross it.

``database.Store`` owns the one write connection (WAL, ``synchronous =
FULL``, ``BEGIN IMMEDIATE`` per change); every state change elsewhere is a
function run inside one of its transactions. ``migrations`` is the schema
as an append-only list; ``rows`` the row types intake hands in and
handlers get out. ``postgres.PgStore`` is the same interface on
PostgreSQL, for several daemons on one database; ``dialect`` says the
shell's SQL (written once, for SQLite) again for it, and ``backends``
opens whichever ``[store] url`` names; ``copy`` moves an SQLite
installation into PostgreSQL (``listserv store migrate-to``).

Core: rows, migrations, migrations_pg, seal, dialect
Shell: database, postgres, pg_connection, backends, keys, replay, copy
May import: clock, config, errors, mail
"""

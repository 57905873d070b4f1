"""The store: one SQLite file, its ordered migrations, and the rows that cross it.

``database.Store`` owns the one write connection (WAL, ``synchronous =
FULL``, ``BEGIN IMMEDIATE`` per change); every state change elsewhere is a
function run inside one of its transactions. ``migrations`` is the schema
as an append-only list; ``rows`` the row types intake hands in and
handlers get out. A second backend (PostgreSQL) goes here, beside
``database``.

Core: rows, migrations, seal
Shell: database, keys, replay
May import: clock, errors, mail
"""

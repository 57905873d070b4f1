"""The shell's SQL said again for PostgreSQL (listserv.store.dialect), without a server."""

from __future__ import annotations

import pytest

from listserv.store.dialect import arguments, status_count, to_postgres


def test_positional_parameters_are_numbered_outside_literals() -> None:
    t = to_postgres("SELECT id FROM inbox WHERE state = '?' AND mail_from = ? AND rcpt = ?")
    assert t.sql == "SELECT id FROM inbox WHERE state = '?' AND mail_from = $1 AND rcpt = $2"
    assert t.count == 2 and t.names is None and t.returns_rows


def test_named_parameters_keep_one_number_each() -> None:
    t = to_postgres("UPDATE deliveries SET updated_at = :now WHERE next_attempt <= :now"
                    " AND id = :id AND note = ':not_a_name'")
    assert t.sql == ("UPDATE deliveries SET updated_at = $1 WHERE next_attempt <= $1"
                     " AND id = $2 AND note = ':not_a_name'")
    assert arguments(t, {"id": 7, "now": "x"}) == ["x", 7]
    with pytest.raises(TypeError):
        arguments(t, ("x", 7))


def test_wrong_parameter_count_is_refused() -> None:
    with pytest.raises(ValueError):
        arguments(to_postgres("SELECT ? + ?"), (1,))


def test_seal_and_unseal_move_to_python() -> None:
    t = to_postgres("INSERT INTO outgoing (kind, raw) VALUES (?, seal(?))")
    assert t.sql == "INSERT INTO outgoing (kind, raw) VALUES ($1, $2) RETURNING id"
    assert t.sealed == {1} and t.returning_id and t.returns_rows
    t = to_postgres("SELECT id, unseal(raw) AS raw, unseal_text(extension) AS ext FROM inbox")
    assert t.sql == "SELECT id, raw AS raw, extension AS ext FROM inbox"
    assert t.unsealed == (("raw", "bytes"), ("ext", "text"))
    t = to_postgres("SELECT unseal(raw) FROM archive WHERE id = ?")
    assert t.sql == 'SELECT raw AS "unseal(raw)" FROM archive WHERE id = $1'
    assert t.unsealed == (("unseal(raw)", "bytes"),)


def test_insert_or_ignore_is_on_conflict_do_nothing() -> None:
    t = to_postgres("INSERT OR IGNORE INTO members (address) VALUES (?)")
    assert t.sql == ("INSERT INTO members (address) VALUES ($1) ON CONFLICT DO NOTHING"
                     " RETURNING id")
    t = to_postgres("INSERT OR IGNORE INTO dkim_seen (kind, value) VALUES (?, ?) RETURNING kind")
    assert t.sql == ("INSERT INTO dkim_seen (kind, value) VALUES ($1, $2)"
                     " ON CONFLICT DO NOTHING RETURNING kind")
    assert not t.returning_id


def test_tables_without_id_get_no_returning() -> None:
    t = to_postgres("INSERT INTO tokens (token_hash) VALUES (?)")
    assert "RETURNING" not in t.sql and not t.returns_rows


def test_like_ignores_case_as_in_sqlite_and_instr_is_strpos() -> None:
    t = to_postgres("SELECT 1 FROM members WHERE address LIKE ? OR instr(lower(x), ?) > 0"
                    " AND y NOT LIKE 'LIKE'")
    assert t.sql == ("SELECT 1 FROM members WHERE address ILIKE $1 OR strpos(lower(x), $2) > 0"
                     " AND y NOT ILIKE 'LIKE'")


def test_writes_to_the_queues_notify() -> None:
    assert to_postgres("INSERT INTO deliveries (rcpt) VALUES (?)").notify == "deliveries"
    assert to_postgres("INSERT INTO inbox (rcpt) VALUES (?)").notify == "inbox"
    assert to_postgres("UPDATE deliveries SET state = 'pending'").notify == "deliveries"
    assert to_postgres("UPDATE deliveries SET state = 'sent' WHERE id = ?").notify is None
    assert to_postgres("INSERT INTO posts (rule) VALUES (?)").notify is None


def test_status_count() -> None:
    assert status_count("UPDATE 3") == 3
    assert status_count("INSERT 0 1") == 1
    assert status_count("CREATE TABLE") == -1


def test_numbered_parameters_and_is_not() -> None:
    t = to_postgres("UPDATE members SET unsubscribe_token = ?1 WHERE list_address = ?2"
                    " AND address = ?3 AND unsubscribe_token IS NOT ?1")
    assert t.sql == ("UPDATE members SET unsubscribe_token = $1 WHERE list_address = $2"
                     " AND address = $3 AND unsubscribe_token IS DISTINCT FROM $1")
    assert t.count == 3
    assert to_postgres("SELECT 1 WHERE a IS ? AND b IS NULL").sql == (
        "SELECT 1 WHERE a IS NOT DISTINCT FROM $1 AND b IS NULL")


def test_sqlite_index_hints_lose_their_unary_plus() -> None:
    t = to_postgres("SELECT id FROM members WHERE +list_address = ? AND +status = 'x'"
                    " AND attempts + 1 > ?")
    assert t.sql == ("SELECT id FROM members WHERE list_address = $1 AND status = 'x'"
                     " AND attempts + 1 > $2")

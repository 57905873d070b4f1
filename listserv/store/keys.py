"""Files under data_dir that only the daemon's user may read, and the secret keys among them.

Everything listserv keeps at rest (the database with its WAL and shared
memory file, backups, the Maildir outbox, key files) is personal data or a
secret, so it is created ``0600`` (files) and ``0700`` (directories)
whatever the process umask says: the permission is passed to ``open`` and
``mkdir`` and set again with ``chmod``, because the umask can only take
bits away.

The keys are kept in files beside the database, never in it: a copy of the
database (or a backup) alone then does not let anyone forge a VERP address
(``verp.key``), read the mail stored in it (``mail.key``, see
``store.seal``) or compute a member's one-click link (``unsubscribe.key``).
Each is 32 random bytes, made on first use; two processes racing to make
one both end up with the one that was written first (``O_EXCL``).
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

FILE_MODE = 0o600
DIR_MODE = 0o700

VERP_KEY = "verp.key"
MAIL_KEY = "mail.key"
UNSUBSCRIBE_KEY = "unsubscribe.key"


def private_dir(path: Path) -> Path:
    """``path`` (and missing parents) as a directory only the owner can enter."""
    path.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    with contextlib.suppress(OSError):  # not ours (a shared parent): leave it as it is
        if path.stat().st_mode & 0o777 != DIR_MODE:
            path.chmod(DIR_MODE)
    return path


def private_file(path: Path) -> Path:
    """Make sure ``path`` exists as an owner-only file (empty if it was missing).

    SQLite creates the ``-wal`` and ``-shm`` files with the mode of the
    database file, so creating the database this way first covers all three.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, FILE_MODE)
    os.close(fd)
    with contextlib.suppress(PermissionError):  # a file we may write but do not own
        path.chmod(FILE_MODE)
    return path


def tighten(path: Path) -> None:
    """Set an existing file to 0600 (a file written before this rule, or by SQLite)."""
    with contextlib.suppress(FileNotFoundError, PermissionError):
        if path.stat().st_mode & 0o777 != FILE_MODE:
            path.chmod(FILE_MODE)


def load_secret(path: Path) -> bytes:
    """The key in ``path``, made (32 random bytes, mode 0600) on first use."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        data = b""
    if data:
        tighten(path)
        return data
    private_dir(path.parent)
    secret = secrets.token_bytes(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return path.read_bytes()
    with os.fdopen(fd, "wb") as fh:
        fh.write(secret)
        fh.flush()
        os.fsync(fh.fileno())
    path.chmod(FILE_MODE)
    return secret


def key(data_dir: Path, name: str) -> bytes:
    """One of the named keys of an installation (``VERP_KEY``, ``MAIL_KEY``, ...)."""
    return load_secret(data_dir / name)

"""Before the daemon touches anything: can it make its data_dir, is it alone, are its ports free?

Each check ends in one line an operator can act on, never a traceback:

* ``data_dir_problem`` says why ``[server] data_dir`` cannot be made or
  written (a file in the way, no permission); ``listserv check`` reports it
  without creating anything, ``init`` and ``serve`` before they create it.
* ``DataDirLock`` is an exclusive ``flock`` on ``<data_dir>/listserv.lock``,
  held for the life of the daemon; the file names the holder's PID, so a
  second ``serve`` on the same data_dir names the first. The kernel drops
  the lock when the process dies, however it dies, so a stale lock file
  never stops a restart. Only ``serve`` takes it: the CLI commands read, or
  write through SQLite's own locking, and may run beside the daemon.
* ``port_problem`` tries to bind the address the daemon is about to listen
  on, so that a port in use is found before the workers start.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import socket
from pathlib import Path

from listserv.config import Config
from listserv.errors import ConfigError, ListservError

LOCK_NAME = "listserv.lock"


class CannotStart(ListservError):
    """The daemon cannot start (port taken, data_dir in use): one line, exit status 1."""


def data_dir_problem(cfg: Config) -> str | None:
    """Why ``data_dir`` cannot be made or written, or None when it can (nothing is created)."""
    target = cfg.server.data_dir
    if target.exists():
        if not target.is_dir():
            return f"{target} is a file, not a directory"
        if not os.access(target, os.W_OK | os.X_OK):
            return f"{target} is not writable for this user"
        return None
    parent = target.parent
    while not parent.exists():          # the nearest part of the path that exists
        parent = parent.parent
    if not parent.is_dir():
        return f"cannot create {target}: {parent} is a file, not a directory"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"cannot create {target}: {parent} is not writable for this user"
    return None


def make_data_dir(cfg: Config) -> Path:
    """Create ``data_dir`` if needed; a fault is a ``ConfigError`` naming the key."""
    where = f"{cfg.path}: [server] data_dir"
    problem = data_dir_problem(cfg)
    if problem is not None:
        raise ConfigError(f"{where}: {problem}")
    try:
        cfg.server.data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a race, a full disk, a read-only file system
        raise ConfigError(f"{where}: cannot create {cfg.server.data_dir}: {exc.strerror}"
                          ) from None
    return cfg.server.data_dir


class DataDirLock:
    """An exclusive lock on data_dir for as long as the daemon runs."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise ``CannotStart`` naming the PID that holds it."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        os.fchmod(fd, 0o600)   # like every file in data_dir, whatever the umask
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise CannotStart(
                f"another listserv (PID {holder}) is already serving {self.path.parent};"
                " stop it first, or give this one its own [server] data_dir") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        self._fd = fd

    def release(self) -> None:
        """Give the lock up; the file stays (removing it would race a new holder)."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)      # closing the descriptor drops the flock
            self._fd = None


def port_problem(host: str, port: int) -> str | None:
    """Why ``host:port`` cannot be listened on right now, or None (port 0 always can)."""
    if port == 0:
        return None
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        return f"cannot resolve {host!r}: {exc.strerror}"
    for family, kind, proto, _, address in infos:
        with socket.socket(family, kind, proto) as probe:
            # As asyncio's create_server does, so a port in TIME_WAIT is not "in use".
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                return bind_problem(exc)
    return None


def bind_problem(exc: OSError) -> str:
    """The words for a failed bind, with what an operator does about it."""
    if exc.errno == errno.EADDRINUSE:
        return "address already in use (another program listens there)"
    if exc.errno == errno.EACCES:
        return "permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE)"
    if exc.errno == errno.EADDRNOTAVAIL:
        return "this machine has no such address"
    return exc.strerror or str(exc)


def cannot_listen(cfg: Config, what: str, host: str, port: int, problem: str) -> CannotStart:
    """The one line for a port the daemon cannot have: host, port, and what to do."""
    table = "[web]" if what == "web" else "[server]"
    return CannotStart(f"cannot listen on {host}:{port} ({what}): {problem};"
                       f" stop the program on that port or choose another {table} port"
                       f" in {cfg.path}")

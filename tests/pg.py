"""A throwaway PostgreSQL server for the tests, from Debian's ``postgresql`` package.

The store's tests run against a real server, not a mock: ``initdb`` into a
fresh temporary directory, ``pg_ctl start`` with a unix socket in that
directory and no TCP listener at all, ``pg_ctl stop -m immediate`` at the
end. ``tests/conftest.py`` wraps this in the fixtures ``pg_server`` (one
cluster per test session) and ``pg_url`` (one empty database per test).

Choices, written down because the issue is silent on them:

- ``fsync = off``: the cluster is thrown away after the session, so a
  crash of the machine cannot lose anything we care about, and fsync would
  only slow every commit on a machine shared with other test runs.
  ``synchronous_commit`` stays at its default ``on``: that is the setting
  the backend's "250 only after the commit" relies on, and the tests see it
  as production does. (fsync=off makes a commit not survive a power cut;
  it does not change what a commit means to the client.)
- Authentication ``trust`` over the socket for everyone except the role
  ``SECRET_ROLE``, which must give its password (scram-sha-256), so that a
  test can prove the backend reads ``password_file`` or ``PGPASSWORD``.
  Nothing but the test process can reach the socket: its directory is
  ``0750``, owned by the server's user and the test process's group (the
  socket file itself is 0777, as PostgreSQL's default: the server cannot
  give it our group).
- The databases belong to ``OWNER_ROLE`` (``listserv``), a role without
  superuser rights, as in deploy/postgresql/README.md: a backend that
  needs more than owning its database fails here, not at the operator's.
- Encoding UTF8 with the C locale: byte order, as SQLite compares text.
- As root (CI), ``initdb`` refuses to run, so ``initdb`` and ``pg_ctl``
  run as the ``postgres`` system user (``runuser -u postgres --``), which
  owns the cluster's directories. Clients (``psql``, asyncpg) run as the
  test process and connect through the socket.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

OWNER_ROLE = "listserv"          # owns each test database, no superuser rights
SECRET_ROLE = "listserv_secret"  # the one role that must authenticate with a password
SUPERUSER = "postgres"           # the bootstrap superuser (initdb -U)
PORT = 5432                      # only names the socket file: .s.PGSQL.5432, no TCP
SERVER_USER = "postgres"         # the system user that runs the server when we are root
START_TIMEOUT = 60.0             # seconds for the server to accept connections
REQUIRED = ("initdb", "pg_ctl", "postgres", "psql")

SETTINGS = """
# tests/pg.py: a throwaway cluster for the test session.
listen_addresses = ''
unix_socket_directories = '{socket_dir}'
unix_socket_permissions = 0777       # the directory (0750) is the gate
port = {port}
fsync = off
max_connections = 200
logging_collector = off
log_min_messages = warning
"""

HBA = f"""
# tests/pg.py: unix socket only; one password role to prove password handling.
local all {SECRET_ROLE} scram-sha-256
local all all trust
"""


class PgStartError(RuntimeError):
    """The binaries are there but the cluster did not come up: a real fault, not a skip."""


def find_bin_dir() -> Path | None:
    """The directory with initdb, pg_ctl, postgres and psql, or None where they are absent.

    Debian keeps the server binaries out of PATH, in /usr/lib/postgresql/<major>/bin
    (the newest major wins); a PATH entry (a symlink to them, or a non-Debian
    install) is taken when that directory does not exist.
    """
    def version(path: Path) -> tuple[int, ...]:
        return tuple(int(part) for part in re.findall(r"\d+", path.parent.name))

    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=version, reverse=True)
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    for directory in candidates:
        if all((directory / name).is_file() for name in REQUIRED):
            return directory
    return None


def asyncpg_missing() -> str | None:
    """Why asyncpg cannot be imported, or None when it can."""
    try:
        import asyncpg  # noqa: F401
    except ImportError as error:
        return str(error)
    return None


@dataclass
class PgServer:
    """One running cluster: where its socket is, and how to reach it."""

    bin_dir: Path
    base: Path                      # the temporary directory holding everything below
    as_user: str | None = None      # run server commands as this system user (we are root)
    secret_password: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    _numbers: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def data_dir(self) -> Path:
        return self.base / "data"

    @property
    def socket_dir(self) -> Path:
        return self.base / "socket"

    @property
    def log_file(self) -> Path:
        return self.base / "log" / "postgresql.log"

    def url(self, database: str, user: str = OWNER_ROLE) -> str:
        """A URL libpq and asyncpg both accept: the socket directory as ``host``."""
        return f"postgresql://{user}@/{database}?host={self.socket_dir}"

    @property
    def admin_url(self) -> str:
        """The superuser's URL (maintenance database ``postgres``), for tests that inspect."""
        return self.url("postgres", SUPERUSER)

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_file.read_text(encoding="utf-8", errors="replace")
        except OSError as error:
            return f"(no server log: {error})"
        return "\n".join(text.splitlines()[-lines:])

    # -- running the server -------------------------------------------------------

    def _server_command(self, *argv: str | Path, timeout: float = START_TIMEOUT
                        ) -> subprocess.CompletedProcess[str]:
        """Run a server-side binary (initdb, pg_ctl) as the cluster's owner."""
        command = [str(part) for part in argv]
        if self.as_user is not None:
            command = ["runuser", "-u", self.as_user, "--", *command]
        return subprocess.run(command, cwd=self.base, capture_output=True, text=True,
                              timeout=timeout, env=_clean_environment(), check=False)

    def _own(self, *paths: Path) -> None:
        """Hand the directories to the server's user; our group keeps entry to them."""
        if self.as_user is None:
            return
        entry = pwd.getpwnam(self.as_user)
        for path in paths:
            os.chown(path, entry.pw_uid, os.getegid())

    def start(self) -> None:
        """initdb, configure, pg_ctl start, wait until it answers; PgStartError otherwise."""
        self.base.chmod(0o755)  # the server's user must enter the base (mkdtemp made it 0700)
        for directory, mode in ((self.data_dir, 0o700), (self.socket_dir, 0o750),
                                (self.log_file.parent, 0o750)):
            directory.mkdir(mode=mode)
            directory.chmod(mode)
        self._own(self.data_dir, self.socket_dir, self.log_file.parent)
        done = self._server_command(
            self.bin_dir / "initdb", "-D", self.data_dir, "-U", SUPERUSER, "--auth=trust",
            "--encoding=UTF8", "--no-locale", "--no-sync", "--no-instructions")
        if done.returncode != 0:
            raise PgStartError(f"initdb failed ({done.returncode}):\n{done.stdout}{done.stderr}")
        with (self.data_dir / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write(SETTINGS.format(socket_dir=self.socket_dir, port=PORT))
        (self.data_dir / "pg_hba.conf").write_text(HBA, encoding="utf-8")
        done = self._server_command(
            self.bin_dir / "pg_ctl", "-D", self.data_dir, "-l", self.log_file,
            "-w", "-t", str(int(START_TIMEOUT)), "start")
        if done.returncode != 0:
            raise PgStartError(f"pg_ctl start failed ({done.returncode}): "
                               f"{done.stdout}{done.stderr}\n--- server log ---\n"
                               f"{self.log_tail()}")
        self._wait_ready()
        self.psql(f"CREATE ROLE {OWNER_ROLE} LOGIN",
                  f"CREATE ROLE {SECRET_ROLE} LOGIN PASSWORD '{self.secret_password}'")

    def _wait_ready(self) -> None:
        """pg_ctl -w has waited already; confirm that a client gets in, within the timeout."""
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            done = self.psql("SELECT 1", check=False)
            if done.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise PgStartError(f"server not accepting connections after {START_TIMEOUT}s: "
                                   f"{done.stderr}\n--- server log ---\n{self.log_tail()}")
            time.sleep(0.1)

    def stop(self) -> None:
        """Stop at once (nothing in it is kept), then remove the directory."""
        if self.data_dir.exists():
            done = self._server_command(self.bin_dir / "pg_ctl", "-D", self.data_dir,
                                        "-m", "immediate", "-w", "stop", timeout=30)
            if done.returncode != 0:
                self._kill_postmaster()
        shutil.rmtree(self.base, ignore_errors=True)

    def _kill_postmaster(self) -> None:
        """The last resort when pg_ctl could not stop it: SIGKILL the postmaster by its pid file."""
        with contextlib.suppress(OSError, ValueError, IndexError):
            pid = int((self.data_dir / "postmaster.pid").read_text().splitlines()[0])
            os.kill(pid, signal.SIGKILL)

    # -- clients ------------------------------------------------------------------

    def psql(self, *statements: str, database: str = "postgres", check: bool = True
             ) -> subprocess.CompletedProcess[str]:
        """Run SQL as the superuser through the socket; each statement in its own transaction."""
        command: list[str] = [str(self.bin_dir / "psql"), "-X", "-q", "-A", "-t",
                              "-v", "ON_ERROR_STOP=1", "-h", str(self.socket_dir),
                              "-p", str(PORT), "-U", SUPERUSER, "-d", database]
        for statement in statements:
            command += ["-c", statement]
        done = subprocess.run(command, capture_output=True, text=True, timeout=START_TIMEOUT,
                              env=_clean_environment(), check=False)
        if check and done.returncode != 0:
            raise PgStartError(f"psql {statements!r} failed: {done.stderr}\n"
                               f"--- server log ---\n{self.log_tail()}")
        return done

    def create_database(self) -> str:
        """A new empty database ``test_<n>`` owned by OWNER_ROLE; its name."""
        name = f"test_{next(self._numbers)}"
        self.psql(f"CREATE DATABASE {name} OWNER {OWNER_ROLE}")
        return name

    def drop_database(self, name: str) -> None:
        """Drop it even if a test left connections open (WITH FORCE ends them)."""
        self.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _clean_environment() -> dict[str, str]:
    """Our environment without PG* variables: a PGHOST or PGPORT must not redirect us."""
    return {key: value for key, value in os.environ.items() if not key.startswith("PG")}


def server_user() -> str | None:
    """The system user to run the server as: ``postgres`` when we are root, else ourselves."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SERVER_USER)
    except KeyError:
        raise PgStartError(f"running as root and there is no '{SERVER_USER}' system user to "
                           "run initdb as (the postgresql package creates it)") from None
    if shutil.which("runuser") is None:
        raise PgStartError("running as root and 'runuser' (util-linux) is missing")
    return SERVER_USER


def start_server(bin_dir: Path) -> PgServer:
    """Make the temporary directory and start a cluster in it; the caller stops it.

    Not under pytest's tmp_path: its parents are 0700, and the server's user
    must be able to enter the directory.
    """
    base = Path(tempfile.mkdtemp(prefix="listserv-pg-"))
    server = PgServer(bin_dir=bin_dir, base=base)
    try:
        server.as_user = server_user()
        server.start()
    except BaseException:
        server.stop()
        raise
    return server

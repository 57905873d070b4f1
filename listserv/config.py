"""The one TOML file, read into frozen dataclasses and checked at start.

Every fault is reported as one line naming the file, the table and the key
(``config/listserv.toml: [lists.0] moderators: ...``) so that an operator
never has to read a traceback. The loader is driven by the dataclass fields
themselves: a field's type says what TOML type it takes, ``choices`` in its
metadata says which strings are allowed. Unknown keys are refused, because a
misspelt key that is silently ignored is worse than a refusal.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from email_validator import EmailNotValidError, validate_email

from listserv.errors import ConfigError

DEFAULT_PATH = Path("config/listserv.toml")


def _choice(*values: str, default: str) -> Any:
    return field(default=default, metadata={"choices": values})


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8025
    protocol: str = _choice("smtp", "lmtp", default="smtp")
    max_message_bytes: int = 10 * 1024 * 1024
    data_dir: Path = Path("var")
    tls_cert: str = ""
    tls_key: str = ""
    timezone: str = "Europe/Berlin"
    # Extensions of the contract (DESIGN §3), with defaults that suit a small list:
    hostname: str = ""             # name in the greeting and Received header; "" = this host's FQDN
    max_connections: int = 100     # concurrent SMTP sessions; beyond that 421
    max_connections_per_peer: int = 20  # of those from one IP address (0 = no limit); 20 is
                                        # Postfix's destination concurrency, so a Postfix in
                                        # front never meets it
    timeout: int = 300             # seconds a session may stay idle (RFC 5321 4.5.3.2)
    max_recipients: int = 100      # RCPT commands per transaction; beyond that 452
    shutdown_grace: int = 10       # seconds given to transactions in flight at SIGTERM
    worker_timeout: int = 20       # seconds the worker may spend reading one mail (inbox/worker)
    worker_memory_mb: int = 1024   # address space of the worker process


@dataclass(frozen=True)
class DeliveryConfig:
    transport: str = _choice("maildir", "smtp", default="maildir")
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    max_recipients_per_transaction: int = 50
    smtp_starttls: str = _choice("off", "opportunistic", "required", default="opportunistic")
    smtp_username: str = ""
    smtp_password_file: str = ""
    connections: int = 4
    verp: bool = True
    personalize: bool = False


@dataclass(frozen=True)
class DkimConfig:
    domain: str
    selector: str
    private_key: Path


@dataclass(frozen=True)
class WebConfig:
    base_url: str
    host: str = "127.0.0.1"
    port: int = 8080
    # Extensions (docs/web.md): the path prefix the reverse proxy forwards unchanged
    # ("/listen" for https://stadt.example/listen/...; "" when it forwards the root),
    # and how long a mailed login link and the session it opens stay valid.
    mount: str = ""
    login_link_minutes: int = 30
    session_minutes: int = 60


@dataclass(frozen=True)
class ListConfig:
    address: str
    display_name: str
    moderators: tuple[str, ...]
    language: str = _choice("de", "en", default="de")
    subscription_policy: str = _choice(
        "open", "confirm", "approve", "confirm_then_approve", default="confirm_then_approve"
    )
    post_policy: str = _choice(
        "moderate_all", "moderate_non_members", "members_only", "open", default="moderate_all"
    )
    subject_prefix: str = ""
    dmarc_mitigation: str = _choice("when_needed", "always", "never", default="when_needed")
    hold_days: int = 14
    token_days: int = 7
    replies_per_address_per_day: int = 5
    bounce_threshold: int = 5
    retention_days: int = 30
    texts_dir: str = ""   # per-list overrides of any mail text: <texts_dir>/de/welcome.txt
    # Extensions (issue 12): mail to one moderator per day, in total and of one kind
    # (held_notice, approve_member, owner_forward, ...); beyond that one summary an hour.
    notices_per_day: int = 60
    notices_per_kind_per_day: int = 20
    consent_text: str = ""   # the join form's consent checkbox; "" = the standard wording
    # The members' archive (issue 14): every published post kept unless "off", for
    # archive_days (0 = forever, apart from retention_days); what erasing a poster
    # does to her archived posts: "anonymise" (the post stays, without her) or "delete".
    archive: str = _choice("members", "off", default="members")
    archive_days: int = 0
    archive_erasure: str = _choice("anonymise", "delete", default="anonymise")

    @property
    def local_part(self) -> str:
        return self.address.rsplit("@", 1)[0]

    @property
    def domain(self) -> str:
        return self.address.rsplit("@", 1)[1]

    @property
    def list_id(self) -> str:
        """RFC 2919 list identifier: the address with ``@`` turned into a dot."""
        return f"{self.local_part}.{self.domain}"

    def sub_address(self, suffix: str) -> str:
        """``sub_address("request")`` is ``L-request@D``."""
        return f"{self.local_part}-{suffix}@{self.domain}"

    @property
    def request_address(self) -> str:
        return self.sub_address("request")

    @property
    def owner_address(self) -> str:
        return self.sub_address("owner")

    @property
    def bounces_address(self) -> str:
        return self.sub_address("bounces")


@dataclass(frozen=True)
class StoreConfig:
    """``url``: "" (SQLite in data_dir), ``sqlite:///path`` or ``postgresql://user@host/db``;
    the password only from ``password_file`` or libpq's PGPASSWORD / ~/.pgpass."""

    url: str = ""
    password_file: str = ""
    pool_size: int = 8           # connections per daemon (PostgreSQL)
    lease_seconds: int = 300     # a dead daemon's claims are taken over after this

    @property
    def is_postgresql(self) -> bool:
        return self.url.startswith(("postgresql://", "postgres://"))


@dataclass(frozen=True)
class Config:
    path: Path
    server: ServerConfig
    delivery: DeliveryConfig
    dkim: DkimConfig | None
    web: WebConfig | None
    lists: tuple[ListConfig, ...]
    store: StoreConfig = StoreConfig()

    @property
    def database_path(self) -> Path:
        """The SQLite file (``[store] url`` = sqlite:///…, or data_dir/listserv.sqlite3)."""
        if self.store.url.startswith("sqlite:///"):
            return Path(self.store.url.removeprefix("sqlite:///")).absolute()
        return self.server.data_dir / "listserv.sqlite3"

    @property
    def database_name(self) -> str:
        """The database as an operator reads it in a message."""
        return self.store.url if self.store.is_postgresql else str(self.database_path)

    def find_list(self, address: str) -> ListConfig | None:
        address = address.lower()
        for mlist in self.lists:
            if mlist.address == address:
                return mlist
        return None


# -- loading -----------------------------------------------------------------


def config_path(cli_value: str | None) -> Path:
    """``--config``, else ``$LISTSERV_CONFIG``, else ``config/listserv.toml``."""
    if cli_value:
        return Path(cli_value)
    env = os.environ.get("LISTSERV_CONFIG")
    return Path(env) if env else DEFAULT_PATH


def load(path: Path) -> Config:
    """Read and check the whole file; raise ``ConfigError`` with one clear line."""
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse(data, path)


def parse(data: dict[str, Any], path: Path) -> Config:
    known = {"server", "delivery", "dkim", "web", "store", "lists"}
    for key in data:
        if key not in known:
            raise ConfigError(f"{path}: unknown table or key {key!r}"
                              f" (known: {', '.join(sorted(known))})")

    def where(table: str) -> str:
        return f"{path}: [{table}]"

    server = _build(ServerConfig, _table(data, "server", path), where("server"))
    server = dataclasses.replace(
        server,
        data_dir=server.data_dir.absolute(),
        hostname=server.hostname or socket.getfqdn(),
    )
    _check_server(server, where("server"))
    delivery = _build(DeliveryConfig, _table(data, "delivery", path), where("delivery"))
    _check_delivery(delivery, where("delivery"))
    dkim = None
    if "dkim" in data:
        dkim = _build(DkimConfig, _table(data, "dkim", path), where("dkim"))
        dkim = dataclasses.replace(
            dkim, domain=dkim.domain.lower(), private_key=dkim.private_key.absolute()
        )
    web = None
    if "web" in data:
        web = _build(WebConfig, _table(data, "web", path), where("web"))
        if not web.base_url.startswith(("https://", "http://")):
            raise ConfigError(f"{where('web')} base_url: must start with https://")
        web = dataclasses.replace(web, base_url=web.base_url.rstrip("/"),
                                  mount=web.mount.rstrip("/"))
        if web.mount and not web.mount.startswith("/"):
            raise ConfigError(f"{where('web')} mount: must start with / (or be empty)")
        if web.login_link_minutes <= 0 or web.session_minutes <= 0:
            raise ConfigError(f"{where('web')} login_link_minutes, session_minutes:"
                              " must be positive")
        if web.port == server.port != 0:
            raise ConfigError(f"{where('web')} port: {web.port} is the SMTP port of [server];"
                              " give the web endpoint a port of its own")

    store = _build(StoreConfig, _table(data, "store", path), where("store"))
    if store.url and not (store.is_postgresql or store.url.startswith("sqlite:///")):
        raise ConfigError(f"{where('store')} url: must start with sqlite:/// or postgresql://")
    if store.is_postgresql and ":" in store.url.partition("://")[2].rpartition("@")[0]:
        raise ConfigError(f"{where('store')} url: holds a password; use password_file")
    if store.pool_size < 2 or store.lease_seconds < 1:
        raise ConfigError(f"{where('store')} pool_size: at least 2; lease_seconds: at least 1")
    raw_lists = data.get("lists", [])
    if not isinstance(raw_lists, list) or not all(isinstance(x, dict) for x in raw_lists):
        raise ConfigError(f"{path}: lists: must be an array of tables ([[lists]])")
    if not raw_lists:
        raise ConfigError(f"{path}: no [[lists]] configured: listserv needs at least one list")
    lists: list[ListConfig] = []
    seen: set[str] = set()
    for i, table in enumerate(raw_lists):
        here = where(f"lists.{i}")
        mlist = _build(ListConfig, table, here)
        mlist = _check_list(mlist, here)
        if mlist.address in seen:
            raise ConfigError(f"{here} address: {mlist.address} is configured twice")
        seen.add(mlist.address)
        lists.append(mlist)
    return Config(path, server, delivery, dkim, web, tuple(lists), store)


def _table(data: dict[str, Any], name: str, path: Path) -> dict[str, Any]:
    value = data.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: {name}: must be a table ([{name}])")
    return value


_TOML_TYPE_NAMES = {
    str: "a string", int: "an integer", bool: "true or false", Path: "a path string",
}


def _build(cls: type, table: dict[str, Any], where: str) -> Any:
    """Make ``cls`` from ``table``, checking names, types and choices by the fields."""
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in table:
        if key not in fields:
            raise ConfigError(f"{where} {key}: unknown key (known: {', '.join(fields)})")
    values: dict[str, Any] = {}
    for name, f in fields.items():
        if name not in table:
            if f.default is dataclasses.MISSING is f.default_factory:
                raise ConfigError(f"{where} {name}: required key is missing")
            continue
        value = table[name]
        kind = hints[name]
        if kind == tuple[str, ...]:
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"{where} {name}: must be a list of strings, got {value!r}")
            value = tuple(value)
        elif kind is int:
            # bool is a subclass of int; ``port = true`` is a mistake, not 1.
            if not isinstance(value, int) or isinstance(value, bool):
                raise ConfigError(f"{where} {name}: must be an integer, got {value!r}")
        elif kind in (str, bool, Path):
            want = str if kind is Path else kind
            if not isinstance(value, want):
                raise ConfigError(f"{where} {name}: must be {_TOML_TYPE_NAMES[kind]},"
                                  f" got {value!r}")
            if kind is Path:
                value = Path(value)
        choices = f.metadata.get("choices")
        if choices and value not in choices:
            raise ConfigError(f"{where} {name}: must be one of {', '.join(choices)},"
                              f" got {value!r}")
        values[name] = value
    return cls(**values)


def check_address(value: str, where: str) -> str:
    """Validate syntax with email-validator (no DNS) and return it normalised."""
    try:
        info = validate_email(value, check_deliverability=False)
    except EmailNotValidError as exc:
        raise ConfigError(f"{where}: {value!r} is not a valid address: {exc}") from None
    return f"{info.local_part}@{info.domain}".lower()


def _check_server(server: ServerConfig, where: str) -> None:
    if not 0 <= server.port < 65536:  # 0: any free port (tests)
        raise ConfigError(f"{where} port: must be between 0 and 65535, got {server.port}")
    for name in ("max_message_bytes", "max_connections", "timeout", "max_recipients"):
        if getattr(server, name) <= 0:
            raise ConfigError(f"{where} {name}: must be positive")
    if bool(server.tls_cert) != bool(server.tls_key):
        raise ConfigError(f"{where} tls_cert, tls_key: set both or neither")
    for name in ("tls_cert", "tls_key"):
        value = getattr(server, name)
        if value and not os.access(value, os.R_OK):
            raise ConfigError(f"{where} {name}: cannot read {value}")
    try:
        ZoneInfo(server.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{where} timezone: unknown time zone {server.timezone!r}") from None


def _check_delivery(delivery: DeliveryConfig, where: str) -> None:
    if not 0 < delivery.smtp_port < 65536:
        raise ConfigError(f"{where} smtp_port: must be between 1 and 65535")
    for name in ("max_recipients_per_transaction", "connections"):
        if getattr(delivery, name) <= 0:
            raise ConfigError(f"{where} {name}: must be positive")
    pw = delivery.smtp_password_file
    if pw and not os.access(pw, os.R_OK):
        raise ConfigError(f"{where} smtp_password_file: cannot read {pw}")


def _check_list(mlist: ListConfig, where: str) -> ListConfig:
    address = check_address(mlist.address, f"{where} address")
    if "+" in address.split("@")[0]:
        raise ConfigError(f"{where} address: a list address cannot contain '+'")
    if not mlist.moderators:
        raise ConfigError(f"{where} moderators: at least one moderator is needed")
    moderators = tuple(check_address(m, f"{where} moderators") for m in mlist.moderators)
    if address in moderators:
        raise ConfigError(f"{where} moderators: the list itself cannot be its moderator")
    for name in ("hold_days", "token_days", "replies_per_address_per_day",
                 "bounce_threshold", "retention_days", "notices_per_day",
                 "notices_per_kind_per_day"):
        if getattr(mlist, name) <= 0:
            raise ConfigError(f"{where} {name}: must be positive")
    if mlist.archive_days < 0:
        raise ConfigError(f"{where} archive_days: must be 0 (forever) or positive")
    if any(c in mlist.display_name + mlist.subject_prefix for c in "\r\n\0"):
        raise ConfigError(f"{where} display_name/subject_prefix: must be one line")
    texts_dir = mlist.texts_dir
    if texts_dir:
        texts_dir = str(Path(texts_dir).absolute())
        if not Path(texts_dir).is_dir():
            raise ConfigError(f"{where} texts_dir: {mlist.texts_dir} is not a directory")
    return dataclasses.replace(mlist, address=address, moderators=moderators,
                               texts_dir=texts_dir)

"""The daemon: wires store, intake, processor, scheduler and sender.

``Daemon`` is started and stopped by ``listserv serve`` and, in the same
way, by the tests, which run it inside their own event loop on a free
loopback port.

Startup order: first the checks that need no state (``ops.preflight``:
data_dir can be made, the data_dir lock, the ports are free, the DKIM key
loads), each a one-line ``CannotStart`` or ``ConfigError`` before anything
is touched; then the log lines that say where the database is, where mail
goes and whether it is signed; then store, workers, and the listening
socket last (so nothing is accepted that cannot be stored). A start that
fails half way stops what it had started, so the process ends instead of
living on without a socket. Shutdown is the reverse (the socket closes
first, so nothing new arrives while the workers finish), and the lock goes
last.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING

from listserv.clock import Clock, utcnow
from listserv.config import Config
from listserv.context import Context
from listserv.delivery.sender import Sender
from listserv.delivery.signing import Signer
from listserv.errors import ConfigError
from listserv.inbox.processor import Handler, Processor
from listserv.inbox.worker import Worker
from listserv.intake.routing import Role
from listserv.intake.server import Intake, IntakeServer
from listserv.log import event
from listserv.mail.dkim_proof import DnsFunc
from listserv.mail.dmarc_lookup import DmarcLookup
from listserv.ops import preflight
from listserv.ops.scheduler import Scheduler
from listserv.roles.table import build_handlers, build_parkers
from listserv.store.backends import open_store
from listserv.store.database import Store

if TYPE_CHECKING:  # aiohttp is imported only when [web] is configured
    from listserv.web.server import WebServer


class Daemon:
    def __init__(
        self,
        config: Config,
        *,
        clock: Clock = utcnow,
        handlers: Mapping[Role, Handler] | None = None,
        dmarc: DmarcLookup | None = None,
        dkim_dns: DnsFunc | None = None,
        worker: Worker | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self._handlers = handlers
        self._dmarc = dmarc
        self._dkim_dns = dkim_dns
        self.worker = worker or Worker(timeout=config.server.worker_timeout,
                                       memory_bytes=config.server.worker_memory_mb * 2**20)
        self.ctx: Context | None = None
        self.scheduler: Scheduler | None = None
        self.store: Store | None = None
        self.processor: Processor | None = None
        self.sender: Sender | None = None
        self.server: IntakeServer | None = None
        self.web: WebServer | None = None
        self.address: tuple[str, int] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._lock: preflight.DataDirLock | None = None

    async def start(self) -> tuple[str, int]:
        """Check, announce, then start; a failed start leaves nothing running."""
        self._preflight()
        self._announce()
        try:
            return await self._start()
        except BaseException:
            await self.stop(quiet=True)
            raise

    def _preflight(self) -> None:
        cfg = self.config
        preflight.make_data_dir(cfg)
        lock = preflight.DataDirLock(cfg.server.data_dir)
        lock.acquire()
        self._lock = lock
        try:
            ports = [("SMTP", cfg.server.host, cfg.server.port)]
            if cfg.web is not None:
                ports.append(("web", cfg.web.host, cfg.web.port))
            for what, host, port in ports:
                problem = preflight.port_problem(host, port)
                if problem is not None:
                    raise preflight.cannot_listen(cfg, what, host, port, problem)
            if cfg.dkim is not None and not cfg.dkim.private_key.is_file():
                raise ConfigError(f"{cfg.path}: [dkim] private_key: {cfg.dkim.private_key}"
                                  " does not exist; run 'listserv init' to create it")
            if cfg.dkim is not None:
                Signer.from_config(cfg.dkim)   # unreadable or weak: one line, exit 2
        except BaseException:
            self._release()
            raise

    def _announce(self) -> None:
        """The first log lines: which config, where the database is, where mail goes, signed?"""
        cfg = self.config
        event("starting", config=cfg.path, database=cfg.database_name,
              data_dir=cfg.server.data_dir)
        if cfg.delivery.transport == "maildir":
            where = f"maildir:{cfg.server.data_dir / 'outbox' / 'new'}"
        else:
            where = f"relay:{cfg.delivery.smtp_host}:{cfg.delivery.smtp_port}"
        if cfg.dkim is not None:
            event("delivery", to=where, signed="yes", selector=cfg.dkim.selector,
                  domain=cfg.dkim.domain, key=cfg.dkim.private_key)
        else:
            relay = cfg.delivery.transport != "maildir"
            event("delivery", level="warning" if relay else "info", to=where, signed="no",
                  hint="add a [dkim] table and run 'listserv init' to sign")

    async def _start(self) -> tuple[str, int]:
        self.store = await open_store(self.config, clock=self.clock)
        self.ctx = Context(config=self.config, store=self.store, clock=self.clock,
                           wake_sender=self.wake_sender, sender_claiming=self.sender_claiming,
                           dmarc=self._dmarc,
                           dkim_dns=self._dkim_dns, worker=self.worker)
        handlers, parkers = self._handlers, {}
        if handlers is None:
            handlers, parkers = build_handlers(self.ctx), build_parkers(self.ctx)
        self.processor = Processor(self.store, handlers, worker=self.worker, park=parkers)
        await self.processor.recover()
        self._tasks.append(asyncio.create_task(self.processor.run(), name="processor"))
        self.sender = Sender(self.config, self.store, clock=self.clock)
        await self.sender.start()
        # Several daemons on PostgreSQL: rows another daemon commits wake ours too.
        self.store.on_notify("inbox", self.processor.wake)
        self.store.on_notify("deliveries", self.sender.wake)
        await self.store.listen()
        self.scheduler = Scheduler(self.ctx)
        self.scheduler.start()
        web = self.config.web
        if web is not None:  # RFC 8058 endpoint: after the workers it feeds
            from listserv.web.server import WebServer

            self.web = WebServer(self.ctx)
            await self._listen("web", web.host, web.port, self.web.start)
        intake = Intake(self.config, self.store, on_commit=self.processor.wake, clock=self.clock)
        self.server = IntakeServer(self.config, intake)
        self.address = await self._listen("SMTP", self.config.server.host,
                                          self.config.server.port, self.server.start)
        event("listening", host=self.address[0], port=self.address[1],
              protocol=self.config.server.protocol,
              starttls=self.server.tls_context is not None,
              lists=",".join(m.address for m in self.config.lists))
        return self.address

    async def _listen(self, what: str, host: str, port: int,
                      start: Callable[[], Awaitable[tuple[str, int]]]) -> tuple[str, int]:
        """Bind; a port taken since the preflight check is the same one line."""
        try:
            return await start()
        except OSError as exc:
            raise preflight.cannot_listen(self.config, what, host, port,
                                          preflight.bind_problem(exc)) from None

    def wake_sender(self) -> None:
        """Handlers call this after committing outgoing mail."""
        sender = getattr(self, "sender", None)
        if sender is not None:
            sender.wake()

    async def sender_claiming(self) -> None:
        """Publishing waits here after a post's first chunk (``Sender.claiming``)."""
        sender = getattr(self, "sender", None)
        if sender is not None:
            await sender.claiming()

    async def stop(self, *, quiet: bool = False) -> None:
        if self.server is not None:
            await self.server.stop()
        if self.web is not None:
            await self.web.stop()
        if self.scheduler is not None:
            self.scheduler.stop()
        if self.processor is not None:
            self.processor.stop()
        for task in self._tasks:
            try:
                await asyncio.wait_for(task, timeout=30)
            except TimeoutError:
                event("worker_stuck", level="error", task=task.get_name())
            except Exception as exc:
                event("worker_failed", level="error", task=task.get_name(),
                      error=f"{type(exc).__name__}: {exc}")
        if self.sender is not None:
            await self.sender.stop()
        self.worker.close()
        if self.store is not None:
            await self.store.close()
        self._release()
        if not quiet:
            event("stopped")

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    async def serve_until(self, stop: asyncio.Event) -> None:
        await self.start()
        try:
            await stop.wait()
        finally:
            await self.stop()

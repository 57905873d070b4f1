"""Timed work, in one place, on APScheduler.

Every job works from database state, so a restart or a missed run loses
nothing and running a job twice does no harm: a reminder lists what is
held *now*, expiry expires what is old *now*, publishing queues approved
posts not queued yet. Times of day are in the server's time zone
(``[server] timezone``, default Europe/Berlin).

``Scheduler.run_now(job_id)`` runs a job's own function at once; tests use
it with a controlled clock instead of waiting for the trigger.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from listserv.bounces import upkeep
from listserv.commands import tokens
from listserv.context import Context
from listserv.log import event
from listserv.moderation import posts, publish
from listserv.ops import backup, retention
from listserv.outbox import respond

JobFunc = Callable[[Context], Awaitable[object]]


async def expire_tokens(ctx: Context) -> int:
    async with ctx.store.transaction() as db:
        return await tokens.expire(db, ctx.clock())


async def summarise_notices(ctx: Context) -> int:
    """One mail per moderator naming the notices the daily cap held back."""
    sent = 0
    for mlist in ctx.config.lists:
        async with ctx.store.transaction() as db:
            sent += await respond.summarise(db, mlist, ctx.clock())
    if sent:
        ctx.wake_sender()
    return sent


@dataclass(frozen=True)
class JobSpec:
    id: str
    func: JobFunc
    trigger: Callable[[str], BaseTrigger]
    what: str
    at_start: bool = False  # also run once right after start (crash recovery)
    once_per: str = ""      # strftime of the slot (day, hour) it runs once in, across daemons


async def delivery_retries(ctx: Context) -> None:
    """Wake the sender: it sends every delivery that is due (retries whose time
    has come, mail queued by another process such as the CLI). The sender also
    sleeps until its next due retry by itself; this job is the backstop."""
    ctx.wake_sender()


DAY, HOUR = "%Y-%m-%d", "%Y-%m-%dT%H"   # slots in the list's time zone

JOBS: tuple[JobSpec, ...] = (
    JobSpec("delivery_retries", delivery_retries,
            lambda tz: IntervalTrigger(seconds=30, timezone=tz),
            "send due retries and mail queued by the CLI"),
    JobSpec("publish_approved", publish.publish_approved,
            lambda tz: IntervalTrigger(minutes=1, timezone=tz),
            "queue approved posts not yet queued (CLI approvals, crash recovery)",
            at_start=True),
    JobSpec("remind_moderators", posts.remind_moderators,
            lambda tz: CronTrigger(hour=8, minute=0, timezone=tz),
            "daily reminder of posts held for more than a day",
            once_per=DAY),
    JobSpec("expire_held", posts.expire_held,
            lambda tz: CronTrigger(minute=15, timezone=tz),
            "expire posts held longer than hold_days; tell the poster",
            once_per=HOUR),
    JobSpec("expire_tokens", expire_tokens,
            lambda tz: CronTrigger(hour=3, minute=30, timezone=tz),
            "delete long-expired and long-used tokens",
            once_per=DAY),
    JobSpec("retention", retention.purge,
            lambda tz: CronTrigger(hour=2, minute=0, timezone=tz),
            "delete raw mail handled more than retention_days ago (DSGVO)",
            once_per=DAY),
    JobSpec("backup", backup.backup_job,
            lambda tz: CronTrigger(hour=2, minute=30, timezone=tz),
            "online backup of the database into data_dir/backups, keep the newest 7",
            once_per=DAY),
    JobSpec("bounce_decay", upkeep.decay,
            lambda tz: CronTrigger(hour=4, minute=0, timezone=tz),
            "halve the bounce score of members without a bounce for a week",
            once_per=DAY),
    JobSpec("notify_disabled", upkeep.notify_disabled,
            lambda tz: IntervalTrigger(minutes=10, timezone=tz),
            "tell members disabled for bounces, and the moderators, once"),
    JobSpec("summarise_notices", summarise_notices,
            lambda tz: CronTrigger(minute=45, timezone=tz),
            "one summary of the notices the daily cap held back, per moderator",
            once_per=HOUR),
)


class Scheduler:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        tz = ctx.config.server.timezone
        self._scheduler = AsyncIOScheduler(timezone=tz)
        self._specs = {spec.id: spec for spec in JOBS}
        for spec in JOBS:
            first = {"next_run_time": datetime.now(UTC)} if spec.at_start else {}
            self._scheduler.add_job(self._runner(spec), spec.trigger(tz), id=spec.id,
                                    name=spec.what, coalesce=True, max_instances=1,
                                    misfire_grace_time=3600, **first)

    def _runner(self, spec: JobSpec) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            await self.fire(spec.id)

        return run

    async def fire(self, job_id: str) -> bool:
        """Run a job as its trigger does: once per slot across daemons; False if skipped.

        Public so that a test (two daemons, a controlled clock) can fire a
        daily job on both without waiting for the time of day.
        """
        spec = self._specs[job_id]
        try:
            if spec.once_per and not await self._take(spec):
                return False
            result = await spec.func(self.ctx)
            if result:  # quiet when there was nothing to do
                event("job_done", job=spec.id, result=result)
        except Exception as exc:  # a job's fault is logged; the next run tries again
            event("job_failed", level="error", job=spec.id,
                  error=f"{type(exc).__name__}: {exc}")
        return True

    async def _take(self, spec: JobSpec) -> bool:
        """The slot is ours to run (another daemon on the same database did not take it)."""
        zone = ZoneInfo(self.ctx.config.server.timezone)
        slot = self.ctx.clock().astimezone(zone).strftime(spec.once_per)
        taken = await self.ctx.store.run_once(spec.id, slot)
        if not taken:
            event("job_skipped", job=spec.id, slot=slot, why="another daemon ran it")
        return taken

    def start(self) -> None:
        self._scheduler.start()

    def stop(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)

    def next_runs(self) -> dict[str, str]:
        return {job.id: str(job.next_run_time) for job in self._scheduler.get_jobs()}

    async def run_now(self, job_id: str) -> object:
        return await self._specs[job_id].func(self.ctx)

"""The daemon's pass as data: a list of named stages, run in order.

Each stage is one small coroutine with one interface, ``stage(host)``, where
the host is the daemon (the ``Host`` below says what a stage may use), as
Mailman's pipelines are lists of named handlers. A stage that fails ends
the pass (the daemon backs off and tries the whole pass again); its name is
in the log and on the exception.

No stage waits for a test run: ``test`` starts one in the worker thread
(bot/background.py) and collects it at a later pass, so polls, commands,
expiries and replies keep their pace while a series is built. A pass called
on its own (``Daemon.process`` outside the loop) waits for the run it starts.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from bot.background import Runs
from bot.commands import runner as command_runner
from bot.config.rules import Rules
from bot.ingest.sources import ImapSource, LocalSource
from bot.reply import notices, outbox
from bot.series import tracker
from bot.state import State, now
from bot.testrun import pipeline

log = logging.getLogger(__name__)


class Host(Protocol):
    """What a stage may use of the daemon."""

    rules: Rules
    state: State
    source: LocalSource | ImapSource
    runs: Runs
    send: bool
    beside: bool  # runs go beside the loop; False: the pass waits for its run

    def wake(self) -> None: ...  # kick the loop, from any thread


@dataclass(frozen=True)
class Stage:
    name: str
    run: Callable[[Host], Awaitable[None]]


async def poll(host: Host) -> None:
    """Fetch new mail into the spool; a connection the server dropped (a restart)
    is tried once more, and a dead server does not stop the rest of the pass."""
    for attempt in (1, 2):
        try:
            await asyncio.to_thread(host.source.poll)
            with host.state.tx() as db:
                host.state.meta_set(db, "last_poll_at", str(now()))
            return
        except Exception as exc:  # noqa: BLE001 - a dead server must not stop replies
            log.log(logging.WARNING if attempt == 1 else logging.ERROR,
                    "poll of %s failed: %s", host.source.name, exc)
            host.source.close()


async def assemble(host: Host) -> None:
    """Group spooled patch mail into series versions (bot/series/tracker.py)."""
    await asyncio.to_thread(tracker.assemble, host.state, host.rules)


async def expire(host: Host) -> None:
    """Answer versions whose grace period ended incomplete, and untestable ones."""
    await asyncio.to_thread(notices.expire, host.state, host.rules)


async def commands(host: Host) -> None:
    """Mail commands: one reply per command mail, queued in the outbox."""
    await asyncio.to_thread(command_runner.process_pending, host.state, host.rules)


async def test(host: Host) -> None:
    """Collect the run that ended (raising what it failed with), then start the
    next ready version: one at a time, beside the loop."""
    host.runs.collect()
    if host.runs.busy():
        return
    version = await asyncio.to_thread(pipeline.next_ready, host.state)
    if version is None:
        return
    if host.beside:
        host.runs.start(version, host.wake)
    else:
        await asyncio.to_thread(host.runs.run_now, version)
        if await asyncio.to_thread(pipeline.next_ready, host.state) is not None:
            host.wake()  # more to test: another pass


async def send(host: Host) -> None:
    """Send the queued replies (bot/reply/outbox.py), unless sending is off."""
    if host.send:
        await outbox.send_pending(host.state, host.rules)


PASS: tuple[Stage, ...] = tuple(Stage(f.__name__, f) for f in
                                (poll, assemble, expire, commands, test, send))


async def run_pass(host: Host, stages: tuple[Stage, ...] = PASS) -> None:
    """Run every stage in order, each logged by name with its duration."""
    for stage in stages:
        clock = time.monotonic()
        try:
            await stage.run(host)
        except BaseException as exc:
            exc.add_note(f"in the daemon's stage {stage.name!r}")
            raise
        log.debug("stage %s: %.3fs", stage.name, time.monotonic() - clock)

"""The daemon: poll -> spool -> assemble -> test -> reply, forever.

apscheduler 3.x drives the poll fallback, outbox retries and housekeeping;
an IMAP IDLE thread wakes the loop as soon as mail arrives. One coroutine
does a pass (``process``: the named stages of bot/stages.py, in order), so
passes never overlap; blocking work runs in threads, and test runs in a
worker beside the loop (bot/background.py), so a long build holds up no
poll, command or reply. SIGTERM (or ``stop``) gives a run in progress up
cleanly before the daemon exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import signal
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot import stages, store
from bot.background import Runs
from bot.config.rules import Rules
from bot.ingest.sources import ImapSource, open_source
from bot.sandbox import cleanup, git
from bot.sandbox.bwrap import Sandbox
from bot.series.assembly import configure_b4
from bot.state import State
from bot.testrun import pipeline

log = logging.getLogger(__name__)
HOUSEKEEPING_SECONDS = 3600
OUTBOX_RETRY_SECONDS = 30
KEEP_RUN_DIRS_DAYS = 14
IDLE_RECONNECT_SECONDS = 10
BACKOFF_SECONDS = 5.0  # after a failed pass; doubled each time in a row
BACKOFF_MAX_SECONDS = 300.0


class Daemon:
    def __init__(self, rules: Rules, state: State, sandbox: Sandbox,
                 progress: Callable[[str], None] | None = None, send: bool = True):
        self.rules, self.state, self.sandbox = rules, state, sandbox
        self.progress = progress
        self.send = send
        self.source = open_source(rules, state)
        self.runs = Runs(state, rules, sandbox, progress)
        self.beside = False  # True while serving (``run``): runs go beside the loop
        self.stages = stages.PASS
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = asyncio.Lock()
        self._kick = asyncio.Event()
        self._stop = asyncio.Event()
        self.idle_thread: threading.Thread | None = None
        self.failures = 0  # failed passes in a row
        configure_b4(rules.bot_name, rules.bot_address)

    async def process(self) -> None:
        """One pass over every stage; safe to call at any time. Outside ``run``
        the pass waits for the test run it starts."""
        async with self._lock:
            self._loop = asyncio.get_running_loop()
            await stages.run_pass(self, self.stages)

    def wake(self) -> None:
        """``kick`` from another thread (a test run that ended, IDLE's news); a
        loop that has closed meanwhile needs no wake."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(self.kick)

    def kick(self) -> None:
        self._kick.set()

    def stop(self) -> None:
        self._stop.set()
        self._kick.set()

    def busy(self) -> bool:
        """Anything still to do: versions waiting or ready, replies to send."""
        # An untestable version without a verdict still owes its reply (notices.expire).
        queued = self.state.one("SELECT COUNT(*) AS n FROM outbox WHERE state = 'queued'")
        return bool(store.open_versions(self.state) or (self.send and queued["n"])
                    or self.runs.busy())

    async def run(self, until_idle: bool = False, tick: float = 1.0) -> None:
        """Serve until stopped; with ``until_idle``, until everything is answered."""
        scheduler = AsyncIOScheduler()
        defaults = dict(coalesce=True, max_instances=1, replace_existing=True)
        scheduler.add_job(self.kick, "interval", seconds=self.rules.source.poll_seconds,
                          id="poll", **defaults)
        scheduler.add_job(self.kick, "interval", seconds=OUTBOX_RETRY_SECONDS, id="outbox",
                          **defaults)
        scheduler.add_job(self.housekeeping, "interval", seconds=HOUSEKEEPING_SECONDS,
                          id="housekeeping", **defaults)
        await asyncio.to_thread(self.recover)
        scheduler.start()
        self._loop = asyncio.get_running_loop()
        if isinstance(self.source, ImapSource) and not until_idle:
            self._start_idle()
        log.info("bpbot serving %s as %s; a pass: %s", self.source.name,
                 self.rules.bot_address, " -> ".join(s.name for s in self.stages))
        self.beside = True
        stop_signals = self._on_signals(asyncio.get_running_loop())
        try:
            self.kick()
            while not self._stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._kick.wait(), timeout=tick if until_idle else None)
                self._kick.clear()
                if self._stop.is_set():
                    break
                try:
                    await self.process()
                    # A run that failed (its state write) counts until one ends well.
                    if self.runs.last_ok or not self.runs.busy():
                        self.failures = 0
                except Exception:  # noqa: BLE001 - log it, keep serving; the next pass retries
                    await self._back_off()
                if until_idle and not self._busy_or_unknown():
                    break
        finally:
            self.beside = False
            for sig in stop_signals:
                asyncio.get_running_loop().remove_signal_handler(sig)
            scheduler.shutdown(wait=False)
            await asyncio.to_thread(self.runs.stop)
            self.source.close()

    def _on_signals(self, loop: asyncio.AbstractEventLoop) -> list[signal.Signals]:
        """SIGTERM and SIGINT stop the daemon cleanly (only a loop in the main
        thread can take signals; a daemon in a test's thread is stopped by ``stop``)."""
        if threading.current_thread() is not threading.main_thread():
            return []
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._signalled, sig)
        return [signal.SIGTERM, signal.SIGINT]

    def _signalled(self, sig: signal.Signals) -> None:
        log.info("%s: stopping", sig.name)
        self.stop()

    async def _back_off(self) -> None:
        """After a failed pass (a full disk, a locked database): wait, longer each
        time in a row, then try again; a stop ends the wait."""
        self.failures += 1
        delay = min(BACKOFF_MAX_SECONDS, BACKOFF_SECONDS * 2 ** (self.failures - 1))
        log.exception("a pass of the daemon failed (%d in a row); next pass in %gs",
                      self.failures, delay)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), timeout=delay)
        self.kick()

    def _busy_or_unknown(self) -> bool:
        try:
            return self.busy()
        except sqlite3.Error as exc:  # the state cannot be read now: not idle
            log.warning("cannot read the state: %s", exc)
            return True

    def _start_idle(self) -> None:
        """A second IMAP connection sits in IDLE and kicks the loop on new mail."""
        watcher = ImapSource(self.rules, self.state)

        def watch() -> None:
            while not self._stop.is_set():
                try:
                    if watcher.idle_wait(min(self.rules.source.idle_seconds, 29 * 60)):
                        self.wake()
                except Exception as exc:  # noqa: BLE001 - reconnect after any failure
                    log.warning("IMAP IDLE failed (%s); reconnecting in %ss", exc,
                                IDLE_RECONNECT_SECONDS)
                    watcher.close()
                    time.sleep(IDLE_RECONNECT_SECONDS)
                    # Mail may have come while it was down: look now, not at the next poll.
                    self.wake()
            watcher.close()

        self.idle_thread = threading.Thread(target=watch, name="imap-idle", daemon=True)
        self.idle_thread.start()

    def recover(self) -> None:
        """At start: remove the git worktrees a killed process left in the work dir.

        A kill during ``git worktree add`` leaves a worktree git keeps locked
        ("initializing"); ``prune`` skips locked ones and every later ``add``
        at that path fails, so unlock and remove them first.
        """
        from bot.sandbox import git
        tree, work = self.rules.tree_path, (self.rules.state_dir / "work").resolve()
        listing = git.git(tree, "worktree", "list", "--porcelain")
        for line in listing.output.splitlines() if listing.ok else []:
            path = Path(line.removeprefix("worktree ")) if line.startswith("worktree ") else None
            if path is not None and work in path.resolve().parents:
                log.info("removing worktree %s left by an earlier run", path)
                git.git(tree, "worktree", "unlock", str(path))
                git.git(tree, "worktree", "remove", "--force", "--force", str(path))
                shutil.rmtree(path, ignore_errors=True)
        git.git(tree, "worktree", "prune")
        try:
            if crashed := pipeline.close_crashed_runs(self.state):
                log.warning("%d run(s) left running by a crash closed as abandoned", crashed)
        except sqlite3.Error as exc:
            log.error("cannot close the runs a crash left: %s", exc)

    async def housekeeping(self) -> None:
        """Between passes (under the lock): remove run logs and baseline logs older
        than two weeks and stale worktree entries, then wake the loop, which
        also answers series whose grace period has ended."""
        async with self._lock:
            await asyncio.to_thread(self._clean_old_dirs)
        self.kick()

    def _clean_old_dirs(self) -> None:
        work = self.rules.state_dir / "work"
        cutoff = time.time() - KEEP_RUN_DIRS_DAYS * 86400
        old = [d for pattern in ("run-*", "baselines/*") for d in work.glob(pattern)
               if d.is_dir() and d.stat().st_mtime < cutoff]
        for run_dir in old:
            try:
                cleanup.remove_tree(run_dir)
            except OSError as exc:
                log.warning("cannot remove the old run dir %s: %s", run_dir, exc)
        git.git(self.rules.tree_path, "worktree", "prune")

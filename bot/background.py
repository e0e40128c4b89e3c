"""Test runs beside the daemon's loop: one worker thread runs one version at a
time while the loop goes on polling, answering commands, expiring and sending.

The loop starts a run (``start``) and, at its next pass, collects how it
ended (``collect``): a run that could not write the state raises there, so
the pass fails and the daemon backs off as before. The state is shared the
way bot/state.py allows it: the worker has its own connection and every
write is one short ``BEGIN IMMEDIATE`` transaction, so the loop's writes
wait at most for one of the run's, never for the run.

A version the daemon died in before runs in a child process
(bot/isolate.py). ``stop`` gives a run in progress up: its commands are
killed with their cgroups (bot/sandbox/proc.py ``interrupt``), its worktree
and out dirs removed, the run recorded 'interrupted' and the version left
ready, to be tested again at the next start.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from bot import isolate
from bot.config.rules import Rules
from bot.reply import results
from bot.sandbox import proc
from bot.sandbox.bwrap import Sandbox
from bot.state import State
from bot.testrun import pipeline

log = logging.getLogger(__name__)
STOP_WAIT_SECONDS = 120  # for a run to notice the stop and clean up


class Runs:
    """The worker that runs versions beside the loop, one at a time."""

    def __init__(self, state: State, rules: Rules, sandbox: Sandbox,
                 progress: pipeline.Progress | None = None):
        self.state, self.rules, self.sandbox, self.progress = state, rules, sandbox, progress
        self._lock = threading.Lock()  # orders start, stop and the end of a run
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._live = False  # a run is between its start and its end
        self._stopped = False
        self.version_id: int | None = None  # the version being tested
        self.last_ok = True  # the last run collected ended without an error

    def busy(self) -> bool:
        return self._live

    def start(self, version: dict, done: Callable[[], None]) -> bool:
        """Test ``version`` in the worker thread; ``done`` is called (in that
        thread) when the run has ended. False when a run is going or stopped."""
        with self._lock:
            if self._live or self._stopped:
                return False
            self._live, self.version_id = True, version["id"]
            self._thread = threading.Thread(target=self._work, args=(version, done),
                                             name=f"bpbot-run-{version['id']}", daemon=True)
            self._thread.start()
        return True

    def run_now(self, version: dict) -> None:
        """Test ``version`` in this thread (a pass that waits for its run)."""
        with self._lock:
            if self._live or self._stopped:
                return
            self._live, self.version_id = True, version["id"]
        self._run(version)
        self.collect()

    def collect(self) -> None:
        """After a run ended: raise what it failed with (a state it could not write)."""
        if self._thread is not None and not self._live:
            self._thread.join()
            self._thread = None
            self.last_ok = self._error is None
        error, self._error = self._error, None
        if error is not None:
            self.last_ok = False
            raise error

    def stop(self, timeout: float = STOP_WAIT_SECONDS) -> None:
        """Give up the run in progress (starting no other meanwhile) and wait for
        it to end."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            if self._live:
                log.info("stopping: giving up the run of version %s", self.version_id)
                proc.interrupt()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                log.error("the run of version %s did not stop within %gs", self.version_id,
                          timeout)
        with self._lock:
            self._stopped = False  # a later ``Daemon.run`` or pass may test again

    def _work(self, version: dict, done: Callable[[], None]) -> None:
        try:
            self._run(version)
        finally:
            self.state.close()  # this thread's connection
            done()

    def _run(self, version: dict) -> None:
        try:
            # A version the daemon died in before is run in a child process.
            run = isolate.run_isolated if isolate.suspect(self.state, version["id"]) \
                else results.run_version
            run(self.state, self.rules, self.sandbox, version, self.progress)
        except proc.Interrupted:
            self._interrupted(version)
        except BaseException as exc:  # noqa: BLE001 - handed to the loop's next pass
            self._error = exc
        finally:
            with self._lock:
                self._live, self.version_id = False, None
                proc.resume()  # no command of the run is left to kill

    def _interrupted(self, version: dict) -> None:
        with self._lock:
            proc.resume()  # the clean-up's own commands must run
        try:
            pipeline.clear_work(self.rules)
            pipeline.mark_interrupted(self.state, version["id"])
        except Exception as exc:  # noqa: BLE001 - the next start recovers (daemon.recover)
            log.error("version %d: cannot record its interrupted run: %s", version["id"], exc)
            return
        log.warning("version %d: its run was given up (the bot is stopping); it is tested "
                    "again at the next start", version["id"])

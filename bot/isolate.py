"""A version whose run the daemon did not survive is tested again in a child.

A run still 'running' when the daemon starts is one the daemon died in: a
crash caused by the series (before read_new read from git, a symlink to
/dev/zero made the daemon read until it died, at every restart), or a kill
from outside (a reboot, an operator's restart) that says nothing about the
series. The two look alike, so such a version is not blamed at once: its
next run is done in a child process. If the child dies, the daemon lives
on: the version is answered as an infra-error with the reason and never
picked again. If the daemon is killed with it, nothing is concluded; if
the daemon stops (bot/background.py), the child is asked to stop too
(SIGTERM: its commands are killed, its worktrees removed) and the run is
recorded as interrupted.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import sqlite3
import sys
import threading
import time
from pathlib import Path

from bot import store
from bot.config.rules import Rules
from bot.reply import results
from bot.sandbox import proc
from bot.sandbox.bwrap import Sandbox
from bot.series.assembly import configure_b4
from bot.state import State
from bot.testrun import pipeline

log = logging.getLogger(__name__)
EXIT_STATE_ERROR = 75  # the child could not write the state: back off, try again
EXIT_INTERRUPTED = 76  # the child was stopped with the bot: nothing is concluded
STOP_WAIT_SECONDS = 60  # for a stopped child to clean up before it is killed


class StateUnwritable(sqlite3.OperationalError):
    """The isolated run could not write the state (disk full, locked)."""


def suspect(state: State, version_id: int) -> list[dict]:
    """The runs of this version the daemon died in, since its last finished run
    (id and stage)."""
    return store.crash_suspects(state, version_id)


def child_main(db_path: str, rules: Rules, sandbox: Sandbox, version_id: int,
               log_level: int, parent: int) -> None:
    """In the child: the ordinary run_version on a connection of its own."""
    logging.basicConfig(level=log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s[isolated]: %(message)s")
    _die_with_parent(parent)
    # The daemon stopping: the run is given up cleanly (bot/background.py).
    signal.signal(signal.SIGTERM, lambda *_: proc.interrupt())
    configure_b4(rules.bot_name, rules.bot_address)  # b4's settings are per process
    try:
        state = State(Path(db_path))
        version = store.version(state, version_id)
        results.run_version(state, rules, sandbox, version)
    except proc.Interrupted:
        proc.resume()
        pipeline.clear_work(rules)
        sys.exit(EXIT_INTERRUPTED)
    except sqlite3.Error as exc:
        log.error("isolated run of version %d: %s", version_id, exc)
        sys.exit(EXIT_STATE_ERROR)


CHILD = child_main  # what the child runs (tests put a crashing one here)


def run_isolated(state: State, rules: Rules, sandbox: Sandbox, version: dict,
                 progress: pipeline.Progress | None = None) -> None:
    """Run the version in a child process; give it up if the child dies."""
    earlier = ", ".join(f"{r['id']} (at its {r['stage'] or 'first'} step)"
                        for r in suspect(state, version["id"]))
    log.warning("version %d: the daemon stopped during run(s) %s; testing it in a child "
                "process", version["id"], earlier)
    if progress:
        progress(f"v{version['revision']} {version['subject']!r}: in a child process")
    child = multiprocessing.get_context("spawn").Process(
        target=CHILD, name=f"bpbot-run-{version['id']}",
        args=(str(state.path), rules, sandbox, version["id"],
              logging.getLogger().getEffectiveLevel(), os.getpid()))
    child.start()
    _join(child)
    if child.exitcode == 0:
        return
    if child.exitcode == EXIT_INTERRUPTED or proc.stopping():
        raise proc.Interrupted(f"the isolated run of version {version['id']} was stopped")
    if child.exitcode == EXIT_STATE_ERROR:
        raise StateUnwritable(f"the isolated run of version {version['id']} could not write "
                              "the state")
    how = _exit_text(child.exitcode)
    pipeline.clear_work(rules)
    with state.tx() as db:
        store.mark_crashed(db, version["id"])
    reason = (f"testing this version killed the process that ran it ({how}); the daemon had "
              f"already stopped during run {earlier}; it is not tried again")
    log.error("version %d: %s", version["id"], reason)
    results.give_up(state, rules, version, reason)


def _join(child: multiprocessing.process.BaseProcess) -> None:
    """Wait for the child; when the bot stops, ask it to stop too (SIGTERM: it
    kills its commands and cleans up), and kill it if it does not."""
    while child.is_alive() and not proc.stopping():
        child.join(0.5)
    if child.is_alive():
        child.terminate()
        child.join(STOP_WAIT_SECONDS)
    if child.is_alive():
        log.error("the isolated run %s did not stop; killing it", child.name)
        child.kill()
        child.join()


def _exit_text(code: int | None) -> str:
    if code is not None and code < 0:
        name = signal.Signals(-code).name if -code in signal.valid_signals() else str(-code)
        return f"killed by {name}" + (", e.g. by the OOM killer" if -code == signal.SIGKILL else "")
    return f"exit status {code}"


def _die_with_parent(parent: int) -> None:
    """An orphan must not go on testing while a restarted daemon tests the same version
    (also when the daemon died before the child got here)."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.2)
        os._exit(1)

    if os.getppid() != parent:
        os._exit(1)
    threading.Thread(target=watch, name="parent-watch", daemon=True).start()

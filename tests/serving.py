"""The daemon's real loop (IMAP IDLE, scheduler and all) in a thread, for tests
that mail it while it serves."""

from __future__ import annotations

import asyncio
import threading
import time

from bot.daemon import Daemon
from bot.sandbox import bwrap as sandbox
from bot.state import State


class Serving:
    def __init__(self, rules):
        self.state = State(rules.state_dir / "bpbot.sqlite")
        self.daemon = Daemon(rules, self.state, sandbox.for_rules(rules))
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_until_complete,
                                       args=(self.daemon.run(),), daemon=True)

    def __enter__(self) -> Serving:
        self.thread.start()
        return self

    def stop(self) -> float:
        """Stop the daemon; how long it took to end."""
        started = time.monotonic()
        self.loop.call_soon_threadsafe(self.daemon.stop)
        self.thread.join(timeout=120)
        assert not self.thread.is_alive(), "the daemon did not stop"
        return time.monotonic() - started

    def __exit__(self, *exc) -> None:
        if self.thread.is_alive():
            self.stop()
        self.loop.close()

    def wait(self, condition, timeout: float, what: str) -> None:
        """Until ``condition()`` holds; fails naming ``what`` after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}")

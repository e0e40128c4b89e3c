"""``bpbot check``'s cache: base builds kept between checks of the same rules.

A check runs in a scratch dir with a scratch state (bot/check.py). The
daemon's base cache (bot/testrun/baseline.py: rows keyed by base commit, generator
inputs, kernel and build commands) is reused by giving it a persistent state
dir here::

    <cache>/lock                    held for the whole check (fcntl.flock)
    <cache>/sample/                 the bundled sample tree (default rules only)
    <cache>/state/bpbot.sqlite      the baseline rows, and nothing else
    <cache>/state/work/baselines/   their logs
    <cache>/state/ccache/           the compiler cache (scratch state links to it)
    <cache>/state/warm/             the base's warm package and build trees
                                    (bot/testrun/warm.py; scratch state links to it)

Before the run the rows are copied into the scratch state, after it the new
ones (with their logs) are copied back. A second check while the lock is held
does not wait for it: it runs without the cache, as ``--no-cache`` does.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from bot import __version__
from bot.config import rules as config
from bot.demo import layout
from bot.state import State

log = logging.getLogger(__name__)


class CacheBusy(RuntimeError):
    """Another check holds the cache's lock."""


def default_root(rules_path: Path | None) -> Path:
    """``$XDG_CACHE_HOME/bpbot/check/<hash>`` (else ``~/.cache/...``); the hash is of
    the rules file's content (for the default rules, of the bundled sample too)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "bpbot" / "check" / rules_hash(rules_path)


def rules_hash(rules_path: Path | None) -> str:
    digest = hashlib.sha256()
    if rules_path is None:
        digest.update(f"default rules, bpbot {__version__}\n".encode())
        digest.update(config.DEMO_RULES.read_bytes())
        for name in ("tree", "upstream", "kernels"):  # the list is not part of a build
            for path in sorted((layout.DATA / name).rglob("*")):
                if path.is_file():
                    digest.update(str(path.relative_to(layout.DATA)).encode() + b"\0")
                    digest.update(path.read_bytes())
    else:
        digest.update(Path(rules_path).read_bytes())
    return digest.hexdigest()[:16]


class CheckCache:
    def __init__(self, root: Path):
        self.root = Path(root).absolute()
        self.state_dir = self.root / "state"
        self._lock_fd: int | None = None

    @contextlib.contextmanager
    def locked(self) -> Iterator[CheckCache]:
        """Hold the cache for this check; CacheBusy when another check holds it."""
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                raise CacheBusy(f"{self.root} is in use by another bpbot check") from exc
            yield self
        finally:
            os.close(fd)  # releases the lock

    def sample_rules(self) -> config.Rules:
        """The default rules over the bundled sample, laid out here once: made
        beside and renamed into place, so a check killed halfway leaves no half
        tree that later checks would build."""
        sample = self.root / "sample"
        if not sample.is_dir():
            fresh = self.root / "sample.new"
            shutil.rmtree(fresh, ignore_errors=True)
            layout.prepare(fresh, with_list=False)
            fresh.rename(sample)
        return layout.prepare(sample, with_list=False)

    def link_shared(self, scratch_state: Path) -> None:
        """The scratch state's ccache and warm-tree dirs are the cache's
        (bot/testrun/build.py uses ``<state_dir>/ccache``, bot/testrun/warm.py
        ``<state_dir>/warm``); only base builds write them."""
        scratch_state.mkdir(parents=True, exist_ok=True)
        for name in ("ccache", "warm"):
            (self.state_dir / name).mkdir(parents=True, exist_ok=True)
            (scratch_state / name).symlink_to(self.state_dir / name)

    def load_into(self, scratch: State) -> set[str]:
        """Copy every cached baseline row into ``scratch``; their keys."""
        rows = State(self.state_dir / "bpbot.sqlite").query("SELECT * FROM baselines")
        with scratch.tx() as db:
            for row in rows:
                _insert(db, row)
        return {r["key"] for r in rows}

    def save_from(self, scratch: State, scratch_state: Path, known: set[str]) -> int:
        """Copy the baseline rows this check made (and their logs) into the cache."""
        new = [r for r in scratch.query("SELECT * FROM baselines") if r["key"] not in known]
        logs_from = scratch_state / "work" / "baselines"
        logs_to = self.state_dir / "work" / "baselines"
        for row in new:
            path = Path(row["log_path"]) if row["log_path"] else None
            if path is not None and path.is_relative_to(logs_from):
                kept = logs_to / path.relative_to(logs_from)
                if path.parent.is_dir():
                    shutil.copytree(path.parent, kept.parent, dirs_exist_ok=True)
                row["log_path"] = str(kept)
        cache = State(self.state_dir / "bpbot.sqlite")
        with cache.tx() as db:
            for row in new:
                _insert(db, row)
        return len(new)


def _insert(db, row: dict) -> None:
    names = list(row)
    db.conn.execute(f"INSERT OR REPLACE INTO baselines ({', '.join(names)}) VALUES"
                    f" ({', '.join('?' * len(names))})", [row[n] for n in names])

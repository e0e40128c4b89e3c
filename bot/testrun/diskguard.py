"""What one run may write: ``[limits] run_disk``.

Before a run: the state dir's filesystem must have ``run_disk`` free, else
the run waits (an infra-error with the reason, retried later). During the
generate and build steps: a watch measures the run's writable dirs (the
generated package and the build dirs) and stops the step when they pass
``run_disk``. The measure never follows a symlink and counts the blocks a
file really uses (a sparse file counts what it holds), each inode once.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from bot.sandbox import cleanup

log = logging.getLogger(__name__)

WATCH_SECONDS = 2.0  # how often a running step's dirs are measured
MiB = 1024 ** 2


def size_text(n: int) -> str:
    return f"{n / 1024 ** 3:.1f} GiB" if n >= 1024 ** 3 else f"{n / MiB:.1f} MiB"


def usage(paths: Iterable[Path]) -> int:
    """Bytes on disk under ``paths`` (like ``du -s``), without following links.

    Iterative (a tree nested thousands deep is no recursion problem); entries
    that vanish while it looks are skipped.
    """
    seen: set[tuple[int, int]] = set()
    total = 0
    stack = [str(p) for p in paths]
    while stack:
        top = stack.pop()
        try:
            st = os.lstat(top)
        except OSError:
            continue
        if (st.st_dev, st.st_ino) in seen:
            continue
        seen.add((st.st_dev, st.st_ino))
        total += st.st_blocks * 512
        if not stat.S_ISDIR(st.st_mode):
            continue
        try:
            with os.scandir(top) as entries:
                stack.extend(entry.path for entry in entries)
        except OSError:
            continue
    return total


def shortage(state_dir: Path, run_disk: int) -> str:
    """Why a run cannot start for lack of disk space, or "" when it can."""
    if not run_disk:
        return ""
    try:
        free = shutil.disk_usage(state_dir).free
    except OSError as exc:
        return f"cannot read the free space of {state_dir}: {exc.strerror or exc}"
    if free >= run_disk:
        return ""
    return (f"only {size_text(free)} free on the filesystem of {state_dir}; a run needs "
            f"[limits] run_disk = {size_text(run_disk)}")


class DiskWatch:
    """For ``proc.run(watch=...)``: "" while ``paths`` hold at most ``limit`` bytes,
    else the reason to stop. Measured at most every WATCH_SECONDS, shared by the
    builds that run at once; never raises (a broken watch must not leave a step
    running unwatched with an exception in its reader)."""

    def __init__(self, paths: Iterable[Path], limit: int, every: float | None = None):
        self.paths = list(paths)
        self.limit = limit
        self.every = WATCH_SECONDS if every is None else every
        self._lock = threading.Lock()
        self._next = 0.0
        self._verdict = ""

    def __call__(self) -> str:
        if not self.limit:
            return ""
        with self._lock:
            if self._verdict or time.monotonic() < self._next:
                return self._verdict
            try:
                used = usage(self.paths)
            except Exception:  # noqa: BLE001 - see the class docstring
                log.exception("measuring %s failed", self.paths)
                used = 0
            self._next = time.monotonic() + self.every
            if used > self.limit:
                self._verdict = (f"wrote more than run_disk ({size_text(used)} in the generated "
                                 f"package and build dirs; [limits] run_disk = "
                                 f"{size_text(self.limit)})")
                log.warning("stopping a step: it %s", self._verdict)
            return self._verdict


def clean(paths: Iterable[Path]) -> None:
    """Remove a run's regenerated dirs (never following links out of them, whatever
    the modes a series left inside); what cannot go is logged, and the next
    run's fresh_dir moves it aside."""
    for path in paths:
        try:
            cleanup.remove_tree(path)
        except OSError as exc:
            log.warning("cannot remove %s after the run: %s", path, exc)

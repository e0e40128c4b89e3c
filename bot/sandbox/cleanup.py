"""Fresh directories for a run, whatever the previous run left in them.

A generator or build may leave a directory it ``chmod 000``-ed (or one inside
another, or files with no permissions); ``shutil.rmtree(ignore_errors=True)``
then leaves it behind for a bot that is not root, and every later ``mkdir``
fails with "File exists". Here permissions are fixed first (``u+rwx`` on
every directory, walked without following symlinks), then the tree is
removed. If that still fails, the old directory is moved aside to a trash
name beside it (``.bpbot-trash-<name>-<id>``), which the next call tries to
remove again: one failed cleanup never blocks the runs after it.

Used by generate.py (the output dir), build.py (the build dirs) and
remote.py (a worker's slot).
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
import uuid
from pathlib import Path

from bot.errors import InfraError

log = logging.getLogger(__name__)

TRASH_PREFIX = ".bpbot-trash-"


class CleanupError(InfraError, OSError):
    """A directory could be neither removed nor moved aside: the bot's problem."""


def fresh_dir(path: Path) -> Path:
    """Make ``path`` an empty directory (its parents created) and return it.

    Raises CleanupError only when the old one can be neither removed nor
    moved aside (e.g. its parent is not writable).
    """
    path = Path(path)
    _empty_trash(path.parent)
    if path.exists() or path.is_symlink():
        try:
            remove_tree(path)
        except (OSError, RecursionError) as exc:
            _move_aside(path, exc)
    try:
        path.mkdir(parents=True)
    except OSError as exc:
        raise CleanupError(exc.errno, f"cannot make a fresh directory: {exc.strerror}",
                           str(path)) from exc
    return path


def remove_tree(path: Path) -> None:
    """Remove ``path`` (a file, a symlink or a directory tree) whatever the modes
    inside it; a missing path is fine. OSError when it cannot be removed."""
    path = Path(path)
    if path.is_symlink() or not path.is_dir():
        path.unlink(missing_ok=True)
        return
    _unlock(path)
    shutil.rmtree(path)


def _unlock(top: Path) -> None:
    """``u+rwx`` on every directory under ``top`` (top included), so that it can be
    listed and emptied. Symlinks are never followed (lstat, then only real
    directories); nothing runs in the tree meanwhile (its command has ended and
    its cgroup was killed), so nothing can swap one in."""
    todo = [os.fspath(top)]
    while todo:  # a loop, not recursion: a hostile tree may be very deep
        current = todo.pop()
        try:
            mode = os.lstat(current).st_mode
            if not stat.S_ISDIR(mode):
                continue
            if mode & 0o700 != 0o700:
                os.chmod(current, stat.S_IMODE(mode) | 0o700)
            with os.scandir(current) as entries:
                todo += [e.path for e in entries if e.is_dir(follow_symlinks=False)]
        except FileNotFoundError:
            continue
        except OSError as exc:
            log.debug("cannot unlock %s: %s", current, exc)  # rmtree reports what it means


def _move_aside(path: Path, why: BaseException) -> None:
    trash = path.with_name(f"{TRASH_PREFIX}{path.name}-{uuid.uuid4().hex[:8]}")
    try:
        os.rename(path, trash)
    except OSError as exc:
        raise CleanupError(exc.errno, f"cannot remove ({why}) nor move aside: {exc.strerror}",
                           str(path)) from exc
    log.warning("cannot remove %s (%s); moved aside to %s, to be removed later", path, why, trash)


def _empty_trash(parent: Path) -> None:
    """Try again to remove what earlier calls moved aside in ``parent``."""
    try:
        trash = [p for p in parent.iterdir() if p.name.startswith(TRASH_PREFIX)]
    except OSError:
        return  # no parent yet: nothing moved aside there
    for old in trash:
        try:
            remove_tree(old)
            log.info("removed %s", old)
        except (OSError, RecursionError) as exc:
            log.warning("cannot remove %s yet: %s", old, exc)

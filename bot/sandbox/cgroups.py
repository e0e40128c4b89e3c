"""Per-command cgroups: who owns one, and how to empty and remove one.

Each sandboxed command runs in its own child cgroup (bot/sandbox/limits.py), named
``<pid>-<start>-<n>-<uuid>`` after the process that created it: its pid and
its start time (clock ticks after boot, field 22 of ``/proc/<pid>/stat``),
so that a reused pid is never taken for the owner. A child is *stale* when
its owner is gone; only stale children are killed by a sweep, so several
bots (or test runs) on one machine never kill each other's commands.

Processes are killed by cgroup, never by parent-death signals alone: a
SIGKILL of bubblewrap's launcher at the wrong moment leaves its clone
waiting forever (bubblewrap issue 633), outside the launcher's process
group and session. ``cgroup.kill`` on cgroup v2; on v1, every pid of
``cgroup.procs`` is killed until none is left.

Low level on purpose: proc.run uses it at a command's timeout, limits.py
for the sweeps; it imports nothing of the bot.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import signal
import time
from pathlib import Path

from bot.errors import InfraError

log = logging.getLogger(__name__)

# The prefix (argv[0:3]) that runs a command in a fresh child cgroup; argv[4]
# is the child. Enter the cgroup, run the command, remove the (then empty)
# cgroup. The outer shell stays outside the cgroup so that it can rmdir it;
# when it is killed too (a timeout, a crash), proc.run or the next sweep
# empties and removes the cgroup.
ENTER = (
    'cg=$1; max=$2; shift 2; '
    'mkdir "$cg" && echo "$max" > "$cg/pids.max" || '
    '{ echo "bpbot: cannot create pids cgroup $cg" >&2; exit 125; }; '
    'sh -c \'echo $$ > "$0/cgroup.procs" && exec "$@"\' "$cg" "$@"; rc=$?; '
    'rmdir "$cg" 2>/dev/null; exit $rc'
)
KILL_WAIT = 10.0  # seconds for killed processes to leave their cgroup
# A sandbox's pid 1 may still be exiting (reaping the rest of its pid
# namespace) when its launcher has returned: a finished command's cgroup gets
# this long to empty itself before what is left counts as left running.
LINGER = 0.5


class CgroupError(InfraError, OSError):
    """A cgroup could not be emptied or removed."""


def enter_argv(child: Path, max_pids: int) -> list[str]:
    return ["sh", "-c", ENTER, "sh", str(child), str(max_pids)]


def child_of(argv: list[str]) -> Path | None:
    """The per-command cgroup of an argv made by :func:`enter_argv`, else None."""
    if len(argv) > 5 and argv[0] == "sh" and argv[1] == "-c" and argv[2] == ENTER:
        return Path(argv[4])
    return None


def start_time(pid: int) -> int | None:
    """Field 22 of /proc/<pid>/stat (after the command name, which may hold spaces)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat.rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


_own_tag: tuple[int, str] = (0, "")


def owner_tag() -> str:
    """``<pid>-<start>`` of this process: the start of its children's names
    (read once per process; a fork gets its own)."""
    global _own_tag
    pid = os.getpid()
    if _own_tag[0] != pid:
        _own_tag = (pid, f"{pid}-{start_time(pid) or 0}")
    return _own_tag[1]


def owner_alive(name: str) -> bool | None:
    """Is the process that created the child ``name`` still running?

    ``<pid>-<start>-<n>-<uuid>``: alive when that pid runs with that start
    time. The older ``<pid>-<n>-<uuid>``: alive when the pid runs (it may be
    a reused pid: then the child stays until that process ends). None for a
    name of neither form: not ours to judge.
    """
    parts = name.split("-")
    if len(parts) not in (3, 4) or not all(p.isdigit() for p in parts[:len(parts) - 1]):
        return None
    pid = int(parts[0])
    if pid <= 0:
        return False
    started = start_time(pid)
    if started is None:
        return False
    return len(parts) == 3 or started == int(parts[1])


def processes(group: Path) -> list[int]:
    """Every pid in ``group`` and its sub-groups ([] when it does not exist)."""
    pids: list[int] = []
    with contextlib.suppress(FileNotFoundError):
        for line in (group / "cgroup.procs").read_text().split():
            pids.append(int(line))
        for sub in group.iterdir():
            if sub.is_dir() and not sub.is_symlink():
                pids += processes(sub)
    return pids


def wait_empty(group: Path, seconds: float) -> bool:
    """Wait up to ``seconds`` for the processes of ``group`` to end on their own."""
    deadline = time.monotonic() + seconds
    while processes(group):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)
    return True


def kill(group: Path, wait: float = KILL_WAIT) -> int:
    """SIGKILL every process in ``group`` until none is left; how many were killed.

    A process forking meanwhile is caught by the next round (the pids limit
    bounds them). Raises CgroupError when some still run after ``wait``.
    """
    killer = group / "cgroup.kill"
    if killer.exists():  # cgroup v2, Linux 5.14+: the kernel does it, subtree included
        with contextlib.suppress(OSError):
            killer.write_text("1")
    killed: set[int] = set()
    deadline = time.monotonic() + wait
    while pids := processes(group):
        if time.monotonic() > deadline:
            raise CgroupError(errno.EBUSY, f"{len(pids)} processes still running after "
                              f"{wait:g}s of SIGKILL", str(group))
        for pid in _kill_members(group, pids):
            killed.add(pid)
        time.sleep(0.005)
    return len(killed)


def _kill_members(group: Path, pids: list[int]) -> list[int]:
    """SIGKILL the pids still in ``group``, through pidfds so that a pid that ended
    and was reused meanwhile is never hit."""
    fds: dict[int, int] = {}
    try:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                fds[pid] = os.pidfd_open(pid)
        current = set(processes(group))  # checked after the pidfds pin the processes
        hit = []
        for pid, fd in fds.items():
            if pid in current:
                with contextlib.suppress(ProcessLookupError):
                    signal.pidfd_send_signal(fd, signal.SIGKILL)
                    hit.append(pid)
        return hit
    finally:
        for fd in fds.values():
            os.close(fd)


def remove(group: Path, wait: float = 2.0) -> None:
    """rmdir ``group`` and its sub-groups (bottom up); gone already is fine."""
    with contextlib.suppress(FileNotFoundError):
        for sub in group.iterdir():
            if sub.is_dir() and not sub.is_symlink():
                remove(sub, wait)
    deadline = time.monotonic() + wait
    while True:
        try:
            group.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError as exc:
            # EBUSY for a moment while killed processes finish exiting.
            if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                raise CgroupError(exc.errno, f"cannot remove: {exc.strerror}", str(group)) from exc
            time.sleep(0.01)


def kill_and_remove(group: Path) -> int:
    """Empty ``group`` by SIGKILL and remove it; how many processes were killed."""
    killed = kill(group)
    remove(group)
    return killed

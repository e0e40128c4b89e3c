"""Resource limits for untrusted generation and builds.

``prlimit`` (util-linux) sets address space, CPU time, file size, open files
and core size on the sandboxed command. Against fork bombs a per-command
pids cgroup is used when the host lets us create one (cgroup v1 ``pids``
hierarchy, or cgroup v2 with the pids controller at the root), because
RLIMIT_NPROC is not enforced for processes whose real uid is 0 outside the
user namespace, which is what a bot running as root gets. Without a pids
cgroup the rlimit is still set: it works when the bot does not run as root.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

GiB = 1024 ** 3


@dataclass(frozen=True)
class Limits:
    """Per-command limits; 0 means "no limit" for each."""

    address_space: int = 4 * GiB      # RLIMIT_AS, bytes, per process
    cpu_seconds: int = 1800           # RLIMIT_CPU, per process (the wall timeout covers all)
    file_size: int = 1 * GiB          # RLIMIT_FSIZE, largest file a build may write
    pids: int = 512                   # processes and threads of one command, all together
    open_files: int = 1024            # RLIMIT_NOFILE
    tmp_size: int = 1 * GiB           # the private /tmp (a tmpfs, in memory)

    def prlimit_args(self, prlimit: str, with_nproc: bool) -> list[str]:
        """``prlimit --as=... -- `` (to be followed by the command)."""
        args = [prlimit, "--core=0"]
        for flag, value in (("--as", self.address_space), ("--cpu", self.cpu_seconds),
                            ("--fsize", self.file_size), ("--nofile", self.open_files)):
            if value:
                args.append(f"{flag}={value}")
        if with_nproc and self.pids:
            args.append(f"--nproc={self.pids}")
        return args + ["--"]

    def describe(self) -> str:
        def size(n: int) -> str:
            return f"{n / GiB:g} GiB" if n >= GiB else f"{n / 1024 ** 2:g} MiB"
        parts = [f"address space {size(self.address_space) if self.address_space else 'unlimited'}",
                 f"CPU {self.cpu_seconds or 'unlimited'}s",
                 f"file size {size(self.file_size) if self.file_size else 'unlimited'}",
                 f"{self.pids or 'unlimited'} pids"]
        return ", ".join(parts)


def from_rules(rules) -> Limits:
    """The ``[limits]`` build limits of the rules (defaults for rules without them)."""
    d = Limits()
    return Limits(
        address_space=getattr(rules, "build_address_space", d.address_space),
        cpu_seconds=getattr(rules, "build_cpu_seconds", d.cpu_seconds),
        file_size=getattr(rules, "build_file_size", d.file_size),
        pids=getattr(rules, "build_pids", d.pids),
        open_files=getattr(rules, "build_open_files", d.open_files),
        tmp_size=getattr(rules, "build_tmp_size", d.tmp_size),
    )


# Enter the cgroup, run the command, remove the (then empty) cgroup. The outer
# shell stays outside the cgroup so that it can rmdir it; a SIGKILL of the
# whole process group (a timeout) leaves an empty cgroup behind, which the
# next sweep removes.
_ENTER = (
    'cg=$1; max=$2; shift 2; '
    'mkdir "$cg" && echo "$max" > "$cg/pids.max" || '
    '{ echo "bpbot: cannot create pids cgroup $cg" >&2; exit 125; }; '
    'sh -c \'echo $$ > "$0/cgroup.procs" && exec "$@"\' "$cg" "$@"; rc=$?; '
    'rmdir "$cg" 2>/dev/null; exit $rc'
)
SWEEP_AGE = 120.0  # an empty child this old is a leftover, not one about to be entered


class PidsCgroup:
    """A parent cgroup under which each sandboxed command gets its own child."""

    _counter = itertools.count()

    def __init__(self, parent: Path):
        self.parent = parent
        self._last_sweep = 0.0

    @classmethod
    def detect(cls, name: str = "bpbot") -> PidsCgroup | None:
        """A working pids cgroup parent, or None (probed with a real process)."""
        for root in _pids_roots():
            parent = root / name
            try:
                parent.mkdir(exist_ok=True)
            except OSError:
                continue
            group = cls(parent)
            if group._probe():
                group.sweep(force=True)
                return group
        return None

    def _probe(self) -> bool:
        from . import proc  # late: proc does not need limits
        try:
            res = proc.run(self.argv(2) + ["true"], timeout=10)
        except proc.ProcError:
            return False
        if not res.ok:
            log.debug("pids cgroup %s does not work: %s", self.parent, res.output.strip())
        return res.ok

    def argv(self, max_pids: int) -> list[str]:
        """Prefix that runs a command inside a fresh child cgroup with ``pids.max``."""
        self.sweep()
        child = self.parent / f"{os.getpid()}-{next(self._counter)}-{uuid.uuid4().hex[:8]}"
        return ["sh", "-c", _ENTER, "sh", str(child), str(max_pids)]

    def sweep(self, force: bool = False) -> int:
        """Remove empty children left by commands killed at their timeout."""
        if not force and time.monotonic() - self._last_sweep < SWEEP_AGE / 2:
            return 0
        self._last_sweep = time.monotonic()
        removed = 0
        try:
            children = [c for c in self.parent.iterdir() if c.is_dir()]
        except OSError:
            return 0
        for child in children:
            with contextlib.suppress(OSError):
                if time.time() - child.stat().st_mtime < SWEEP_AGE:
                    continue
                child.rmdir()  # EBUSY while something still runs in it
                removed += 1
        return removed


def _pids_roots() -> list[Path]:
    roots = []
    v1 = Path("/sys/fs/cgroup/pids")
    if (v1 / "cgroup.procs").exists():
        roots.append(v1)
    v2 = Path("/sys/fs/cgroup")
    with contextlib.suppress(OSError):
        controllers = (v2 / "cgroup.subtree_control").read_text().split()
        if "pids" in controllers:
            roots.append(v2)
    return roots


def prlimit_binary() -> str | None:
    return shutil.which("prlimit")

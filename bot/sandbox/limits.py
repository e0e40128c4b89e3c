"""Resource limits for untrusted generation and builds.

``prlimit`` (util-linux) sets address space, CPU time, file size, open files
and core size on the sandboxed command. Against fork bombs a per-command
pids cgroup is used when the host lets us create one (cgroup v1 ``pids``
hierarchy; cgroup v2 under the service's own cgroup when it is delegated,
else under the root when its pids controller is on), because
RLIMIT_NPROC is not enforced for processes whose real uid is 0 outside the
user namespace, which is what a bot running as root gets. Without a pids
cgroup the rlimit is still set: it works when the bot does not run as root.

The per-command cgroups are also how processes are killed: at a command's
timeout (bot/sandbox/proc.py) and, for commands of a bot that is gone, at the next
start (bot/sandbox/cgroups.py says why parent-death signals are not enough).
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

from bot.config.rules import Rules
from bot.config.schema import LIMITS
from bot.sandbox import cgroups, proc

log = logging.getLogger(__name__)

GiB = 1024 ** 3


@dataclass(frozen=True)
class Limits:
    """Per-command limits; 0 means "no limit" for each. The defaults are the
    rules' [limits] defaults (bot/config/schema.py LimitsTable)."""

    address_space: int = LIMITS.build_address_space  # RLIMIT_AS, bytes, per process
    cpu_seconds: int = LIMITS.build_cpu_time          # RLIMIT_CPU, per process (the wall timeout covers all)
    file_size: int = LIMITS.build_file_size           # RLIMIT_FSIZE, largest file a build may write
    pids: int = LIMITS.build_pids                     # processes and threads of one command, all together
    open_files: int = LIMITS.build_open_files         # RLIMIT_NOFILE
    tmp_size: int = LIMITS.build_tmp_size             # the private /tmp (a tmpfs, in memory)

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


def from_rules(rules: Rules) -> Limits:
    """The ``[limits]`` build limits of the rules."""
    return Limits(address_space=rules.build_address_space, cpu_seconds=rules.build_cpu_seconds,
                  file_size=rules.build_file_size, pids=rules.build_pids,
                  open_files=rules.build_open_files, tmp_size=rules.build_tmp_size)


SWEEP_AGE = 120.0  # an empty child of a live owner this old is a leftover, not one about to be entered
V2_DAEMON_LEAF = "bpbot-daemon"  # on cgroup v2, where the service's own processes move


@dataclass(frozen=True)
class Candidate:
    """A place for the per-command cgroups: ``parent``; on cgroup v2 ``service`` is
    the service's own cgroup the parent is nested in (None: at the root)."""

    parent: Path
    v2: bool
    service: Path | None = None


class PidsCgroup:
    """A parent cgroup under which each sandboxed command gets its own child."""

    _counter = itertools.count()

    def __init__(self, parent: Path):
        self.parent = parent
        self._last_sweep = 0.0

    @classmethod
    def detect(cls, name: str = "bpbot") -> PidsCgroup | None:
        """A working pids cgroup parent, or None (probed with a real process).

        At start this also sweeps the children whose owner is gone: their
        processes are killed and the children removed.
        """
        for candidate in pids_candidates(name):
            try:
                prepare(candidate)
            except OSError as exc:
                log.debug("pids cgroup %s not usable: %s", candidate.parent, exc)
                continue
            group = cls(candidate.parent)
            if group._probe():
                group.sweep(force=True)
                return group
        return None

    def _probe(self) -> bool:
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
        child = self.parent / f"{cgroups.owner_tag()}-{next(self._counter)}-{uuid.uuid4().hex[:8]}"
        return cgroups.enter_argv(child, max_pids)

    def sweep(self, force: bool = False) -> int:
        """Kill and remove the children whose owner is gone; remove empty old
        children of live owners (left by a kill of the whole chain). Returns
        how many children were removed. A live owner's running command is
        never touched."""
        if not force and time.monotonic() - self._last_sweep < SWEEP_AGE / 2:
            return 0
        self._last_sweep = time.monotonic()
        try:
            children = [c for c in self.parent.iterdir() if c.is_dir()]
        except OSError as exc:
            log.warning("cannot list the pids cgroups in %s: %s", self.parent, exc)
            return 0
        return sum(1 for child in children if _sweep_one(child))


def _sweep_one(child: Path) -> bool:
    owner = cgroups.owner_alive(child.name)
    try:
        if owner is False:
            killed = cgroups.kill_and_remove(child)
            if killed:
                log.warning("killed %d processes left in %s by a process that is gone",
                            killed, child)
            return True
        if time.time() - child.stat().st_mtime < SWEEP_AGE or cgroups.processes(child):
            return False
        child.rmdir()  # EBUSY if something entered it meanwhile
        return True
    except FileNotFoundError:
        return False  # removed by its own command meanwhile
    except OSError as exc:
        log.warning("cannot sweep the pids cgroup %s: %s", child, exc)
        return False


def pids_candidates(name: str, fs: Path = Path("/sys/fs/cgroup"),
                    self_cgroup: str | None = None) -> list[Candidate]:
    """Where the per-command cgroups may go, best first.

    cgroup v2: under the service's own cgroup (from /proc/self/cgroup) when it
    is writable and has the pids controller, so that systemd's
    KillMode=control-group covers the commands too; else under the root.
    cgroup v1: under the root of the pids hierarchy.
    """
    out: list[Candidate] = []
    if (fs / "cgroup.controllers").exists():
        if self_cgroup is None:
            with contextlib.suppress(OSError):
                self_cgroup = Path("/proc/self/cgroup").read_text()
        own = _v2_path(self_cgroup or "")
        service = fs / own if own else None
        if service is not None and service.name == V2_DAEMON_LEAF:
            service = service.parent  # moved there by an earlier prepare()
        if service is not None and service != fs and os.access(service, os.W_OK) and \
                "pids" in _words(service / "cgroup.controllers"):
            out.append(Candidate(service / name, True, service))
        if "pids" in _words(fs / "cgroup.subtree_control"):
            out.append(Candidate(fs / name, True))
    v1 = fs / "pids"
    if (v1 / "cgroup.procs").exists():
        out.append(Candidate(v1 / name, False))
    return out


def prepare(candidate: Candidate) -> None:
    """Create the parent; on v2 enable the pids controller for its children.

    v2 lets a cgroup hand controllers to its children only while it has no
    processes of its own, so the service's processes first move to a leaf
    (``bpbot-daemon``) beside the parent; both stay in the service's subtree.
    """
    if candidate.service is not None and "pids" not in _words(
            candidate.service / "cgroup.subtree_control"):
        leaf = candidate.service / V2_DAEMON_LEAF
        leaf.mkdir(exist_ok=True)
        for pid in _words(candidate.service / "cgroup.procs"):
            with contextlib.suppress(ProcessLookupError):
                (leaf / "cgroup.procs").write_text(pid)
        (candidate.service / "cgroup.subtree_control").write_text("+pids")
    candidate.parent.mkdir(exist_ok=True)
    if candidate.v2 and "pids" not in _words(candidate.parent / "cgroup.subtree_control"):
        (candidate.parent / "cgroup.subtree_control").write_text("+pids")


def _v2_path(text: str) -> str:
    """The cgroup v2 path of ``0::/a/b`` in /proc/self/cgroup, without the leading /."""
    for line in text.splitlines():
        if line.startswith("0::"):
            return line[3:].strip().strip("/")
    return ""


def _words(path: Path) -> list[str]:
    try:
        return path.read_text().split()
    except OSError:
        return []


def prlimit_binary() -> str | None:
    return shutil.which("prlimit")

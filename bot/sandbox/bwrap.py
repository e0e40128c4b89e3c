"""Run untrusted generation and builds inside bubblewrap.

What a sandboxed command sees and may do:

- its own user namespace as uid/gid 1000 with every capability dropped
  (``--unshare-all --unshare-user --uid 1000 --gid 1000 --cap-drop ALL``):
  without this a sandbox started by root could remount its binds read-write;
  no further user namespaces inside (``--disable-userns`` where supported);
- no network (an own network namespace with only ``lo``), own pid, ipc, uts
  and cgroup namespaces; ``--die-with-parent --new-session``;
- a minimal root: the system dirs (/usr, /bin, /lib...), a short list of
  /etc files, the Python in use, read-only; ``/dev``, ``/proc``, a private
  ``/tmp``; nothing else of the host (no /root, /home, /srv, /var, /sys) --
  under the user namespace uid 1000 is root outside, so every root-owned
  file it could see would be readable;
- the paths of this very run: ``readonly`` ones read-only, ``writable`` ones
  read-write; the bot's state dir and secrets hidden even when one of those
  paths contains them;
- a clean environment (fixed PATH, C locale, HOME=/tmp);
- limits (bot/sandbox/limits.py): ``prlimit`` for address space, CPU time, file size
  and open files, and a pids cgroup per command against fork bombs; the
  cgroup is also how the command is killed (at its timeout, what it leaves
  behind, and at the next start what a crashed bot left: bot/sandbox/cgroups.py).

Without bubblewrap the bot refuses to start (a configuration error naming
``build.sandbox``) unless the rules say ``sandbox = "none"``.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from bot.errors import ConfigError
from bot.sandbox import limits as lim

log = logging.getLogger(__name__)

CLEAN_PATH = "/usr/local/bin:/usr/bin:/bin"
# Passed through when set: harmless and wanted by builds.
PASS_ENV = ("CCACHE_DIR",)
SANDBOX_UID = 1000
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# /etc entries a compiler, make, sh and Python need; the rest of /etc (shadow,
# ssh keys, server configs) stays out.
ETC_KEEP = ("alternatives", "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "passwd", "group",
            "nsswitch.conf", "localtime", "timezone", "os-release", "debian_version",
            "profile", "environment", "mime.types", "locale.alias", "gcc", "perl",
            "python3", f"python3.{sys.version_info.minor}")


class SandboxError(ConfigError):
    """The sandbox the rules ask for cannot run here; nothing starts."""

    def __init__(self, problem: str, file: str = "", key: str = "build.sandbox"):
        super().__init__(file or "(rules)", key, problem)


@dataclass
class Sandbox:
    mode: str  # "bwrap" or "none"
    hide: list[Path] = field(default_factory=list)  # state dir, rules, secrets
    limits: lim.Limits = field(default_factory=lim.Limits)
    pids_cgroup: lim.PidsCgroup | None = None
    prlimit: str | None = None
    disable_userns: bool = False

    @classmethod
    def detect(cls, requested: str, hide: list[Path], limits: lim.Limits | None = None,
               file: str = "") -> Sandbox:
        limits = limits or lim.Limits()
        prlimit = lim.prlimit_binary()
        cgroup = lim.PidsCgroup.detect() if limits.pids else None
        if requested == "none":
            box = cls("none", hide, limits, cgroup, prlimit)
            log.warning('sandbox = "none": patches are built WITHOUT a sandbox (%s)',
                        box.describe())
            return box
        if shutil.which("bwrap") is None:
            raise SandboxError(
                "bubblewrap (bwrap) is not installed, so untrusted patches cannot be built "
                "safely; install it (apt-get install bubblewrap) or set sandbox = \"none\" in "
                "[build] to build them unsandboxed", file)
        box = cls("bwrap", hide, limits, cgroup, prlimit)
        box.disable_userns = _bwrap_supports("--disable-userns")
        box._probe(file)
        log.info("sandbox: %s", box.describe())
        return box

    def describe(self) -> str:
        """One line for the start log: what confines a build here."""
        if self.mode == "none":
            what = "no sandbox"
        else:
            what = (f"bubblewrap as uid {SANDBOX_UID}, no capabilities, no network, "
                    "minimal read-only root, private /tmp")
        limits = self.limits.describe() if self.prlimit else "no prlimit: no rlimits"
        if self.pids_cgroup is not None:
            pids = f"pids cgroup {self.pids_cgroup.parent}"
        elif os.geteuid() == 0:
            pids = "NO pids limit (no usable pids cgroup, and RLIMIT_NPROC is not enforced " \
                   "for root): fork bombs stop only at the timeout"
        else:
            pids = "pids limited by RLIMIT_NPROC (shared with everything of this uid)"
        return f"{what}; {limits}; {pids}"

    def _probe(self, file: str) -> None:
        from bot.sandbox import proc
        argv, env = self.wrap(["true"], readonly=[], writable=[])
        try:
            res = proc.run(argv, env=env, timeout=30)
        except proc.ProcError as exc:
            raise SandboxError(f"bubblewrap cannot start: {exc}", file) from exc
        if not res.ok:
            raise SandboxError(
                f"bubblewrap does not work here ({res.output.strip()[-300:] or res.returncode}); "
                "fix the host (user namespaces) or set sandbox = \"none\"", file)

    def env(self) -> dict[str, str]:
        env = {k: os.environ[k] for k in PASS_ENV if k in os.environ}
        env.update(PATH=CLEAN_PATH, LC_ALL="C", LANG="C", HOME="/tmp", TMPDIR="/tmp")
        return env

    def wrap(self, args: list[str], *, readonly: list[Path], writable: list[Path],
             cwd: Path | None = None, masks: dict[Path, Path] | None = None
             ) -> tuple[list[str], dict[str, str]]:
        """Return (argv, env) running ``args`` confined to ``writable``."""
        args = [str(a) for a in args]
        for path in writable:
            Path(path).mkdir(parents=True, exist_ok=True)
        inner = (self.limits.prlimit_args(self.prlimit, with_nproc=self.pids_cgroup is None)
                 if self.prlimit else []) + args
        argv = inner if self.mode == "none" else \
            [*self._bwrap(readonly, writable, cwd, masks or {}), "--", *inner]
        if self.pids_cgroup is not None and self.limits.pids:
            argv = self.pids_cgroup.argv(self.limits.pids) + argv
        return argv, self.env()

    def _bwrap(self, readonly: list[Path], writable: list[Path], cwd: Path | None,
               masks: dict[Path, Path]) -> list[str]:
        """``masks``: files shown with another file's content (read-only), e.g. an
        empty file over a repository's config, which may hold credentials."""
        argv = ["bwrap", "--unshare-all", "--unshare-user", "--uid", str(SANDBOX_UID),
                "--gid", str(SANDBOX_UID), "--cap-drop", "ALL", "--die-with-parent",
                "--new-session"]
        if self.disable_userns:
            argv.append("--disable-userns")
        argv += ["--dev", "/dev", "--proc", "/proc"]
        if self.limits.tmp_size and _bwrap_supports("--size"):
            argv += ["--size", str(self.limits.tmp_size)]
        argv += ["--tmpfs", "/tmp"]
        # POSIX semaphores (Python's multiprocessing, which coccinelle's pycocci
        # uses) need a writable /dev/shm; it shares the /tmp size limit.
        if self.limits.tmp_size and _bwrap_supports("--size"):
            argv += ["--size", str(self.limits.tmp_size)]
        argv += ["--tmpfs", "/dev/shm"]
        for top in SYSTEM_DIRS:
            if os.path.islink(top):
                argv += ["--symlink", os.readlink(top), top]
            elif os.path.isdir(top):
                argv += ["--ro-bind", top, top]
        argv += ["--dir", "/etc"]
        for name in ETC_KEEP:
            argv += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
        mounts = [(Path(p), "ro") for p in _python_dirs()]
        mounts += [(Path(p).absolute(), "ro") for p in readonly]
        mounts += [(Path(p).absolute(), "rw") for p in writable]
        visible = [p for p, _ in mounts] + [Path(d) for d in SYSTEM_DIRS]
        for hidden in self.hide:
            hidden = Path(hidden).absolute()
            # Only hide what a bind would otherwise show.
            if any(hidden == v or v in hidden.parents for v in visible):
                mounts.append((hidden, "hide"))
        # Parents before children: a hidden state dir first, then this run's
        # own dirs inside it on top; a bound tree first, then its hidden parts.
        order = {"ro": 0, "rw": 0, "hide": 1}
        for path, kind in sorted(mounts, key=lambda m: (len(m[0].parts), order[m[1]])):
            argv += _mount(path, kind)
        for target, source in masks.items():
            if Path(target).exists():
                argv += ["--ro-bind", str(source), str(target)]
        # Read-only only now: the binds above may need mount points inside.
        for path, kind in mounts:
            if kind == "hide" and path.is_dir():
                argv += ["--remount-ro", str(path)]
        # The root and /dev are tmpfs (memory): nothing may be written there.
        argv += ["--remount-ro", "/dev", "--remount-ro", "/"]
        if cwd is not None:
            argv += ["--chdir", str(cwd)]
        return argv


def _mount(path: Path, kind: str) -> list[str]:
    p = str(path)
    if kind == "ro":
        return ["--ro-bind", p, p]
    if kind == "rw":
        return ["--bind", p, p]
    if path.is_dir():
        return ["--size", "4096", "--tmpfs", p] if _bwrap_supports("--size") else ["--tmpfs", p]
    if path.exists() or path.is_symlink():
        return ["--ro-bind", "/dev/null", p]
    return []


def _python_dirs() -> list[str]:
    """The interpreter for ``{python}``: the venv and the Python it was made from."""
    dirs: list[str] = []
    for prefix in (sys.prefix, sys.base_prefix, os.path.dirname(os.path.realpath(sys.executable))):
        if prefix and os.path.isdir(prefix) and \
                not any(prefix == d or prefix.startswith(d + "/") for d in [*SYSTEM_DIRS, *dirs]):
            dirs.append(prefix)
    return dirs


_HELP: list[str] = []  # bwrap --help, read once: every flag is looked up in it


def _bwrap_supports(flag: str) -> bool:
    if not _HELP:
        from bot.sandbox import proc
        try:
            _HELP.append(proc.run(["bwrap", "--help"], timeout=10).output)
        except proc.ProcError:
            _HELP.append("")
    return flag in _HELP[0]


def for_rules(rules) -> Sandbox:
    """The sandbox the rules ask for, hiding the bot's state, rules and secrets."""
    hide = [rules.state_dir, Path(rules.file)]
    hide += [p for p in (rules.source.password_file, rules.smtp.password_file) if p]
    return Sandbox.detect(rules.sandbox, hide, lim.from_rules(rules), file=rules.file)

"""Run untrusted generation and builds inside bubblewrap.

The sandbox sees the whole file system read-only, a private /tmp, no
network, and only its own output dir writable. The bot's state dir and
rules (where secrets live) are hidden behind empty tmpfs mounts, except for
the paths of this very run.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

SAFE_ENV = ("PATH", "LANG", "LC_ALL", "HOME", "TERM", "CCACHE_DIR")


@dataclass
class Sandbox:
    mode: str  # "bwrap" or "none"
    hide: list[Path] = field(default_factory=list)  # state dir, rules dir, secrets

    @classmethod
    def detect(cls, requested: str, hide: list[Path]) -> Sandbox:
        if requested == "none":
            log.warning("sandbox = \"none\": patches are built WITHOUT a sandbox")
            return cls("none", hide)
        if shutil.which("bwrap") is None:
            raise SandboxError(
                "bubblewrap (bwrap) is not installed; install it (apt-get install bubblewrap) "
                "or set sandbox = \"none\" in [build] to build untrusted patches unsandboxed")
        return cls("bwrap", hide)

    def wrap(self, args: list[str], *, readonly: list[Path], writable: list[Path],
             cwd: Path | None = None) -> tuple[list[str], dict[str, str]]:
        """Return (argv, env) running ``args`` confined to ``writable``."""
        env = {k: os.environ[k] for k in SAFE_ENV if k in os.environ}
        env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
        env.setdefault("LC_ALL", "C")
        if self.mode == "none":
            return args, env
        argv = ["bwrap", "--unshare-all", "--die-with-parent", "--new-session",
                "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]
        if os.geteuid() == 0:
            # As root, drop to an unprivileged uid inside a user namespace, so
            # the sandbox cannot remount the source read-write.
            argv += ["--unshare-user", "--uid", "1000", "--gid", "1000", "--cap-drop", "ALL"]
        for hidden in self.hide:
            if hidden.is_dir():
                argv += ["--tmpfs", str(hidden)]
            elif hidden.exists():
                argv += ["--ro-bind", "/dev/null", str(hidden)]
        for path in readonly:
            argv += ["--ro-bind", str(path), str(path)]
        for path in writable:
            path.mkdir(parents=True, exist_ok=True)
            argv += ["--bind", str(path), str(path)]
        if cwd is not None:
            argv += ["--chdir", str(cwd)]
        env["HOME"] = "/tmp"
        return argv + ["--", *args], env


class SandboxError(RuntimeError):
    pass


def for_rules(rules) -> Sandbox:
    """The sandbox the rules ask for, hiding the bot's state and secrets."""
    hide = [rules.state_dir]
    hide += [p for p in (rules.source.password_file, rules.smtp.password_file) if p]
    return Sandbox.detect(rules.sandbox, hide)

"""The shared compiler cache of the builds (ccache), and how a build uses it.

Only trusted builds (the base's, from the tree itself) write it; a series'
build reads it, so a hostile series cannot plant objects that later builds
would use.

ccache runs in its preprocessor mode: a compile is looked up by what the
preprocessor makes of the source (direct mode trusts the list of headers a
cached compile read, and a header added earlier on the include path, as
backport-include/ shadows the kernel's, would go unseen). The preprocessor's
output is hashed without line numbers and blank lines (``cpp-flat``, run by
ccache as ``prefix_command_cpp``; the files it enters and leaves, and the
source's own name, stay): a series that inserts lines a kernel never
compiles (a guarded block in the middle of a header) leaves that kernel's
code the same token for token, from the same files, and its objects (and
their dependency lists) come from the cache.
__LINE__ is expanded before the hash, so code that uses line numbers is
compiled again; a compile that misses runs on the real source
(``run_second_cpp``). A hit replays the cached compile's warnings, at its
line numbers: they are the base's, never new ones.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

BIN = "/usr/lib/ccache"  # Debian's masquerade dir: ccache in front of gcc/cc

# sh, run inside the build's sandbox as "cpp-flat <compiler> ... -E -o <file> <src>".
CPP_FLAT = r"""#!/bin/sh
# bpbot: ccache's preprocessor run; its output without line numbers, so that
# code the same token for token, from the same files, hashes the same: line
# markers without flags (a jump within a file) and blank lines go; the others
# (entering or leaving a file, a system header) keep their file's name and
# flags; the source's own name is added. A failure: ccache compiles for real.
out=
prev=
src=
for a; do [ "$prev" = "-o" ] && out=$a; prev=$a; src=$a; done
"$@" || exit
[ -n "$out" ] && [ "$out" != "-" ] || exit 0
LC_ALL=C sed -i -e '/^# [0-9]* "[^"]*"$/d' -e 's/^# [0-9]* "/# "/' \
    -e '/^[[:space:]]*$/d' "$out" || exit
# The assembler reads .include files itself, unseen by the hash: no cache.
! LC_ALL=C grep -q '[.]include' "$out" || exit 1
printf '# source "%s"\n' "$src" >> "$out"
"""


def cache_dir(state_dir: Path, wanted: bool) -> Path | None:
    """The cache under ``state_dir``, when the rules want it and ccache is installed."""
    if not wanted or not Path(BIN, "gcc").exists():
        return None
    path = state_dir / "ccache"
    path.mkdir(parents=True, exist_ok=True)
    return path


def tools_dir(state_dir: Path) -> Path:
    """``<state_dir>/tools`` with ``cpp-flat`` (read-only in every sandbox)."""
    tools = state_dir / "tools"
    script = tools / "cpp-flat"
    if not script.is_file() or script.is_symlink() or script.read_text() != CPP_FLAT:
        tools.mkdir(parents=True, exist_ok=True)
        # Builds run in parallel threads: each writes its own copy, then renames.
        fd, name = tempfile.mkstemp(prefix=".cpp-flat.", dir=tools)
        with os.fdopen(fd, "w") as f:
            f.write(CPP_FLAT)
        os.chmod(name, 0o755)
        os.replace(name, script)
    return tools


def build_env(env: dict[str, str], cache: Path, tools: Path, trusted: bool) -> dict[str, str]:
    """``env`` of a build that uses ``cache`` (written only when ``trusted``)."""
    env = dict(env)
    env["PATH"] = f"{BIN}:{env.get('PATH', '/usr/bin:/bin')}"
    env["CCACHE_DIR"] = str(cache)
    env["CCACHE_TEMPDIR"] = "/tmp"
    env["CCACHE_NODIRECT"] = "1"
    env["CCACHE_PREFIX_CPP"] = str(tools / "cpp-flat")
    env["CCACHE_CPP2"] = "1"
    if not trusted:
        env["CCACHE_READONLY"] = "1"
    return env

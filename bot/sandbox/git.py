"""git through the one subprocess wrapper, isolated from the host's config."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from bot.sandbox import proc

log = logging.getLogger(__name__)

GIT_TIMEOUT = 300


def env(name: str, address: str) -> dict[str, str]:
    """An environment for git with the bot's own identity and no host config."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    base.update(
        GIT_CONFIG_GLOBAL=os.devnull, GIT_CONFIG_NOSYSTEM="1",
        GIT_AUTHOR_NAME=name, GIT_AUTHOR_EMAIL=address,
        GIT_COMMITTER_NAME=name, GIT_COMMITTER_EMAIL=address,
        GIT_TERMINAL_PROMPT="0", LC_ALL="C",
    )
    return base


def git(repo: Path, *args: str, identity: tuple[str, str] = ("bpbot", "bpbot@localhost"),
        timeout: float = GIT_TIMEOUT, input_bytes: bytes | None = None,
        log_file: Path | None = None) -> proc.ProcResult:
    return proc.run(["git", "-C", str(repo), *args], timeout=timeout, env=env(*identity),
                    input_bytes=input_bytes, log_file=log_file)


def rev_parse(repo: Path, ref: str) -> str:
    res = git(repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    return res.output.strip() if res.ok else ""


READ_CAP = 1024 * 1024  # largest file the bot reads from a series' tree


def read_file(repo: Path, path: str, cap: int = READ_CAP) -> str | None:
    """A regular file of HEAD in ``repo``, from git's objects, never the file
    system: a series may turn any path into a symlink (to /dev/zero, to the
    bot's state) or a huge file. None for a symlink, a directory, a submodule,
    a missing path or one over ``cap`` bytes."""
    listing = git(repo, "--literal-pathspecs", "ls-tree", "-l", "-z", "HEAD", "--", path)
    entry = listing.output.split("\0", 1)[0] if listing.ok else ""
    meta, _, name = entry.partition("\t")
    fields = meta.split()
    if name != path or len(fields) != 4 or fields[0] not in ("100644", "100755") \
            or fields[1] != "blob":
        return None
    if not fields[3].isdigit() or int(fields[3]) > cap:
        log.warning("not reading %s from the series' tree: %s bytes is over %d", path, fields[3],
                    cap)
        return None
    blob = proc.run(["git", "-C", str(repo), "cat-file", "blob", fields[2]], timeout=GIT_TIMEOUT,
                    env=env("bpbot", "bpbot@localhost"), output_cap=cap + 1)
    return blob.output if blob.ok and not blob.truncated else None

"""git through the one subprocess wrapper, isolated from the host's config."""

from __future__ import annotations

import os
from pathlib import Path

from . import proc

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

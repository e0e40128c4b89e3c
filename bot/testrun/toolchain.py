"""What a run was built with, for the reply: the compiler's version line and
the upstream kernel source the package was generated from (``git describe``).

Best-effort and quick: a missing compiler or a non-git upstream leaves the
field empty and the reply says nothing of it. Only for local builds (an RQ
worker has its own compiler).
"""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path

from bot.config.rules import Rules
from bot.sandbox import git, proc

log = logging.getLogger(__name__)
TIMEOUT = 10.0


def compiler_version(cc: str = "gcc") -> str:
    """The first line of ``gcc --version``, e.g. 'gcc (Debian 12.2.0-14) 12.2.0'."""
    try:
        res = proc.run([cc, "--version"], timeout=TIMEOUT)
    except (OSError, proc.ProcError) as exc:
        log.debug("no compiler version: %s", exc)
        return ""
    return res.output.splitlines()[0].strip() if res.ok and res.output else ""


def upstream_version(upstream: Path | str | None) -> str:
    """The upstream source's tag (``git describe --tags``), e.g. 'v6.1.192'."""
    if not upstream or not Path(upstream, ".git").exists():
        return ""
    try:
        res = git.git(Path(upstream), "describe", "--tags", "--always", timeout=TIMEOUT)
    except proc.ProcError as exc:
        log.debug("no upstream version: %s", exc)
        return ""
    return res.output.strip().splitlines()[0] if res.ok and res.output.strip() else ""


def describe(rules: Rules) -> tuple[str, str]:
    """(compiler, upstream version) for a run's reply; '' for what is not known."""
    compiler = compiler_version() if rules.executor == "local" else ""
    return compiler, upstream_version(rules.upstream)


@functools.cache
def system_headers(cc: str = "gcc") -> frozenset[str]:
    """The headers of the compiler's own include dir (``stdarg.h``,
    ``ssp/string.h``): gcc's ``-MMD`` leaves them out of dependency files, so a
    package header that shadows one is seen by no dependency list."""
    try:
        res = proc.run([cc, "-print-file-name=include"], timeout=TIMEOUT)
    except (OSError, proc.ProcError) as exc:
        log.debug("no compiler include dir: %s", exc)
        return frozenset()
    top = res.output.strip() if res.ok else ""
    if not top or not os.path.isdir(top):
        return frozenset()
    return frozenset(str(p.relative_to(top)) for p in Path(top).rglob("*.h"))

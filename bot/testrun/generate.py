"""Generate: the rules' generator command into the run's output dir."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bot.config.rules import Rules, expand
from bot.sandbox import cleanup, proc
from bot.sandbox.bwrap import Sandbox
from bot.testrun.diagnostics import last_failure_lines
from bot.testrun.steps import FAILED, INFRA, SUCCESS, TIMEOUT, StepResult

log = logging.getLogger(__name__)


def generate(rules: Rules, sandbox: Sandbox, tree: Path, output: Path, log_file: Path,
             watch: Callable[[], str] | None = None) -> StepResult:
    """Run the generator into ``output``. The generator may write ``output``'s
    parent (a dir of its own: gentree.py removes and recreates its output dir,
    which a bind mount would refuse with EBUSY) and reads the worktree with its
    git metadata (gentree.py runs ``git describe`` there)."""
    started = time.time()
    try:
        empty_parent(output)
        output.mkdir()
    except (cleanup.CleanupError, OSError) as exc:
        return StepResult("generate", INFRA, detail=str(exc), started_at=started,
                          log_path=str(log_file))
    values = dict(tree=tree, output=output, upstream=rules.upstream or "", jobs=rules.build_jobs,
                  python=sys.executable)
    readonly = [tree, *git_metadata(tree)] + ([rules.upstream] if rules.upstream else [])
    # A repository's config may hold credentials (a token in a remote URL): the
    # generator sees an empty one (git needs none for describe/log).
    empty = _empty_file(output.parent)
    masks = {git / "config": empty for git in [*git_metadata(tree), *_git_dirs(rules.upstream)]}
    wrapped = [sandbox.wrap(expand(c, values), readonly=readonly, writable=[output.parent], cwd=tree,
                            masks=masks)
               for c in rules.generate_commands]
    env = wrapped[0][1]
    try:
        res = proc.run_all([argv for argv, _ in wrapped], cwd=tree, timeout=rules.generate_timeout, env=env,
                       output_cap=rules.output_cap, log_file=log_file, watch=watch)
    except proc.ProcError as exc:
        return StepResult("generate", INFRA, detail=str(exc), started_at=started,
                          log_path=str(log_file))
    if res.stopped:  # diskguard: it wrote more than [limits] run_disk
        status, detail = FAILED, res.stopped
    elif res.timed_out:
        status, detail = TIMEOUT, f"timed out after {rules.generate_timeout}s"
    elif res.ok and (output.is_symlink() or not output.is_dir()):
        # Builds bind the package by path and the bot reads it: a link would
        # point them at a host dir the sandbox hides.
        status, detail = FAILED, "the generator left no package dir (a symlink, or nothing)"
        return StepResult("generate", status, detail=detail, log_path=str(log_file),
                          duration=res.duration, started_at=started, tail=[detail])
    elif res.ok:
        status, detail = SUCCESS, f"{res.duration:.1f}s"
    else:
        status, detail = FAILED, f"exit {res.returncode}"
    return StepResult("generate", status, detail=detail, log_path=str(log_file),
                      duration=res.duration, started_at=started,
                      tail=[] if res.ok else last_failure_lines(res.output))


def empty_parent(output: Path) -> None:
    """``output``'s parent, the generator's own dir, emptied for a new package."""
    _claim(output.parent)
    cleanup.fresh_dir(output.parent)


def _claim(parent: Path) -> None:
    """``parent`` is emptied before each run: only a dir made for the generator
    (marked by a sibling file, out of the generator's reach), never one that
    holds anything else (a caller's mistake)."""
    mark = parent.with_name(parent.name + ".generator-dir")
    if parent.exists() and not mark.exists() and any(parent.iterdir()):
        raise OSError(f"{parent} holds other files: not emptied for the generator")
    parent.mkdir(parents=True, exist_ok=True)
    mark.touch()


def _empty_file(parent: Path) -> Path:
    """An empty file beside the generator's dir (out of its reach)."""
    empty = parent.with_name(parent.name + ".empty")
    if not empty.is_file() or empty.stat().st_size:
        empty.write_bytes(b"")
    return empty


def _git_dirs(top: Path | None) -> list[Path]:
    return [Path(top) / ".git"] if top and (Path(top) / ".git").is_dir() else []


def git_metadata(tree: Path) -> list[Path]:
    """The main repository's ``.git`` of a worktree (its ``.git`` is a file naming
    ``<main>/.git/worktrees/<name>``), so git commands work in it; [] otherwise."""
    try:
        text = (tree / ".git").read_text(encoding="utf-8", errors="replace")
    except OSError:  # a plain dir (a clone) or no git at all
        return []
    if not text.startswith("gitdir:"):
        return []
    gitdir = Path(text.split(":", 1)[1].strip())
    if not gitdir.is_absolute():
        gitdir = (tree / gitdir).resolve()
    return [gitdir.parent.parent] if gitdir.parent.name == "worktrees" else [gitdir]

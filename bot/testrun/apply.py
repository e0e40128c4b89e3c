"""Apply: a git worktree per run at the chosen base, then ``git am -3``."""

from __future__ import annotations

import logging
import re
import shutil
import signal
from dataclasses import dataclass, field
from pathlib import Path

from bot.config.rules import Rules
from bot.errors import ConfigError, InfraError
from bot.sandbox import git as g
from bot.sandbox import limits as lim
from bot.sandbox import proc
from bot.series import binpatch, diffinfo

log = logging.getLogger(__name__)


@dataclass
class Base:
    ref: str      # what we resolved (a branch name or the commit itself)
    commit: str   # full SHA
    reason: str   # why this base, for the reply


@dataclass
class ApplyResult:
    ok: bool
    applied: int = 0
    failed_patch: str = ""
    message: str = ""
    conflicts: list[str] | None = None
    log: str = ""
    refused: str = ""  # why it was not even tried (binpatch: a binary file over the limit)
    # Patches git am found already in the base ("No changes -- Patch already applied").
    already_applied: list[str] = field(default_factory=list)

    def nothing_new(self, worktree: Path, base_commit: str) -> bool:
        """Applied, but HEAD is still the base: every patch was already in it."""
        return self.ok and g.rev_parse(worktree, "HEAD") == base_commit


class BaseError(InfraError):
    """The run's worktree could not be made (the bot's fault: retried)."""


class LimitsError(InfraError):
    """``prlimit`` failed before ``git am`` ran (the bot's fault: retried)."""


def choose_base(rules: Rules, base_commit: str, tags: list[str]) -> Base:
    """base-commit when the tree has it, else the subject tag's branch, else the head.
    A branch the rules name that the tree lacks is a ConfigError: the series is
    answered NOT TESTED at once, not retried."""
    repo = rules.tree_path
    if base_commit:
        sha = g.rev_parse(repo, base_commit)
        # Only a commit on one of the tree's branches: the object store also holds
        # commits that `git am` made from untested (possibly hostile) series.
        branch = _branch_holding(rules, sha) if sha else None
        if branch:  # "Base: master at <sha> (base-commit ...)", not the sha twice
            return Base(branch, sha, "base-commit named in the series")
    for tag in tags:
        key = tag if tag in rules.tag_branches else tag.lower()
        branch = rules.tag_branches.get(key)
        if branch:
            sha = g.rev_parse(repo, branch)
            if not sha:
                raise ConfigError(rules.file, f"tree.tag_branches.{key}",
                                  f"branch {branch!r} for subject tag [{tag}] is not in the tree")
            return Base(branch, sha, f"branch for the subject tag [{tag}]")
    sha = g.rev_parse(repo, rules.tree_branch)
    if not sha:
        raise ConfigError(rules.file, "tree.branch", f"branch {rules.tree_branch!r} is not in "
                                                     f"the tree {repo}")
    why = f"head of {rules.tree_branch}"
    if base_commit:
        why += f" (base-commit {base_commit[:12]} is not on a branch of the tree)"
    return Base(rules.tree_branch, sha, why)


def _branch_holding(rules: Rules, sha: str) -> str | None:
    """The first of the tree's branches (the default one first) that holds ``sha``."""
    for branch in dict.fromkeys([rules.tree_branch, *rules.tag_branches.values()]):
        if g.git(rules.tree_path, "merge-base", "--is-ancestor", sha, branch).ok:
            return branch
    return None


def add_worktree(rules: Rules, base: Base, path: Path) -> None:
    remove_worktree(rules, path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # --force twice: also over a worktree a killed run left registered and locked.
    res = g.git(rules.tree_path, "worktree", "add", "--detach", "--force", "--force", str(path),
                base.commit)
    if not res.ok:
        raise BaseError(f"git worktree add failed: {res.output.strip()}")


def remove_worktree(rules: Rules, path: Path) -> None:
    if path.exists():
        g.git(rules.tree_path, "worktree", "unlock", str(path))  # a half-made one is locked
        g.git(rules.tree_path, "worktree", "remove", "--force", "--force", str(path))
        shutil.rmtree(path, ignore_errors=True)
    g.git(rules.tree_path, "worktree", "prune")


_PATCH_FAILED = re.compile(r"^Patch failed at (\d+) (.*)$", re.M)
_APPLYING = re.compile(r"^Applying: (.*)$", re.M)
_CONFLICT = re.compile(r"^CONFLICT \([^)]*\): .*? in (\S+)$", re.M)
_LACKING = re.compile(r"^error: sha1 information is lacking or useless \((.+)\)\.$", re.M)
_XFSZ = re.compile(rf"died of signal {int(signal.SIGXFSZ)}\b")  # a git child (mailsplit)
_ERR_PATCH = re.compile(r"^error: (?:patch failed|.*: does not exist in index|.*: No such file or directory|"
                        r"could not build fake ancestor).*$", re.M)


_NO_CHANGES = "No changes -- Patch already applied"


def already_applied(output: str) -> list[str]:
    """The subjects of the patches git am skipped as already in the base."""
    found, subject = [], ""
    for line in output.splitlines():
        if line.startswith("Applying: "):
            subject = line[len("Applying: "):].strip()
        elif line.startswith(_NO_CHANGES):
            found.append(subject)
    return found


def am(rules: Rules, worktree: Path, mbox: bytes, log_file: Path) -> ApplyResult:
    identity = (rules.bot_name, rules.bot_address)
    if refused := binpatch.over_limit(mbox):
        log_file.parent.mkdir(parents=True, exist_ok=True)
        log_file.write_text(f"not applied: {refused}\n", encoding="utf-8")
        return ApplyResult(ok=False, message=refused, refused=refused)
    res = _limited_am(rules, worktree, mbox, log_file, identity)
    applied = len(_APPLYING.findall(res.output))
    if not res.ok and not applied and (why := _prlimit_failed(rules, worktree, res)):
        raise LimitsError(f"git am did not run: {why}")
    if res.ok:
        return ApplyResult(ok=True, applied=applied, log=res.output,
                           already_applied=already_applied(res.output))
    failed = _PATCH_FAILED.search(res.output)
    conflicts = sorted(set(_CONFLICT.findall(res.output)))
    if not conflicts:
        unmerged = g.git(worktree, "diff", "--name-only", "--diff-filter=U")
        conflicts = [f for f in unmerged.output.split() if unmerged.ok]
    if not conflicts:
        conflicts = sorted(set(_LACKING.findall(res.output)))
    if not conflicts:
        conflicts = sorted({m.split(":")[2].strip() for m in _ERR_PATCH.findall(res.output)
                            if m.startswith("error: patch failed:") and m.count(":") >= 3})
    if failed and (named := diffinfo.patch_paths(mbox, int(failed.group(1)))):
        # git's 3-way merge may match a file the patch does not name (rename
        # detection): the reply names the patch's own files.
        conflicts = [c for c in conflicts if c in named] or named
    errors = [line for line in res.output.splitlines()
              if line.startswith(("error:", "fatal:", "CONFLICT"))]
    g.git(worktree, "am", "--abort", identity=identity)
    message = "git am timed out" if res.timed_out else "\n".join(errors[:8]) or res.output.strip()[-500:]
    if res.returncode == -signal.SIGXFSZ or _XFSZ.search(res.output):
        refused = (f"git am was stopped writing a file over [limits] build_file_size "
                   f"({rules.build_file_size / 1024 ** 2:g} MiB)")
        return ApplyResult(ok=False, message=refused, refused=refused, log=res.output)
    return ApplyResult(
        ok=False,
        applied=max(0, applied - 1) if failed else applied,
        failed_patch=f"{int(failed.group(1))} ({failed.group(2).strip()})" if failed else "",
        message=message, conflicts=conflicts, log=res.output,
    )


SYMLINK_MODE = "120000"


def symlinks(worktree: Path, base_commit: str) -> list[str]:
    """The paths the applied series leaves as symlinks (added, changed, or made
    from a file), from git's record of their modes: the links are not followed."""
    res = g.git(worktree, "diff", "--raw", "-z", "--no-renames", base_commit, "HEAD")
    if not res.ok:
        raise InfraError(f"git diff of the applied series failed: {res.output.strip()[-300:]}")
    fields = res.output.split("\0")
    return [path for meta, path in zip(fields[::2], fields[1::2], strict=False)
            if meta.startswith(":") and meta.split()[1:2] == [SYMLINK_MODE]]


def _limited_am(rules: Rules, worktree: Path, mbox: bytes, log_file: Path,
                identity: tuple[str, str]) -> proc.ProcResult:
    """``git am`` runs outside the sandbox, on the series' bytes: under the rules'
    address-space, file-size, CPU and open-files limits (``prlimit``), with git's
    pack windows kept small so that the address-space limit leaves it room."""
    args = _prlimit_prefix(rules) + [
        "git", "-C", str(worktree), "-c", "core.packedGitWindowSize=32m",
        "-c", "core.packedGitLimit=256m", "am", "-3", "--keep-cr"]
    return proc.run(args, timeout=rules.generate_timeout, env=g.env(*identity), input_bytes=mbox,
                    log_file=log_file)


def _prlimit_prefix(rules: Rules) -> list[str]:
    """``prlimit --as=... --`` with the rules' limits for git am; [] without prlimit."""
    limits = lim.from_rules(rules)
    prefix = lim.Limits(address_space=limits.address_space, cpu_seconds=limits.cpu_seconds,
                        file_size=limits.file_size, pids=0, open_files=limits.open_files)
    binary = lim.prlimit_binary()
    return prefix.prlimit_args(binary, with_nproc=False) if binary else []


def _prlimit_failed(rules: Rules, worktree: Path, res: proc.ProcResult) -> str:
    """Why prlimit, not the series, made git am fail; "" when git am ran.

    Called only when git am applied nothing (no "Applying:" line: a line of
    git's that starts with a path the series chose comes after one). prlimit's
    own errors start with "prlimit:"; a prlimit that fails without saying so
    fails again on a probe with the same limits that applies nothing."""
    prefix = _prlimit_prefix(rules)
    if not prefix or res.timed_out or res.stopped:
        return ""
    first = res.output.lstrip().partition("\n")[0].strip()
    if first.startswith("prlimit:"):
        return first
    probe = proc.run(prefix + ["git", "-C", str(worktree), "rev-parse", "HEAD"], timeout=60)
    if probe.ok:
        return ""
    said = probe.output.strip().splitlines()[-1:] or [f"exit status {probe.returncode}"]
    return f"prlimit with the same limits fails on git rev-parse: {said[0]}"

"""Baseline: the base commit generated and built on the same kernels.

Results are cached by (base commit, generator inputs, kernel, build
command), so one base is built once for many series.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bot.config.rules import Kernel, Rules
from bot.sandbox import git
from bot.sandbox.bwrap import Sandbox
from bot.state import State, dumps, loads, now
from bot.testrun import apply, executor, generate, verbatim, warm
from bot.testrun.diagnostics import Diagnostic
from bot.testrun.steps import FAILED, INFRA, SUCCESS, TIMEOUT

log = logging.getLogger(__name__)


@dataclass
class BaseResult:
    kernel: str
    status: str          # success, failed, timeout, infra-error
    stage: str           # "generate" or "build": where it ended
    detail: str = ""
    diagnostics: list[Diagnostic] = field(default_factory=list)
    log_path: str = ""
    cached: bool = False

    @property
    def broken(self) -> bool:
        return self.status != SUCCESS


@dataclass(frozen=True)
class WorkPaths:
    """Stable paths (the same for every run) so that ccache hits."""

    root: Path

    @property
    def src(self) -> Path:
        return self.root / "src"

    @property
    def base_src(self) -> Path:
        return self.root / "base-src"

    @property
    def out(self) -> Path:
        # Inside a dir of its own, which the generator may write: gentree.py
        # removes and recreates its output dir itself (a bind mount could not be).
        return self.root / "gen" / "out"

    @property
    def build(self) -> Path:
        return self.root / "build"


def generator_inputs(rules: Rules) -> str:
    upstream = ""
    if rules.upstream and (rules.upstream / ".git").exists():
        upstream = git.rev_parse(rules.upstream, "HEAD")
    return json.dumps([rules.generate_commands, str(rules.upstream or ""), upstream])


def cache_key(rules: Rules, base_commit: str, kernel: Kernel) -> str:
    raw = json.dumps([base_commit, generator_inputs(rules), kernel.name, kernel.version,
                      str(kernel.path), rules.build_commands])
    return hashlib.sha256(raw.encode()).hexdigest()


def package_key(rules: Rules, base_commit: str) -> str:
    """The key of a base's generated package (bot/testrun/warm.py)."""
    raw = json.dumps([base_commit, generator_inputs(rules)])
    return hashlib.sha256(raw.encode()).hexdigest()[:24]


def lookup(state: State, rules: Rules, base_commit: str, kernels: list[Kernel]) -> dict[str, BaseResult]:
    found = {}
    for kernel in kernels:
        row = state.one("SELECT * FROM baselines WHERE key = ?", (cache_key(rules, base_commit, kernel),))
        if row is not None:
            found[kernel.name] = BaseResult(
                kernel.name, row["status"], row["stage"], row["detail"],
                [Diagnostic.from_dict(d) for d in loads(row["diagnostics"], [])], row["log_path"],
                cached=True)
    return found


def ensure(state: State, rules: Rules, sandbox: Sandbox, base: apply.Base, kernels: list[Kernel],
           paths: WorkPaths, progress: Callable[[str], None] | None = None) -> dict[str, BaseResult]:
    """Base results for ``kernels``: from the cache, else generated and built now."""
    results = lookup(state, rules, base.commit, kernels)
    missing = [k for k in kernels if k.name not in results]
    if not missing:
        return results
    say = progress or (lambda text: None)
    say(f"baseline: build base {base.commit[:12]} on {', '.join(k.name for k in missing)}")
    fresh: dict[str, BaseResult] = {}
    apply.add_worktree(rules, base, paths.base_src)
    try:
        gen = generate.generate(rules, sandbox, paths.base_src, paths.out,
                                _logs(rules, base.commit) / "generate.log")
        if gen.status != SUCCESS:
            for k in missing:
                fresh[k.name] = BaseResult(k.name, gen.status, "generate", gen.detail,
                                           log_path=gen.log_path)
        else:
            _keep_package(rules, base.commit, paths)
            fresh = _build(rules, sandbox, base.commit, missing, paths.out, paths,
                           _logs(rules, base.commit))
    finally:
        apply.remove_worktree(rules, paths.base_src)
    _record(state, rules, base.commit, missing, fresh)
    results.update(fresh)
    return results


def ensure_built(state: State, rules: Rules, sandbox: Sandbox, base_commit: str,
                 kernels: list[Kernel], package: Path, paths: WorkPaths,
                 progress: Callable[[str], None] | None = None) -> dict[str, BaseResult]:
    """Base results for ``kernels`` built from the base's kept ``package`` (no
    generator run): for build commands other than the base's first ones, e.g.
    a widened config (bot/testrun/widen.py)."""
    results = lookup(state, rules, base_commit, kernels)
    missing = [k for k in kernels if k.name not in results]
    if missing:
        (progress or (lambda text: None))(
            f"baseline: build base {base_commit[:12]} on {', '.join(k.name for k in missing)}"
            " with these build commands")
        commands = hashlib.sha256(json.dumps(rules.build_commands).encode()).hexdigest()
        logs = _logs(rules, base_commit) / f"build-{commands[:12]}"
        fresh = _build(rules, sandbox, base_commit, missing, package, paths, logs)
        _record(state, rules, base_commit, missing, fresh)
        results.update(fresh)
    return results


def _logs(rules: Rules, base_commit: str) -> Path:
    return rules.state_dir / "work" / "baselines" / base_commit[:16]


def _build(rules: Rules, sandbox: Sandbox, base_commit: str, kernels: list[Kernel],
           package: Path, paths: WorkPaths, logs: Path) -> dict[str, BaseResult]:
    fresh = {}
    # The base is the tree's own code: its builds may fill the ccache.
    for step in executor.build_all(rules, sandbox, kernels, package, paths.build, logs,
                                   trusted=True):
        fresh[step.kernel] = BaseResult(step.kernel, step.status, "build", step.detail,
                                        step.diagnostics, step.log_path)
    _keep_builds(rules, base_commit, kernels, fresh, package, paths)
    return fresh


def _record(state: State, rules: Rules, base_commit: str, kernels: list[Kernel],
            fresh: dict[str, BaseResult]) -> None:
    """Cache the results; never a failure of the bot itself, nor a timeout (a loaded host)."""
    with state.tx() as db:
        for k in kernels:
            r = fresh[k.name]
            if r.status in (INFRA, TIMEOUT):
                continue
            db.conn.execute(
                "INSERT OR REPLACE INTO baselines (key, base_commit, kernel, status, stage, detail,"
                " diagnostics, log_path, created_at) VALUES (?,?,?,?,?,?,?,?,?)",
                (cache_key(rules, base_commit, k), base_commit, k.name, r.status, r.stage, r.detail,
                 dumps([d.to_dict() for d in r.diagnostics]), r.log_path, now()))


def _keep_package(rules: Rules, base_commit: str, paths: WorkPaths) -> None:
    """Snapshot the base package (bot/testrun/warm.py): series builds start from
    it, and coverage compares the series' package with it; a failure here only
    costs that."""
    if rules.executor != "local":
        return
    try:
        problem = verbatim.check(rules.generate_verbatim, paths.base_src, paths.out,
                                 rules.generate_verbatim_unless)
        if problem and rules.generate_verbatim:
            log.warning("base %s: [generate] verbatim does not hold (%s): series are generated",
                        base_commit[:12], problem)
        key = package_key(rules, base_commit)
        if warm.package(rules, key) is None:  # its mtimes are what the kept trees were built on
            warm.save_package(rules, key, base_commit, paths.out, problem)
    except OSError as exc:
        log.warning("base %s: package not kept: %s", base_commit[:12], exc)


def _keep_builds(rules: Rules, base_commit: str, kernels: list[Kernel],
                 fresh: dict[str, BaseResult], package: Path, paths: WorkPaths) -> None:
    """Snapshot each kernel's build dir for series builds to start from."""
    if not rules.build_reuse or rules.executor != "local":
        return
    try:
        for k in kernels:
            if fresh[k.name].status in (SUCCESS, FAILED):
                warm.save_build(rules, cache_key(rules, base_commit, k), base_commit, k,
                                paths.build / k.name, package)
    except OSError as exc:
        log.warning("base %s: warm trees not kept: %s", base_commit[:12], exc)

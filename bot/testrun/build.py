"""Build: the rules' build command per kernel, in parallel up to the job limit."""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from bot.config.rules import Kernel, Rules, expand
from bot.sandbox import cleanup, proc
from bot.sandbox.bwrap import Sandbox
from bot.testrun import ccache
from bot.testrun.diagnostics import last_failure_lines, parse
from bot.testrun.steps import FAILED, INFRA, SUCCESS, TIMEOUT, StepResult

log = logging.getLogger(__name__)
# (kernel, build dir) -> True when it laid out the build dir (an incremental build).
Prepare = Callable[[Kernel, Path], bool]


@dataclass(frozen=True)
class BuildSpec:
    """What one build reads of the rules: on this host taken from them, on an
    RQ worker (bot/testrun/remote.py) from the job and the worker's own dirs."""

    build_commands: list[list[str]]
    build_timeout: int
    output_cap: int
    ccache: bool
    state_dir: Path  # the ccache lives under it
    build_jobs: int  # builds at once on this host: {jobs} is the cores shared among them
    upstream: Path | None = None

    @classmethod
    def of(cls, rules: Rules) -> BuildSpec:
        return cls(build_commands=rules.build_commands, build_timeout=rules.build_timeout,
                   output_cap=rules.output_cap, ccache=rules.ccache, state_dir=rules.state_dir,
                   build_jobs=rules.build_jobs, upstream=rules.upstream)


def build_one(spec: BuildSpec | Rules, sandbox: Sandbox, kernel: Kernel, output: Path, build_dir: Path,
              log_file: Path, trusted: bool = False,
              watch: Callable[[], str] | None = None, prepare: Prepare | None = None) -> StepResult:
    """One build. Only ``trusted`` builds (the base, from the tree itself) may write
    to the shared ccache; a series' build reads it, so a hostile series cannot
    plant objects that later builds would use. ``prepare`` lays out the build dir
    (a copy of the base's warm tree: bot/testrun/warm.py); else it starts empty."""
    rules = spec if isinstance(spec, BuildSpec) else BuildSpec.of(spec)
    started = time.time()
    try:
        if prepare is not None and prepare(kernel, build_dir):
            log.info("build %s: incremental, from the base's build tree", kernel.name)
        else:
            cleanup.fresh_dir(build_dir)
        cache = ccache_dir(rules)
        tools = ccache.tools_dir(rules.state_dir) if cache else None
    except (cleanup.CleanupError, OSError) as exc:
        return StepResult("build", INFRA, kernel=kernel.name, detail=str(exc),
                          started_at=started, log_path=str(log_file))
    values = dict(output=output, tree=output, upstream=rules.upstream or "",
                  kernel_path=kernel.path, kernel_version=kernel.version, kernel_name=kernel.name,
                  build_dir=build_dir, jobs=make_jobs(rules), python=sys.executable)
    writable = [build_dir] + ([cache] if cache and trusted else [])
    readonly = [output, kernel.path] + ([cache] if cache and not trusted else []) + \
        ([tools] if tools else [])
    wrapped = [sandbox.wrap(expand(c, values), readonly=readonly, writable=writable, cwd=output)
               for c in rules.build_commands]
    env = dict(wrapped[0][1])
    if cache and tools:
        env = ccache.build_env(env, cache, tools, trusted)
    try:
        res = proc.run_all([argv for argv, _ in wrapped], cwd=output, timeout=rules.build_timeout, env=env,
                       output_cap=rules.output_cap, log_file=log_file, watch=watch)
    except proc.ProcError as exc:
        return StepResult("build", INFRA, kernel=kernel.name, detail=str(exc),
                          started_at=started, log_path=str(log_file))
    diags = parse(res.output, strip_prefixes=(str(output), str(build_dir), str(kernel.path)))
    if res.stopped:  # diskguard: it wrote more than [limits] run_disk
        status, detail = FAILED, res.stopped
    elif res.timed_out:
        status, detail = TIMEOUT, f"timed out after {rules.build_timeout}s"
    elif res.ok:
        status, detail = SUCCESS, _count(diags) or f"{res.duration:.1f}s"
    else:
        status, detail = FAILED, _count(diags) or f"exit {res.returncode}"
    return StepResult("build", status, kernel=kernel.name, detail=detail, diagnostics=diags,
                      log_path=str(log_file), duration=res.duration, started_at=started,
                      tail=[] if res.ok or diags else last_failure_lines(res.output))


CCACHE_BIN = ccache.BIN


def make_jobs(rules: BuildSpec | Rules) -> int:
    """{jobs} for one build: the cores shared among the builds that run at once."""
    return max(1, (os.cpu_count() or 1) // rules.build_jobs)


def ccache_dir(rules: BuildSpec) -> Path | None:
    """The shared compiler cache (bot/testrun/ccache.py), when the rules want it."""
    return ccache.cache_dir(rules.state_dir, rules.ccache)


def build_all(rules: Rules, sandbox: Sandbox, kernels: list[Kernel], output: Path,
              build_root: Path, log_dir: Path,
              progress: Callable[[str], None] | None = None,
              trusted: bool = False, watch: Callable[[], str] | None = None,
              prepare: Prepare | None = None) -> list[StepResult]:
    """Build on ``kernels`` in parallel on this host; build dirs at
    ``build_root/<kernel>``, which stay the same from run to run so that ccache
    hits. (bot/testrun/executor.py chooses between this and the RQ workers.)"""
    if not kernels:
        return []

    # {jobs}: the cores shared among the builds that run at once (one kernel
    # alone gets them all).
    spec = dataclasses.replace(BuildSpec.of(rules), build_jobs=min(rules.build_jobs, len(kernels)))

    def one(kernel: Kernel) -> StepResult:
        result = build_one(spec, sandbox, kernel, output, build_root / kernel.name,
                           log_dir / f"build-{kernel.name}.log", trusted, watch, prepare)
        if progress:
            progress(f"build {kernel.name}: {result.status} ({result.detail})")
        return result

    with ThreadPoolExecutor(max_workers=min(rules.build_jobs, len(kernels)),
                            thread_name_prefix="build") as pool:
        return list(pool.map(one, kernels))


def _count(diags) -> str:
    # The same diagnostic from a header compiled twice counts once (as in the verdict).
    unique = {(d.location(), d.severity, d.text) for d in diags}
    errors = sum(1 for _, severity, _ in unique if severity == "error")
    warnings = len(unique) - errors
    parts = []
    if errors:
        parts.append(f"{errors} error{'s' if errors != 1 else ''}")
    if warnings:
        parts.append(f"{warnings} warning{'s' if warnings != 1 else ''}")
    return ", ".join(parts)

"""Build: the rules' build command per kernel, in parallel up to the job limit."""

from __future__ import annotations

import logging
import shutil
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from . import proc
from .config import Kernel, Rules, expand
from .diagnostics import last_failure_lines, parse
from .sandbox import Sandbox
from .steps import FAILED, INFRA, SUCCESS, TIMEOUT, StepResult

log = logging.getLogger(__name__)


def build_one(rules: Rules, sandbox: Sandbox, kernel: Kernel, output: Path, build_dir: Path,
              log_file: Path) -> StepResult:
    started = time.time()
    shutil.rmtree(build_dir, ignore_errors=True)
    build_dir.mkdir(parents=True)
    values = dict(output=output, tree=output, upstream=rules.upstream or "",
                  kernel_path=kernel.path, kernel_version=kernel.version, kernel_name=kernel.name,
                  build_dir=build_dir, jobs=1, python=sys.executable)
    wrapped = [sandbox.wrap(expand(c, values), readonly=[output, kernel.path],
                            writable=[build_dir], cwd=output) for c in rules.build_commands]
    env = wrapped[0][1]
    try:
        res = proc.run_all([argv for argv, _ in wrapped], cwd=output, timeout=rules.build_timeout, env=env,
                       output_cap=rules.output_cap, log_file=log_file)
    except proc.ProcError as exc:
        return StepResult("build", INFRA, kernel=kernel.name, detail=str(exc),
                          started_at=started, log_path=str(log_file))
    diags = parse(res.output, strip_prefixes=(str(output), str(build_dir), str(kernel.path)))
    if res.timed_out:
        status, detail = TIMEOUT, f"timed out after {rules.build_timeout}s"
    elif res.ok:
        status, detail = SUCCESS, _count(diags) or f"{res.duration:.1f}s"
    else:
        status, detail = FAILED, _count(diags) or f"exit {res.returncode}"
    return StepResult("build", status, kernel=kernel.name, detail=detail, diagnostics=diags,
                      log_path=str(log_file), duration=res.duration, started_at=started,
                      tail=[] if res.ok or diags else last_failure_lines(res.output))


def build_all(rules: Rules, sandbox: Sandbox, kernels: list[Kernel], output: Path, workdir: Path,
              progress: Callable[[str], None] | None = None) -> list[StepResult]:
    def one(kernel: Kernel) -> StepResult:
        result = build_one(rules, sandbox, kernel, output, workdir / "build" / kernel.name,
                           workdir / "logs" / f"build-{kernel.name}.log")
        if progress:
            progress(f"build {kernel.name}: {result.status} ({result.detail})")
        return result

    with ThreadPoolExecutor(max_workers=rules.build_jobs, thread_name_prefix="build") as pool:
        return list(pool.map(one, kernels))


def _count(diags) -> str:
    errors = sum(1 for d in diags if d.severity == "error")
    warnings = len(diags) - errors
    parts = []
    if errors:
        parts.append(f"{errors} error{'s' if errors != 1 else ''}")
    if warnings:
        parts.append(f"{warnings} warning{'s' if warnings != 1 else ''}")
    return ", ".join(parts)

"""Generate: the rules' generator command into the run's output dir."""

from __future__ import annotations

import logging
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

from . import proc
from .config import Rules, expand
from .diagnostics import last_failure_lines
from .sandbox import Sandbox
from .steps import FAILED, INFRA, SUCCESS, TIMEOUT, StepResult

log = logging.getLogger(__name__)


def generate(rules: Rules, sandbox: Sandbox, tree: Path, output: Path, log_file: Path,
             watch: Callable[[], str] | None = None) -> StepResult:
    started = time.time()
    shutil.rmtree(output, ignore_errors=True)
    output.mkdir(parents=True)
    values = dict(tree=tree, output=output, upstream=rules.upstream or "", jobs=rules.build_jobs,
                  python=sys.executable)
    readonly = [tree] + ([rules.upstream] if rules.upstream else [])
    wrapped = [sandbox.wrap(expand(c, values), readonly=readonly, writable=[output], cwd=tree)
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
    elif res.ok:
        status, detail = SUCCESS, f"{res.duration:.1f}s"
    else:
        status, detail = FAILED, f"exit {res.returncode}"
    return StepResult("generate", status, detail=detail, log_path=str(log_file),
                      duration=res.duration, started_at=started,
                      tail=[] if res.ok else last_failure_lines(res.output))

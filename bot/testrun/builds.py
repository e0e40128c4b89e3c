"""The series' builds on a group of kernels under one set of build commands:
kernels on which nothing compiled depends on the change keep the base's
result (no build); the others are built, from the base's warm trees when the
plan says so."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from bot.config.rules import Kernel, Rules
from bot.sandbox.bwrap import Sandbox
from bot.testrun import baseline, executor, incremental
from bot.testrun.diagnostics import Diagnostic, mark_new
from bot.testrun.outcome import RunOutcome
from bot.testrun.steps import FAILED, SUCCESS, StepResult

log = logging.getLogger(__name__)

UNTOUCHED = "as the base: nothing it compiles changed"


def build_kernels(rules: Rules, sandbox: Sandbox, kernels: list[Kernel], plan: incremental.Plan,
                  base: dict[str, baseline.BaseResult], paths: baseline.WorkPaths, logs: Path,
                  say: Callable[[str], None], watch: Callable[[], str] | None,
                  outcome: RunOutcome) -> dict[str, StepResult]:
    """Each kernel's build step (``base``: the base's results under these rules)."""
    same = {k.name: _as_base(base[k.name]) for k in kernels
            if k.name in plan.untouched and k.name in base and not base[k.name].broken}
    outcome.compiled_as_base.update({name: plan.untouched[name] for name in same})
    outcome.config_dirs.update({name: plan.untouched_dirs[name] for name in same})
    kernels = [k for k in kernels if k.name not in same]
    say(f"build on {len(kernels)} kernel(s), {rules.build_jobs} at a time"
        + (f"; as the base on {', '.join(same)}" if same else ""))
    clock = time.monotonic()
    steps = executor.build_all(rules, sandbox, kernels, paths.out, paths.build, logs, say,
                               watch=watch, prepare=plan.prepare)
    if plan.prepare is not None and (again := _unexplained(kernels, steps, base)):
        # A failure from a warm copy with no error the base lacks may be the copy's
        # own (a path the build recorded elsewhere): never blamed before a clean build.
        log.warning("build %s failed from the base's tree without a new error: built clean",
                    ", ".join(k.name for k in again))
        say(f"build again clean on {', '.join(k.name for k in again)}")
        steps = [s for s in steps if s.kernel not in {k.name for k in again}] + \
            executor.build_all(rules, sandbox, again, paths.out, paths.build, logs, say,
                               watch=watch)
    outcome.timings["build"] = outcome.timings.get("build", 0.0) + time.monotonic() - clock
    return {**same, **{s.kernel: s for s in steps}}


def _unexplained(kernels: list[Kernel], steps: list[StepResult],
                 base: dict[str, baseline.BaseResult]) -> list[Kernel]:
    """Kernels whose build failed without an error the base does not have,
    where the base builds."""
    out = []
    for step in steps:
        known = base.get(step.kernel)
        if step.status != FAILED or known is None or known.broken:
            continue
        mark_new(step.diagnostics, known.diagnostics)
        if not any(d.new for d in step.errors):
            out += [k for k in kernels if k.name == step.kernel]
    return out


def _as_base(base: baseline.BaseResult) -> StepResult:
    return StepResult("build", SUCCESS, kernel=base.kernel, detail=UNTOUCHED,
                      diagnostics=[Diagnostic.from_dict(d.to_dict()) for d in base.diagnostics],
                      log_path=base.log_path)

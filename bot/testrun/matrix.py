"""The version matrix: one verdict per kernel against the base, the overall
verdict derived from it, and what changed since the previous version."""

from __future__ import annotations

from dataclasses import dataclass

from bot.config.rules import Kernel
from bot.model import VERDICT_LABELS, Verdict
from bot.testrun.baseline import BaseResult
from bot.testrun.diagnostics import mark_new
from bot.testrun.steps import INFRA, SKIPPED, TIMEOUT, StepResult

PASS, FAIL, BASE_FAILS, NOT_BUILT = Verdict.PASS, Verdict.FAIL, Verdict.BASE_FAILS, Verdict.NOT_BUILT
INFRA_ERROR = Verdict.INFRA_ERROR


@dataclass
class KernelResult:
    kernel: Kernel
    verdict: str       # pass, fail, base-fails, not-built, infra-error
    detail: str        # "2 new errors", the reason it was not built, ...
    why: str = ""      # why the subset chose it
    new_errors: int = 0
    new_warnings: int = 0

    def line(self) -> str:
        word = VERDICT_LABELS[self.verdict].word
        if self.verdict == NOT_BUILT:
            return f"{word}: {self.detail}"
        return f"{word} ({self.detail})" if self.detail else word


def _plural(n: int, word: str) -> str:
    return f"{n} new {word}{'s' if n != 1 else ''}"


def judge(kernel: Kernel, why: str, step: StepResult | None,
          base: BaseResult | None) -> KernelResult:
    """One kernel's verdict: only what the base does not have is the series' fault."""
    if step is None:
        # The pipeline gives every kernel a step; a missing one is the bot's bug.
        return KernelResult(kernel, NOT_BUILT, "no build result")
    if step.status == SKIPPED:
        return KernelResult(kernel, NOT_BUILT, step.detail, why)
    if step.status == INFRA:
        return KernelResult(kernel, INFRA_ERROR, step.detail, why)
    if base is not None and base.broken and step.broken:
        where = "generation" if base.stage == "generate" else base.detail
        return KernelResult(kernel, BASE_FAILS, where, why)
    if base is not None:
        mark_new(step.diagnostics, base.diagnostics)
    # The same diagnostic from a header included twice counts once.
    new_e = len({(d.location(), d.text) for d in step.errors if d.new})
    new_w = len({(d.location(), d.text) for d in step.warnings if d.new})
    if step.broken:
        detail = _plural(new_e, "error") if new_e and step.status != TIMEOUT else step.detail
        return KernelResult(kernel, FAIL, detail, why, new_e, new_w)
    detail = _plural(new_w, "warning") if new_w else ""
    if base is not None and base.broken:
        detail = "the base fails here, the series fixes it"
    return KernelResult(kernel, PASS, detail, why, new_e, new_w)


# Overall verdicts beyond the per-kernel ones: nothing was tested (with the
# cause), or only some kernels were (never a plain PASS).
NOT_TESTED, PARTIAL = Verdict.NOT_TESTED, Verdict.PARTIAL
BASE_DOES_NOT_GENERATE = "the base does not generate (not the series' fault)"


@dataclass
class Overall:
    verdict: str   # pass, fail, partial, not-tested, infra-error
    reason: str = ""  # for not-tested and partial: the cause, for the verdict line


def _by_detail(results: list[KernelResult]) -> str:
    """"kernel dir missing on 3.10, 4.4; generation failed on 5.10"."""
    groups: dict[str, list[str]] = {}
    for r in results:
        groups.setdefault(r.detail or r.verdict, []).append(r.kernel.name)
    return "; ".join(f"{detail} on {', '.join(names)}" for detail, names in groups.items())


def _nothing_judged(results: list[KernelResult]) -> str:
    """Why no kernel has a PASS or FAIL: the base fails where it was built, the
    rest was not built."""
    if not results:
        return "no kernel is configured"
    base_fails = [r.kernel.name for r in results if r.verdict == BASE_FAILS]
    not_built = [r for r in results if r.verdict != BASE_FAILS]
    if not not_built:
        return "the base already fails on every kernel"
    if base_fails:
        return (f"the base already fails on {', '.join(base_fails)}; not built: "
                f"{_by_detail(not_built)}")
    return f"no kernel was built: {_by_detail(not_built)}"


def assess(results: list[KernelResult], generate: StepResult | None,
           base_generate_broken: bool) -> Overall:
    """The series' verdict from its kernels: PASS only when every configured kernel
    was built and judged; what was not tested is said, never passed."""
    if generate is not None and generate.broken:
        if base_generate_broken:
            return Overall(NOT_TESTED, BASE_DOES_NOT_GENERATE)
        return Overall(FAIL)
    verdicts = {r.verdict for r in results}
    if FAIL in verdicts:
        return Overall(FAIL)
    if INFRA_ERROR in verdicts or (generate is not None and generate.status == INFRA):
        return Overall(INFRA_ERROR)
    judged = [r for r in results if r.verdict == PASS]
    if not judged:
        if base_generate_broken:
            return Overall(NOT_TESTED, BASE_DOES_NOT_GENERATE)
        return Overall(NOT_TESTED, _nothing_judged(results))
    not_built = [r for r in results if r.verdict == NOT_BUILT]
    if not_built:
        return Overall(PARTIAL, "not built: " + _by_detail(not_built))
    return Overall(PASS)


def since_previous(now: list[KernelResult], before: dict[str, str], prev_rev: int,
                   rev: int) -> list[str]:
    """Sentences like "v3 fixes the v2 failure on 4.19; 3.10 still fails"."""
    fixed, still, broke = [], [], []
    for r in now:
        old = before.get(r.kernel.name)
        if old is None:
            continue
        if old == FAIL and r.verdict == PASS:
            fixed.append(r.kernel.name)
        elif old == FAIL and r.verdict == FAIL:
            still.append(r.kernel.name)
        elif old == PASS and r.verdict == FAIL:
            broke.append(r.kernel.name)
    parts = []
    if fixed:
        parts.append(f"v{rev} fixes the v{prev_rev} failure on {', '.join(fixed)}")
    if still:
        parts.append(f"{', '.join(still)} still fail{'s' if len(still) == 1 else ''}")
    if broke:
        parts.append(f"v{rev} breaks {', '.join(broke)}, which v{prev_rev} did not")
    if not parts and before:
        parts.append(f"no change from v{prev_rev} on the kernels built for both")
    return parts

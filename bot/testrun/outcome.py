"""The outcome of one test run: its steps, its kernel matrix and the verdict
derived from them (what a reply and the state record)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bot.model import Verdict
from bot.testrun import coverage, matrix
from bot.testrun.steps import FAILED, INFRA, StepResult
from bot.testrun.subset import Choice

PASS, FAIL, NOT_APPLIED, INFRA_ERROR = Verdict.PASS, Verdict.FAIL, Verdict.NOT_APPLIED, Verdict.INFRA_ERROR
NOT_TESTED, PARTIAL = Verdict.NOT_TESTED, Verdict.PARTIAL



@dataclass
class RunOutcome:
    base_ref: str
    base_commit: str
    base_reason: str
    steps: list[StepResult]
    mbox_name: str = "series.mbox"
    run_id: int = 0
    kernels: list[matrix.KernelResult] = field(default_factory=list)
    choice: Choice | None = None
    base_generate_broken: bool = False
    since_previous: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)  # wall seconds per phase
    untested: str = ""  # set when nothing could be tested, e.g. "already applied in the base"
    compiler: str = ""  # the compiler's version line, when known (bot/testrun/toolchain.py)
    upstream_version: str = ""  # the upstream source generated from, e.g. "v6.1.192"
    # Per changed C file or header, the kernels that compiled it; None: unknown.
    file_coverage: list[coverage.FileCoverage] | None = None
    # Package files that differ from the base's package (None: unknown).
    package_changed: list[str] | None = None
    # Kernels not built again (nothing they compile changed): what their base compiled.
    compiled_as_base: dict[str, set[str]] = field(default_factory=dict)
    config_dirs: dict[str, Path] = field(default_factory=dict)  # and their warm build dirs
    # Kconfig symbols the build config was widened with (bot/testrun/widen.py).
    widened: list[str] = field(default_factory=list)
    widened_on: list[str] = field(default_factory=list)  # the kernels built widened

    def step(self, name: str) -> StepResult | None:
        return next((s for s in self.steps if s.name == name), None)

    @property
    def verdict(self) -> str:
        return self.assess().verdict

    def assess(self) -> matrix.Overall:
        apply = self.step("apply")
        if apply is not None and apply.status == FAILED:
            return matrix.Overall(NOT_APPLIED)
        if apply is not None and apply.status == INFRA:
            return matrix.Overall(INFRA_ERROR)
        if self.untested:
            return matrix.Overall(NOT_TESTED, self.untested)
        if self.choice is not None and not self.choice.generate:
            return matrix.Overall(PASS)  # only files the path rules say need no build
        overall = matrix.assess(self.kernels, self.step("generate"), self.base_generate_broken)
        return _with_coverage(overall, self.file_coverage)


def _with_coverage(overall: matrix.Overall,
                   files: list[coverage.FileCoverage] | None) -> matrix.Overall:
    """Changed code that no kernel compiled was not tested: never a plain PASS."""
    if overall.verdict not in (PASS, PARTIAL) or not files:
        return overall
    missed = [f.label for f in files if not f.compiled]
    if not missed:
        return overall
    if len(missed) == len(files):
        return matrix.Overall(NOT_TESTED, "the changed code was compiled on no configured "
                                          f"kernel ({_some(missed)})")
    reason = f"{_some(missed)} {coverage.NOT_COMPILED}"
    return matrix.Overall(PARTIAL, "; ".join(r for r in (overall.reason, reason) if r))


def _some(names: list[str], shown: int = 4) -> str:
    """The first names of a list, and how many more: a verdict line stays a line."""
    more = len(names) - shown
    return ", ".join(names[:shown]) + (f" and {more} more" if more > 0 else "")

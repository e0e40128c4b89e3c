"""Step results: every apply / generate / build step ends in one status with its log."""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.model import StepStatus
from bot.testrun.diagnostics import Diagnostic

SUCCESS, FAILED, SKIPPED = StepStatus.SUCCESS, StepStatus.FAILED, StepStatus.SKIPPED
TIMEOUT, INFRA = StepStatus.TIMEOUT, StepStatus.INFRA_ERROR


@dataclass
class StepResult:
    name: str               # apply, generate, build
    status: str
    kernel: str = ""        # kernel name for build steps
    detail: str = ""        # one line for the table
    diagnostics: list[Diagnostic] = field(default_factory=list)
    log_path: str = ""
    duration: float = 0.0
    started_at: float = 0.0
    tail: list[str] = field(default_factory=list)  # last log lines when no diagnostics

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "error"]

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "warning"]

    @property
    def broken(self) -> bool:
        return self.status in (FAILED, TIMEOUT)

"""Where builds run: this host's pool (bot/testrun/build.py) or RQ workers (bot/testrun/remote.py),
as the rules' ``[build] executor`` says. Above both, so neither imports the other's
caller."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from bot.config.rules import Kernel, Rules
from bot.sandbox.bwrap import Sandbox
from bot.testrun import build, remote
from bot.testrun.steps import StepResult


def build_all(rules: Rules, sandbox: Sandbox, kernels: list[Kernel], output: Path,
              build_root: Path, log_dir: Path,
              progress: Callable[[str], None] | None = None,
              trusted: bool = False, watch: Callable[[], str] | None = None,
              prepare: build.Prepare | None = None) -> list[StepResult]:
    """``prepare`` (warm build trees) applies to this host's builds only."""
    if kernels and rules.executor == "rq":
        return remote.build_all(rules, kernels, output, log_dir, progress, trusted)
    return build.build_all(rules, sandbox, kernels, output, build_root, log_dir, progress,
                           trusted, watch, prepare)

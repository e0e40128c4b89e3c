"""A series' package and builds, starting from the base's warm trees.

1. The package: when the series changes only files the generator copies
   verbatim (bot/testrun/verbatim.py) and the base's mapping check held, it
   is the base's package with those files replaced; else the generator runs.
2. Its files whose content is the base package's get the base's mtimes
   (bot/testrun/warm.py ``align``); unless a build-system file changed, each
   kernel's build dir is a copy of the base's warm one, and make rebuilds only
   what depends on the changed files. Without a warm tree (the reuse is off,
   the base failed to generate, RQ workers build) every build starts clean.
"""

from __future__ import annotations

import importlib.machinery
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bot.config.rules import Kernel, Rules
from bot.sandbox import git
from bot.sandbox.bwrap import Sandbox
from bot.testrun import baseline, generate, toolchain, verbatim, warm
from bot.testrun.build import Prepare
from bot.testrun.steps import INFRA, SUCCESS, StepResult

log = logging.getLogger(__name__)
VERBATIM_DETAIL = "not run: the series changes only files the generator copies verbatim"


def changed_paths(tree: Path, base_commit: str) -> list[str] | None:
    """Tree paths the series changes (deleted and renamed ones too); None if unknown."""
    res = git.git(tree, "diff", "--name-only", "--no-renames", "-z", base_commit, "HEAD")
    return [p for p in res.output.split("\0") if p] if res.ok else None


@dataclass
class Plan:
    """How the series' builds start: ``prepare`` restores a kernel's warm tree
    (None: every build from scratch); ``untouched`` kernels need no build at all
    (nothing they compile changed: their result is the base's), each with the
    package files its base build compiled (for coverage). ``diff``: the
    package files that differ from the base's package (None: unknown, no warm
    base package); coverage checks that the changed code among them was compiled."""

    prepare: Prepare | None = None
    untouched: dict[str, set[str]] = field(default_factory=dict)
    untouched_dirs: dict[str, Path] = field(default_factory=dict)  # their warm build dirs
    diff: warm.Diff | None = None
    base_package: Path | None = None  # the base's kept package
    tree_changed: list[str] = field(default_factory=list)  # tree paths the series changes


def generate_series(rules: Rules, sandbox: Sandbox, base_commit: str, paths: baseline.WorkPaths,
                    log_file: Path, watch: Callable[[], str] | None,
                    kernels: list[Kernel]) -> tuple[StepResult, Plan]:
    """The series' package at ``paths.out`` and the plan of its builds."""
    pkg = None
    if rules.executor == "local":
        pkg = warm.package(rules, baseline.package_key(rules, base_commit))
    tree_changed = changed_paths(paths.src, base_commit)
    gen = _shortcut(rules, pkg if rules.build_reuse else None, base_commit, paths, log_file,
                    tree_changed)
    generated = gen is None  # else the base's package: its stamps are the base's
    if generated:
        gen = generate.generate(rules, sandbox, paths.src, paths.out, log_file, watch)
    if gen.status != SUCCESS or pkg is None:
        return gen, Plan()
    # A stamp is the tree's revision only while the generator's code is the base's.
    if generated and tree_changed is not None and not generator_changed(tree_changed) and \
            (taken := warm.take_stamps(pkg.path, paths.out, rules.generate_stamps)):
        log.info("package: %s taken from the base's package ([generate] stamps)", ", ".join(taken))
    diff = warm.align(pkg.path, paths.out)
    if not rules.build_reuse:
        return gen, Plan(diff=diff, base_package=pkg.path, tree_changed=tree_changed or [])
    return gen, plan_builds(rules, base_commit, paths.out, kernels, diff, pkg.path,
                            tree_changed or [])


def generator_changed(tree_changed: list[str]) -> list[str]:
    """The generator's own code among the tree paths a series changes (gentree.py, its lib/):
    whatever Python imports, also the bytecode (an unchecked .pyc is used whatever its
    source says) and extension modules (found before a module's .py)."""
    return [p for p in tree_changed if p.endswith(_PYTHON_CODE)]


_PYTHON_CODE = tuple(importlib.machinery.all_suffixes())  # .py, .pyc, .so, .cpython-311-*.so


def plan_builds(rules: Rules, base_commit: str, output: Path, kernels: list[Kernel],
                diff: warm.Diff, base_package: Path, tree_changed: list[str]) -> Plan:
    """How each kernel's series build starts, from the base's warm trees under
    these rules' build commands. A build-system file changed in the package, or
    the generator's own code in the tree (gentree.py, its lib/: what it writes,
    e.g. the package's ``versions`` that its Makefile reads, is in no
    dependency list), builds every kernel clean. (What copy-list and
    dependencies change shows in the package.)"""
    if build_system := warm.needs_clean(diff) + generator_changed(tree_changed):
        log.info("the series changes the build system (%s): every kernel is built clean",
                 ", ".join(build_system[:5]))
        return Plan(diff=diff, base_package=base_package, tree_changed=tree_changed)
    if system := warm.shadows_system(diff, toolchain.system_headers()):
        log.info("the series adds %s, named like the compiler's own header(s): every kernel"
                 " is built clean", ", ".join(system[:5]))
        return Plan(diff=diff, base_package=base_package, tree_changed=tree_changed)
    log.info("package: %d file(s) differ from the base's: %s", len(diff.all),
             ", ".join(diff.all[:8]) or "none")
    untouched, dirs = {}, {}
    for k in kernels:
        found = warm.build_tree(rules, baseline.cache_key(rules, base_commit, k))
        if found is not None and warm.untouched(found[1], diff):
            untouched[k.name], dirs[k.name] = set(found[1]["depends"]), found[0]
    if untouched:
        log.info("nothing compiled on %s depends on the changed files: the base's result",
                 ", ".join(sorted(untouched)))
    return Plan(_restorer(rules, base_commit, output, diff), untouched, dirs, diff,
                base_package, tree_changed)


def _shortcut(rules: Rules, pkg: warm.Package | None, base_commit: str,
              paths: baseline.WorkPaths, log_file: Path,
              changed: list[str] | None) -> StepResult | None:
    """The package laid from the base's, when the verbatim mapping allows; else None."""
    if pkg is None or not rules.generate_verbatim:
        return None
    if changed is None or not verbatim.covers(rules.generate_verbatim, changed):
        return None
    if pkg.verbatim_problem:
        log.info("not using [generate] verbatim on base %s: %s; the generator runs",
                 base_commit[:12], pkg.verbatim_problem)
        return None
    if pkg.verbatim_problem is None or not verbatim.plain_files(paths.src, changed):
        return None
    if held := verbatim.rewritten(paths.src, changed, rules.generate_verbatim_unless):
        log.info("not using [generate] verbatim: %s, which the generator rewrites;"
                 " the generator runs", held)
        return None
    started = time.time()
    try:
        generate.empty_parent(paths.out)
        verbatim.lay(rules.generate_verbatim, pkg.path, paths.src, changed, paths.out)
    except (OSError, ValueError) as exc:
        return StepResult("generate", INFRA, detail=str(exc), started_at=started)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    log_file.write_text(f"{VERBATIM_DETAIL}:\n" + "".join(f"  {p}\n" for p in changed))
    log.info("generate: %s (%s)", VERBATIM_DETAIL, ", ".join(changed[:8]))
    return StepResult("generate", SUCCESS, detail="from the base's package", started_at=started,
                      duration=time.time() - started, log_path=str(log_file))


def _restorer(rules: Rules, base_commit: str, output: Path, diff: warm.Diff) -> Prepare:
    """Restore a kernel's warm tree; objects that used a header of the name of one
    the series adds are removed, so make compiles them against the new one. The
    series' changed files get the time of now: newer than any object of the warm
    tree, whenever that was built (a widened base is built after the series'
    generation)."""
    new_headers = warm.shadowed(diff, output)

    def prepare(kernel: Kernel, build_dir: Path) -> bool:
        found = warm.build_tree(rules, baseline.cache_key(rules, base_commit, kernel))
        if found is None:
            return False
        warm.restore(*found, build_dir, output)
        for path in diff.changed + diff.added:
            os.utime(output / path)
        if dropped := warm.drop_objects(build_dir, output, new_headers, diff.removed):
            log.info("build %s: %d object(s) used a header named like one the series adds"
                     " (%s) or a file it removes: compiled again or gone", kernel.name,
                     dropped, ", ".join(sorted(new_headers)))
        return True
    return prepare

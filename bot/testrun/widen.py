"""Widening the build config to compile what a series changes.

The rules' build config (the real tree's ``defconfig-hwsim``) compiles a few
drivers; a series that changes another driver's code would be compiled
nowhere. Before the series is built, the Kconfig symbols that build its
changed C files are read from the package's kbuild Makefiles
(bot/testrun/why_not.py), with the package symbols their ``depends on``
lines name; those that no base build's ``.config`` sets are passed to the
rules' ``[build] widen`` command, which runs before the last build command:

    widen = ["sh", "-c", "...append $s=m...; make olddefconfig", "sh", "{build_dir}", "{symbols}"]

Base and series are then both built with the widened commands (the base's
results are cached under them, like any other build commands), so a new
error is still one the base does not have.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Callable
from pathlib import Path

from bot.config.rules import Kernel, Rules
from bot.sandbox.bwrap import Sandbox
from bot.state import State
from bot.testrun import baseline, incremental, warm, why_not

log = logging.getLogger(__name__)
MAX_SYMBOLS = 64
_CONFIG = re.compile(r"^\s*(?:menu)?config\s+(\w+)\s*$")
_DEPENDS = re.compile(r"^\s*depends\s+on\s+(.*)$")
_WORD = re.compile(r"(!?)\s*\b([A-Za-z_][A-Za-z0-9_]*)\b")


def _kconfig_depends(package: Path) -> dict[str, set[str]]:
    """Per Kconfig symbol of the package, the symbols its ``depends on`` lines
    name (not negated)."""
    out: dict[str, set[str]] = {}
    for path in sorted(package.rglob("Kconfig*")):
        text = why_not.read_file(path, package)
        if text is None:
            continue
        current = None
        for line in text.replace("\\\n", " ").splitlines():
            if m := _CONFIG.match(line):
                current = out.setdefault(m.group(1), set())
            elif current is not None and (m := _DEPENDS.match(line)):
                current.update(name for neg, name in _WORD.findall(m.group(1))
                               if not neg and name not in ("m", "y", "n"))
            elif line and not line[0].isspace():
                current = None
    return out


def needed(package: Path, paths: list[str]) -> list[str]:
    """The Kconfig symbols (with their prefix, e.g. CPTCFG_) that build the C
    files ``paths`` of the package, and the package symbols they depend on."""
    wanted: list[str] = []
    makefiles = why_not.Makefiles(package)
    for path in paths:
        if path.endswith(".c"):
            for sym in why_not.symbols(makefiles, path) or []:
                if sym not in wanted:
                    wanted.append(sym)
    if not wanted:
        return []
    depends = _kconfig_depends(package)
    todo = list(wanted)
    while todo and len(wanted) < MAX_SYMBOLS:
        prefix, _, bare = todo.pop(0).partition("_")
        for dep in sorted(depends.get(bare, ())):
            full = f"{prefix}_{dep}"
            if dep in depends and full not in wanted:
                wanted.append(full)
                todo.append(full)
    return wanted[:MAX_SYMBOLS]


def _base_configs(rules: Rules, base_commit: str, kernels: list[Kernel]) -> list[set[str]] | None:
    """The symbols each kernel's base build set; None when a build's config is unknown."""
    configs = []
    for k in kernels:
        found = warm.build_tree(rules, baseline.cache_key(rules, base_commit, k))
        sets = why_not.config_values({k.name: found[0]}) if found is not None else {}
        if k.name not in sets:
            return None
        configs.append(sets[k.name])
    return configs


def plan_symbols(rules: Rules, base_commit: str, package: Path, changed: list[str],
         kernels: list[Kernel]) -> list[str]:
    """The symbols to enable for this series: needed by its changed C files and
    set by no kernel's base build ([] when there is no widen command, no warm
    base build to read the config of, or nothing to add)."""
    if not rules.build_widen or not kernels:
        return []
    symbols = needed(package, changed)
    if not symbols:
        return []
    configs = _base_configs(rules, base_commit, kernels)
    if configs is None:
        log.info("widen: the base's build config is unknown (no warm build tree): not widened")
        return []
    # CPTCFG_KERNEL_5_2 says what the kernel is: no config can set it.
    return [s for s in symbols if not any(s in c for c in configs)
            and not re.search(r"_KERNEL_\d+_\d+$", s)]


def widened(rules: Rules, symbols: list[str]) -> Rules:
    """The rules whose build commands run ``[build] widen`` with ``symbols``
    before their last command."""
    command: list[str] = []
    for arg in rules.build_widen:
        command += symbols if arg == "{symbols}" else [arg]
    commands = [*rules.build_commands[:-1], command, rules.build_commands[-1]]
    return dataclasses.replace(rules, build_commands=commands)


def widen(state: State, rules: Rules, sandbox: Sandbox, base_commit: str,
          kernels: list[Kernel], paths: baseline.WorkPaths, plan: incremental.Plan,
          base: dict[str, baseline.BaseResult], say: Callable[[str], None]
          ) -> tuple[list[str], Rules, incremental.Plan, dict[str, baseline.BaseResult]] | None:
    """When the series' changed code needs symbols the base's config does not set:
    the symbols, the widened rules, the plan of the series' builds under them
    and the base's results built with them, for the kernels to build widened:
    those where the widened base builds as well as the base (``base``) does.
    A widened config that breaks the base somewhere would hide the series' own
    errors there behind "base already fails": those kernels are built as before.
    None when nothing is widened."""
    if plan.diff is None or plan.base_package is None:
        return None
    symbols = plan_symbols(rules, base_commit, paths.out, plan.diff.changed + plan.diff.added,
                           kernels)
    if not symbols:
        return None
    wide = widened(rules, symbols)
    say(f"build config widened with {', '.join(symbols)}: the series changes code they build")
    wide_base = baseline.ensure_built(state, wide, sandbox, base_commit, kernels,
                                      plan.base_package, paths, say)
    keep = {name: r for name, r in wide_base.items()
            if not r.broken or name not in base or base[name].broken}
    if broken := sorted(set(wide_base) - set(keep)):
        log.warning("widen: the base does not build with %s on %s: not widened there",
                    " ".join(symbols), ", ".join(broken))
    if not keep:
        return None
    log.info("widen: %s on %s", " ".join(symbols), ", ".join(keep))
    if not wide.build_reuse:
        return symbols, wide, incremental.Plan(diff=plan.diff), keep
    return symbols, wide, incremental.plan_builds(
        wide, base_commit, paths.out, kernels, plan.diff, plan.base_package,
        plan.tree_changed), keep

"""Order the kernel builds of a series, and say why a kernel goes first.

Every configured kernel is built for a series that needs a build: a
heuristic that leaves kernels out answers PASS for what it never tested.
The guard analysis only orders the builds. Version guards the series adds,
removes or changes, or that enclose the lines it changes
(``LINUX_VERSION_IS_LESS``, ``_IS_GEQ``, ``_IN_RANGE``, ``KERNEL_VERSION``,
hex or decimal ``LINUX_VERSION_CODE`` comparisons, ``LINUX_VERSION_MAJOR`` /
``_PATCHLEVEL``, ``KERNEL_X_Y`` Kconfig symbols, ``backport-X.Y.c`` file
names, versions on ``dependencies`` lines) put the configured kernels
nearest on each side of each boundary first, then the oldest and newest,
then the rest. Path rules say which files need no build at all;
``[subset] max_kernels`` may cut the list, and the verdict then says so.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from bot.config.rules import Kernel, Rules
from bot.series.diffinfo import FileChange

NONE, GUARDS, VERSIONS, EDGES = "none", "guards", "versions", "edges"
POLICIES = (NONE, GUARDS, VERSIONS, EDGES)

_V3 = r"\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*"
_GUARDS = [
    (re.compile(rf"LINUX_VERSION_IS_LESS\({_V3}\)"), "LINUX_VERSION_IS_LESS"),
    (re.compile(rf"LINUX_VERSION_IS_GEQ\({_V3}\)"), "LINUX_VERSION_IS_GEQ"),
    (re.compile(rf"KERNEL_VERSION\({_V3}\)"), "KERNEL_VERSION"),
]
_RANGE = re.compile(rf"LINUX_VERSION_IN_RANGE\({_V3},{_V3}\)")
_KCONFIG = re.compile(r"\bKERNEL_(\d+)_(\d+)\b")
_OP = r"\s*(<=|>=|==|!=|<|>)\s*"
# LINUX_VERSION_CODE < 0x040c00, or >= 263168 (a raw code: at least 5 digits).
_CODE = re.compile(rf"\bLINUX_VERSION_CODE{_OP}(0[xX][0-9a-fA-F]+|\d{{5,}})\b")
_MAJOR = re.compile(rf"\bLINUX_VERSION_MAJOR{_OP}(\d+)\b")
_PATCHLEVEL = re.compile(rf"\bLINUX_VERSION_PATCHLEVEL{_OP}(\d+)\b")
_COMPAT_FILE = re.compile(r"(?:^|/)backport-(\d+)\.(\d+)\.c$")
_DEP_LINE = re.compile(r"^\s*[A-Za-z0-9_]+\s+(\d+)\.(\d+)(?:\.(\d+))?\s*$")
_ANY_VERSION = re.compile(r"\b(\d+)\.(\d+)(?:\.(\d+))?\b")
_IF = re.compile(r"^\s*#\s*(if|ifdef|ifndef)\b(.*)$")
_ELSE = re.compile(r"^\s*#\s*(else|elif)\b")
_ENDIF = re.compile(r"^\s*#\s*endif\b")

Version = tuple[int, int, int]


@dataclass
class Choice:
    kernels: list[Kernel]  # to build, in build order: those the guards name first
    reasons: dict[str, list[str]] = field(default_factory=dict)  # kernel name -> why first
    generate: bool = True
    note: str = ""  # why nothing is built, when nothing is
    cut: list[Kernel] = field(default_factory=list)  # not built: past [subset] max_kernels
    paths: list[str] = field(default_factory=list)  # the files the series changes

    def why(self, kernel: str) -> str:
        return "; ".join(self.reasons.get(kernel, []))


def boundaries(text: str) -> list[tuple[Version, str]]:
    """Every version boundary named on one line, with the guard that names it."""
    found: list[tuple[Version, str]] = []
    for pattern, name in _GUARDS:
        for m in pattern.finditer(text):
            v = (int(m[1]), int(m[2]), int(m[3]))
            found.append((v, f"{name}({v[0]},{v[1]},{v[2]})"))
    for m in _RANGE.finditer(text):
        lo, hi = (int(m[1]), int(m[2]), int(m[3])), (int(m[4]), int(m[5]), int(m[6]))
        label = f"LINUX_VERSION_IN_RANGE({','.join(map(str, lo))}, {','.join(map(str, hi))})"
        found += [(lo, label), (hi, label)]
    for m in _KCONFIG.finditer(text):
        found.append(((int(m[1]), int(m[2]), 0), f"KERNEL_{m[1]}_{m[2]}"))
    for m in _CODE.finditer(text):
        code = int(m[2], 0)
        label = f"LINUX_VERSION_CODE {m[1]} {m[2]}"
        found += [(_from_code(c), label) for c in _edges(m[1], code)]
    majors = [(m[1], int(m[2])) for m in _MAJOR.finditer(text)]
    for op, major in majors:
        found += [((v, 0, 0), f"LINUX_VERSION_MAJOR {op} {major}") for v in _edges(op, major)]
    for m in _PATCHLEVEL.finditer(text):
        # The patchlevel belongs to the major compared on the same line.
        for major in sorted({v for _, v in majors}):
            found += [((major, v, 0), f"LINUX_VERSION_MAJOR {major}, PATCHLEVEL {m[1]} {m[2]}")
                      for v in _edges(m[1], int(m[2]))]
    return found


def _edges(op: str, value: int) -> list[int]:
    """The first value on the other side of ``x <op> value``."""
    if op in ("<", ">="):
        return [value]
    if op in (">", "<="):
        return [value + 1]
    return [value, value + 1]  # == and !=


def _from_code(code: int) -> Version:
    return (code >> 16, (code >> 8) & 0xFF, code & 0xFF)


def enclosing_guards(text: str, lines: set[int]) -> dict[int, list[str]]:
    """For each 1-based line number, the ``#if`` lines (with versions) around it."""
    stack: list[str] = []
    out: dict[int, list[str]] = {}
    pending = ""  # a directive continued with backslashes
    for number, raw in enumerate(text.splitlines(), start=1):
        if number in lines and stack:
            out[number] = [g for g in stack if boundaries(g)]
        if pending or raw.rstrip().endswith("\\"):
            pending += raw.rstrip().rstrip("\\") + " "
            if raw.rstrip().endswith("\\"):
                continue
        line, pending = (pending or raw), ""
        if _IF.match(line):
            stack.append(line.strip())
        elif _ENDIF.match(line) and stack:
            stack.pop()
        elif _ELSE.match(line) and stack and _ELSE.match(line)[1] == "elif":
            stack[-1] = line.strip()
    return out


def policy_for(rules: Rules, path: str) -> str:
    for glob, policy in rules.subset_paths:
        if fnmatch.fnmatchcase(path, glob):
            return policy
    return GUARDS


def _file_boundaries(change: FileChange, policy: str,
                     read_new: Callable[[str], str | None]) -> list[tuple[Version, str]]:
    found: list[tuple[Version, str]] = []
    if policy in (GUARDS, VERSIONS):
        m = _COMPAT_FILE.search(change.path)
        if m:
            found.append(((int(m[1]), int(m[2]), 0), f"file {change.path}"))
        for line in change.added + change.removed:
            found += [(v, f"{label} in {change.path}") for v, label in boundaries(line)]
    if policy == VERSIONS:
        for line in change.added + change.removed:
            m = _DEP_LINE.match(line) or (_ANY_VERSION.search(line) if not line.startswith("#")
                                          else None)
            if m:
                v = (int(m[1]), int(m[2]), int(m[3] or 0))
                found.append((v, f"version {v[0]}.{v[1]} on a changed line of {change.path}"))
    if policy == GUARDS and change.added_lines:
        text = read_new(change.path)
        if text:
            for _number, guards in enclosing_guards(text, set(change.added_lines)).items():
                for guard in guards:
                    found += [(v, f"{label} in {change.path}")
                              for v, label in boundaries(guard)]
    return found


def _around(kernels: list[Kernel], boundary: Version) -> list[tuple[Kernel, str]]:
    below = [k for k in kernels if k.version_tuple < boundary]
    above = [k for k in kernels if k.version_tuple >= boundary]
    out = []
    if below:
        out.append((below[-1], "below"))
    if above:
        out.append((above[0], "at or above"))
    return out


def choose(rules: Rules, changes: list[FileChange], full: bool = False,
           read_new: Callable[[str], str | None] = lambda path: None) -> Choice:
    """Every configured kernel, in build order, for a series changing ``changes``;
    ``full`` (a maintainer's ``retest ... full``) ignores ``[subset] max_kernels``."""
    kernels = rules.kernels
    policies = {c.path: policy_for(rules, c.path) for c in changes}
    if changes and all(p == NONE for p in policies.values()):
        return Choice([], generate=False,
                      note="only files that need no build changed (" +
                           ", ".join(sorted(policies)) + ")")
    reasons: dict[str, list[str]] = {}

    def add(kernel: Kernel, why: str) -> None:
        reasons.setdefault(kernel.name, [])
        if why not in reasons[kernel.name]:
            reasons[kernel.name].append(why)

    for change in changes:
        for boundary, label in _file_boundaries(change, policies[change.path], read_new):
            for kernel, side in _around(kernels, boundary):
                add(kernel, f"{side} {'.'.join(map(str, boundary))} ({label})")
    guarded = [k for k in kernels if k.name in reasons]
    add(kernels[0], "oldest kernel")
    add(kernels[-1], "newest kernel")
    edges = [k for k in (kernels[0], kernels[-1]) if k not in guarded]
    rest = [k for k in kernels if k not in guarded and k not in edges]
    order = guarded + list(dict.fromkeys(edges)) + rest
    limit = rules.subset_max_kernels
    paths = [c.path for c in changes]
    if limit and not full and len(order) > limit:
        return Choice(order[:limit], reasons, cut=order[limit:], paths=paths)
    return Choice(order, reasons, paths=paths)

"""Warm base trees: what a series build starts from, so nothing is built twice.

After a base is generated and built (bot/testrun/baseline.py, trusted code
only), its package and each kernel's build dir are copied here with their
mtimes and dependency files (gcc's ``.d``, kbuild's ``.*.cmd``)::

    <state_dir>/warm/pkg-<key>/package     the base's generated package
    <state_dir>/warm/pkg-<key>/meta.json   where it was made; the verbatim check
    <state_dir>/warm/build-<key>/build     one kernel's build dir
    <state_dir>/warm/build-<key>/meta.json where it was built, from which package

A series build never writes here: its package gets the base's mtimes on
every file whose content is the base's (``align``), its build dir is a copy
of the warm one (``restore``), and make rebuilds what depends on the rest.
A series that changes the build system itself (``needs_clean``) is built
from scratch. Snapshots are made beside and renamed into place, so a crash
never leaves half of one.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from bot.config.rules import Kernel, Rules
from bot.sandbox import cleanup
from bot.testrun import coverage

log = logging.getLogger(__name__)

# Package files whose change makes make's own view stale (rules, flags, config,
# the set of objects): the series is then built from a clean dir.
BUILD_SYSTEM = ("Makefile*", "*/Makefile*", "Kbuild*", "*/Kbuild*", "Kconfig*", "*/Kconfig*",
                "*.mk", "*.mak", "*defconfig*", ".config", "*/.config", "dependencies",
                "copy-list", "*.lds", "*.sh", "*.py")
DEP_FILES = (".d", ".cmd")
# Text files of a build dir that name paths in it, pointed at the new place
# when a warm tree is restored elsewhere: dependency files, and kbuild's
# module lists (compat.mod, modules.order, Module.symvers), which make reads.
PATH_FILES = (*DEP_FILES, ".mod", ".order", ".symvers")
KEEP_BASES = 4  # base packages kept (with their kernels' trees); the oldest go


def root(rules: Rules) -> Path:
    return rules.state_dir / "warm"


@dataclass
class Package:
    """A warm base package and what is known of it."""

    path: Path
    made_at: str                      # the dir it was generated in
    verbatim_problem: str | None = None  # None: these rules' mapping not checked; "": it holds


@dataclass
class Diff:
    """Package paths whose content differs from the base package."""

    changed: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    # Links (symlinks) that are not the base package's: make reads through them
    # (a link's target, not the link, has the mtime it sees); built clean.
    links: list[str] = field(default_factory=list)

    @property
    def all(self) -> list[str]:
        return self.changed + self.added + self.removed + self.links


def _meta(path: Path) -> dict | None:
    try:
        return json.loads((path / "meta.json").read_text())
    except (OSError, ValueError):
        return None


def package(rules: Rules, key: str) -> Package | None:
    """The warm package of a base (``key``: bot/testrun/baseline.py's package_key)."""
    top = root(rules) / f"pkg-{key}"
    meta = _meta(top)
    if meta is None or not (top / "package").is_dir():
        return None
    os.utime(top)  # in use: pruned last
    checked = _verbatim_rules(rules) == (meta.get("verbatim_mapping"),
                                         meta.get("verbatim_unless", []))
    return Package(top / "package", meta["made_at"],
                   meta.get("verbatim_problem") if checked else None)


def _verbatim_rules(rules: Rules) -> tuple[list, list]:
    """What a base's verbatim check was made under (JSON-shaped)."""
    return [list(m) for m in rules.generate_verbatim], list(rules.generate_verbatim_unless)


def take_stamps(base: Path, output: Path, stamps: tuple[str, ...]) -> list[str]:
    """Replace each of ``stamps`` in the series' ``output`` with the base package's
    copy (a stamp of the tree's revision, e.g. gentree.py's ``versions``: with
    it, a new commit alone would change every object's flags); the ones replaced."""
    taken = []
    top = output.resolve()
    for rel in stamps:
        source, dest = base / rel, output / rel
        # Only a regular file the generator wrote, no link on the way: a link
        # (to a file the generator wrote after it) is what the build reads.
        made = dest.is_file() and not dest.is_symlink() and dest.resolve() == top / rel
        if not made or not source.is_file() or source.is_symlink():
            continue
        dest.unlink()
        shutil.copy2(source, dest)
        taken.append(rel)
    return taken


def build_tree(rules: Rules, key: str) -> tuple[Path, dict] | None:
    """A warm build dir and its meta (``key``: baseline.cache_key of base and kernel)."""
    top = root(rules) / f"build-{key[:24]}"
    meta = _meta(top)
    return (top / "build", meta) if meta is not None and (top / "build").is_dir() else None


def _snapshot(source: Path, top: Path, inner: str, meta: dict) -> None:
    fresh = top.with_name(top.name + ".new")
    cleanup.remove_tree(fresh)
    shutil.copytree(source, fresh / inner, symlinks=True)
    (fresh / "meta.json").write_text(json.dumps(meta))
    cleanup.remove_tree(top)
    fresh.rename(top)


def save_package(rules: Rules, key: str, base_commit: str, output: Path,
                 verbatim_problem: str | None) -> None:
    top = root(rules) / f"pkg-{key}"
    mapping, unless = _verbatim_rules(rules)
    _snapshot(output, top, "package", dict(
        made_at=str(output), base=base_commit, verbatim_problem=verbatim_problem,
        verbatim_mapping=mapping, verbatim_unless=unless))
    _prune(rules)


def save_build(rules: Rules, key: str, base_commit: str, kernel: Kernel, build_dir: Path,
               output: Path) -> None:
    top = root(rules) / f"build-{key[:24]}"
    depends = coverage.compiled(build_dir, output)
    _snapshot(build_dir, top, "build", dict(
        built_at=str(build_dir), package=str(output), base=base_commit, kernel=kernel.name,
        depends=sorted(depends) if depends is not None else None))


def _prune(rules: Rules) -> None:
    """Keep the newest KEEP_BASES base packages and the build trees of their bases."""
    tops = sorted((p for p in root(rules).glob("pkg-*") if p.is_dir() and not
                   p.name.endswith(".new")), key=lambda p: p.stat().st_mtime, reverse=True)
    keep = {(_meta(p) or {}).get("base") for p in tops[:KEEP_BASES]}
    for top in tops[KEEP_BASES:]:
        cleanup.remove_tree(top)
    for top in root(rules).glob("build-*"):
        if (_meta(top) or {}).get("base") not in keep:
            cleanup.remove_tree(top)


def _digest(path: Path) -> str:
    with path.open("rb") as f:  # in chunks: a series' generator may write large files
        return hashlib.file_digest(f, "sha256").hexdigest()


def _entries(top: Path) -> tuple[dict[str, Path], dict[str, str]]:
    """The regular files of ``top`` and its links (with their targets), in one walk."""
    files, links = {}, {}
    for p in top.rglob("*"):
        if p.is_symlink():
            links[str(p.relative_to(top))] = os.readlink(p)
        elif p.is_file():
            files[str(p.relative_to(top))] = p
    return files, links


def align(base: Path, output: Path) -> Diff:
    """Give every file of ``output`` whose content is the base package's the base's
    mtime (so make sees it unchanged); the differing files get the current time."""
    (old, old_links), (new, new_links) = _entries(base), _entries(output)
    diff = Diff(removed=sorted(set(old) - set(new)),
                links=sorted(p for p in set(old_links) | set(new_links)
                             if old_links.get(p) != new_links.get(p)))
    for rel, path in sorted(new.items()):
        before = old.get(rel)
        if before is None:
            diff.added.append(rel)
            os.utime(path)
        elif before.stat().st_size == path.stat().st_size and _digest(before) == _digest(path):
            st = before.stat()
            os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
        else:
            diff.changed.append(rel)
            os.utime(path)
    return diff


def untouched(meta: dict, diff: Diff) -> bool:
    """No object of this warm build depends on a changed file, and no file came or
    went: make would rebuild nothing (its dependency list is known)."""
    depends = meta.get("depends")
    return depends is not None and not diff.added and not diff.removed \
        and not set(diff.changed) & set(depends)


def needs_clean(diff: Diff) -> list[str]:
    """The changed package files that belong to the build system, and the links
    that are not the base's."""
    return diff.links + [p for p in diff.changed + diff.added + diff.removed
                         if any(fnmatch.fnmatch(p, g) or fnmatch.fnmatch(os.path.basename(p), g)
                                for g in BUILD_SYSTEM)]


def shadowed(diff: Diff, output: Path | None = None) -> set[str]:
    """Names of the headers the series adds: each may shadow, through the include
    path order, a header of that name that dependency lists name elsewhere (the
    kernel's linux/mm.h under a new backport-include/linux/mm.h). With the
    ``output`` package: also the names of its files that probe for headers with
    ``__has_include`` (a probe that found nothing in the base left no trace in
    the dependency lists)."""
    names = {os.path.basename(p) for p in diff.added if p.endswith(".h")}
    return names | _probing(output) if names and output is not None else names


def shadows_system(diff: Diff, system: frozenset[str]) -> list[str]:
    """The headers the series adds that may shadow one of the compiler's own
    (``backport-include/stdarg.h``): no dependency list names those."""
    return [p for p in diff.added if p.endswith(".h") and
            any(p == name or p.endswith("/" + name) for name in system)]


def _probing(package: Path) -> set[str]:
    """Names of the package's C files and headers that use ``__has_include``."""
    found = set()
    for path in package.rglob("*"):
        if path.suffix in (".c", ".h") and path.is_file() and not path.is_symlink():
            with path.open("rb") as f:
                if b"__has_include" in f.read(coverage.MAX_READ):
                    found.add(path.name)
    return found


def drop_objects(build_dir: Path, output: Path, names: set[str], removed: list[str]) -> int:
    """Remove each object (and its dependency file) that depends on a header named
    in ``names`` (make compiles it again), or on a package file the series
    removed (make no longer builds it, and its stale dependency file would count
    as coverage); how many. One walk of the build dir."""
    gone, roots = set(removed), (output.resolve(), output)
    dropped = 0
    for dep in list(build_dir.rglob("*")) if names or gone else []:
        deps = coverage.dependencies(dep)
        if deps and any(os.path.basename(d) in names or coverage.relative(d, roots) in gone
                        for d in deps):
            coverage.object_of(dep).unlink(missing_ok=True)
            dep.unlink()
            dropped += 1
    return dropped


def restore(snapshot: Path, meta: dict, build_dir: Path, output: Path) -> None:
    """A copy of a warm build dir at ``build_dir`` (mtimes kept), its dependency
    files pointed at ``build_dir`` and ``output`` when the base was built elsewhere."""
    cleanup.fresh_dir(build_dir)
    shutil.copytree(snapshot, build_dir, symlinks=True, dirs_exist_ok=True)
    moves = [(meta["built_at"], str(build_dir)), (meta["package"], str(output))]
    moves = [(a.encode(), b.encode()) for a, b in moves if a != b]
    if not moves:
        return
    for path in build_dir.rglob("*"):
        if path.suffix not in PATH_FILES or path.is_symlink() or not path.is_file():
            continue
        data = path.read_bytes()
        new = data
        for old_prefix, new_prefix in moves:
            new = new.replace(old_prefix, new_prefix)
        if new != data:
            st = path.stat()
            path.write_bytes(new)
            os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))

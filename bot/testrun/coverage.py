"""Coverage: on which kernels each changed file of a series was compiled.

A build's objects say what they were compiled from: gcc's ``-MMD`` files
(``obj.d``: ``obj.o: src.c header.h ...``) and kbuild's ``.obj.o.cmd``
(``source_...``/``deps_... :=`` lists). A changed tree file is mapped to
its copy in the generated package (the same path, else a file with the same
content); a source or header counts as compiled on a kernel when one of
that kernel's objects depends on its copy. The package's own changed code
counts too: a series that changes only ``patches/`` or a Coccinelle file
changes the driver code the generator writes, and that code must have been
compiled. A series whose changed C code was compiled on no kernel has not
been tested, whatever the builds said.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

from bot.config.rules import Kernel
from bot.testrun import why_not

log = logging.getLogger(__name__)
CODE_SUFFIXES = (".c", ".h")
_MAKE_FUNCTION = re.compile(r"\$\([^)]*\)")  # $(wildcard include/config/...)
NOT_COMPILED = "not compiled on any configured kernel"


@dataclass
class FileCoverage:
    path: str                   # in the tree
    package_path: str | None    # its copy in the generated package, if any
    kernels: list[str] = field(default_factory=list)  # compiled on these
    generated: bool = False     # a package file the series changed through the generator
    reason: str = ""            # why it was compiled on no kernel, when known

    @property
    def compiled(self) -> bool:
        return bool(self.kernels)

    @property
    def label(self) -> str:
        return f"{self.path} (generated)" if self.generated else self.path


def is_code(path: str) -> bool:
    return path.endswith(CODE_SUFFIXES)


def relative(path: str, roots: tuple[Path, ...]) -> str | None:
    """A dependency path relative to the package (None for the kernel's own headers)."""
    if not os.path.isabs(path):
        return os.path.normpath(path)
    for root in roots:
        prefix = str(root).rstrip("/") + "/"
        if path.startswith(prefix):
            return os.path.normpath(path[len(prefix):])
    return None


def _make_deps(text: str) -> list[str]:
    """The prerequisites of the first rule of a gcc -MMD file."""
    first = text.replace("\\\n", " ").split("\n", 1)[0]
    _target, sep, deps = first.partition(": ")
    return deps.split() if sep else []


def _kbuild_deps(text: str) -> list[str]:
    """``source_x := path`` and the ``deps_x := \\`` list of a kbuild .cmd file."""
    out: list[str] = []
    joined = text.replace("\\\n", " ")
    for line in joined.splitlines():
        name, sep, value = line.partition(" := ")
        if sep and name.startswith(("source_", "deps_")):
            out += _MAKE_FUNCTION.sub(" ", value).split()
    return out


MAX_READ = 16 * 1024 * 1024


def _regular(path: Path) -> bool:
    """A regular file of sane size, not through a symlink: everything here was
    written by the series' generator or build, and the bot reads it unsandboxed."""
    try:
        st = path.lstat()
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and st.st_size <= MAX_READ


def dependencies(dep: Path) -> list[str] | None:
    """What one object was compiled from, by its gcc ``.d`` or kbuild ``.obj.o.cmd``
    file; None for any other file."""
    if not _regular(dep):
        return None
    if dep.suffix == ".d":
        return _make_deps(dep.read_text(errors="replace"))
    if dep.name.startswith(".") and dep.name.endswith(".o.cmd"):
        return _kbuild_deps(dep.read_text(errors="replace"))
    return None


def object_of(dep: Path) -> Path:
    """The object a dependency file describes: ``x.d`` -> ``x.o``, ``.x.o.cmd`` -> ``x.o``."""
    if dep.suffix == ".d":
        return dep.with_suffix(".o")
    return dep.with_name(dep.name[1:-len(".cmd")])


def compiled(build_dir: Path, package: Path) -> set[str] | None:
    """Package paths of every source and header the objects in ``build_dir``
    depend on; None when the build left no dependency files at all."""
    if not build_dir.is_dir():
        return None
    roots = (package.resolve(), package, build_dir.resolve(), build_dir)
    seen = False
    found: set[str] = set()
    for dep in build_dir.rglob("*"):
        deps = dependencies(dep)
        if deps is None:
            continue
        if dep.name.endswith(".o.cmd"):
            # kbuild runs in the kernel's dir: its relative paths are the kernel's own
            # generated headers; the module's files are absolute.
            deps = [d for d in deps if os.path.isabs(d)]
        seen = True
        found.update(p for p in (relative(d, roots) for d in deps) if p)
    return found if seen else None


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def package_path(tree: Path, package: Path, path: str) -> str | None:
    """Where the generator put the tree file ``path``: the same path when the
    package has it, else a package file of the same name and content."""
    source = tree / path
    if _regular(package / path):
        return path
    if not _regular(source):
        return None
    want = _digest(source)
    for candidate in sorted(package.rglob(source.name)):
        if _regular(candidate) and _digest(candidate) == want:
            return str(candidate.relative_to(package))
    return None


def _renamed_copy(path: str, generated: list[str]) -> str | None:
    """The one changed package file of the tree file's name: its copy when the
    generator rewrote it on the way (the real gentree turns CONFIG_ into CPTCFG_)."""
    same = [p for p in generated if os.path.basename(p) == os.path.basename(path)]
    return same[0] if len(same) == 1 else None


def measure(tree: Path, package: Path, changed: list[str], build_dirs: dict[str, Path],
            package_changed: list[str] = (), kernels: list[Kernel] = (),
            known_before: dict[str, set[str]] | None = None,
            config_dirs: dict[str, Path] | None = None) -> list[FileCoverage] | None:
    """Per changed C source or header, the kernels whose build compiled it;
    None when no build left dependency files (coverage unknown).
    ``package_changed``: package files whose content differs from the base's
    package; those that are not the copy of a changed tree file come after the
    tree's files (``generated``). ``known_before``: kernels not built again,
    with what their base build compiled. ``config_dirs``: each kernel's build
    dir holding its ``.config`` (the reason a file was compiled nowhere)."""
    code = [p for p in changed if is_code(p) and _regular(tree / p)]
    generated = [p for p in package_changed if is_code(p) and _regular(package / p)]
    if not code and not generated:
        return []
    per_kernel = {name: compiled(d, package) for name, d in build_dirs.items()}
    per_kernel.update(known_before or {})
    known = {name: files for name, files in per_kernel.items() if files is not None}
    if not known:
        log.info("no dependency files in the build dirs: coverage unknown")
        return None
    out = []
    for path in code:
        copy = package_path(tree, package, path) or _renamed_copy(path, generated)
        built = [name for name, files in known.items() if copy is not None and copy in files]
        out.append(FileCoverage(path, copy, built))
    copies = {f.package_path for f in out}
    for path in generated:
        if path not in copies:
            built = [name for name, files in known.items() if path in files]
            out.append(FileCoverage(path, path, built, generated=True))
    makefiles = why_not.Makefiles(package)
    for f in out:
        if not f.compiled:
            f.reason = why_not.reason(makefiles, f.package_path, config_dirs or build_dirs,
                                      kernels) \
                if f.package_path else "not in the generated package"
    return out


def unknown(tree: Path, package: Path, changed: list[str],
            package_changed: list[str]) -> list[FileCoverage]:
    """The changed code, each file compiled on no known kernel: the builds left
    no dependency files to tell."""
    files = [FileCoverage(p, None) for p in changed if is_code(p) and _regular(tree / p)]
    files += [FileCoverage(p, p, generated=True) for p in package_changed
              if is_code(p) and _regular(package / p)]
    for f in files:
        f.reason = "the builds left no dependency files: coverage unknown"
    return files

"""Why a changed file of the package was compiled on no kernel, when the
package says: the Kconfig symbol that builds it (from the kbuild Makefiles of
its dir and the dirs above) is not set in any build's ``.config``, or the
tree's ``dependencies`` file keeps that symbol from every configured kernel.

    obj-$(CPTCFG_MWIFIEX) += mwifiex.o       # in drivers/.../mwifiex/Makefile
    mwifiex-y += main.o                      # main.c is part of mwifiex.o
    obj-$(CPTCFG_MWIFIEX) += mwifiex/        # or the dir, in the Makefile above

Everything here reads files the series' generator wrote: regular files only,
never through a symlink, with a size cap (bot/testrun/coverage.py ``_regular``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from bot.config.rules import Kernel

_SYMBOL = re.compile(r"\$\(((?:CONFIG|CPTCFG)_\w+)\)")
_MAKEFILES = ("Makefile", "Kbuild")
MAX_READ = 4 * 1024 * 1024


def read_file(path: Path, root: Path | None = None) -> str | None:
    """A regular file's text, never through a symlink (with ``root``: no
    symlink anywhere below it on the way), within the size cap."""
    try:
        if not path.is_file() or path.is_symlink() or path.stat().st_size > MAX_READ:
            return None
        if root is not None and not os.path.realpath(path).startswith(
                os.path.realpath(root) + os.sep):
            return None
        return path.read_text(errors="replace")
    except OSError:
        return None


class Makefiles:
    """The kbuild Makefiles of one package, each read and indexed once (a
    series' package may hold thousands of files and long Makefiles)."""

    def __init__(self, package: Path):
        self.package = package
        self._index: dict[str, dict[str, list[str]]] = {}
        self._dependencies: dict[str, tuple[int, ...]] | None = None
        self._configs: dict[tuple, dict[str, set[str]]] = {}

    def rules_naming(self, rel_dir: str, target: str) -> list[str]:
        """The left sides of the ``x += a b`` / ``x := ...`` lines of ``rel_dir``'s
        Makefile (or Kbuild) whose right side names ``target``."""
        if rel_dir not in self._index:
            index: dict[str, list[str]] = {}
            for name in _MAKEFILES:
                text = read_file(self.package / rel_dir / name, self.package)
                for line in (text or "").replace("\\\n", " ").splitlines():
                    m = re.match(r"\s*([\w$().-]+)\s*[:+]?=\s*(.*)", line)
                    for word in m.group(2).split() if m else ():
                        index.setdefault(word, []).append(m.group(1))
            self._index[rel_dir] = index
        return self._index[rel_dir].get(target, [])

    def symbols_for(self, rel_dir: str, target: str, depth: int = 0) -> list[str] | None:
        """The Kconfig symbols that must be set for ``target`` (an object or a
        ``dir/``) of ``rel_dir`` to be built; None when no Makefile names it."""
        if depth > 8:
            return None
        for left in self.rules_naming(rel_dir, target):
            symbols = _SYMBOL.findall(left)
            if left.startswith("obj-"):
                if symbols:
                    return symbols
                # obj-y: built when its dir is
                return self._dir_symbols(rel_dir, depth) or []
            composite = re.match(r"([\w-]+?)-(?:y|objs|\$\(\w+\))$", left)
            if composite:
                above = self.symbols_for(rel_dir, composite.group(1) + ".o", depth + 1)
                return None if above is None else symbols + above
        return None

    def dependencies(self) -> dict[str, tuple[int, ...]]:
        """The package's ``dependencies`` file (``_dependencies``), read once."""
        if self._dependencies is None:
            self._dependencies = _dependencies(self.package)
        return self._dependencies

    def configs(self, build_dirs: dict[str, Path]) -> dict[str, set[str]]:
        """``config_values`` of these build dirs, read once per set of dirs."""
        key = tuple(sorted((k, str(v)) for k, v in build_dirs.items()))
        if key not in self._configs:
            self._configs[key] = config_values(build_dirs)
        return self._configs[key]

    def _dir_symbols(self, rel_dir: str, depth: int) -> list[str] | None:
        parent, name = os.path.split(rel_dir.rstrip("/"))
        if not name:
            return None
        return self.symbols_for(parent, name + "/", depth + 1)


def config_values(build_dirs: dict[str, Path]) -> dict[str, set[str]]:
    """Per kernel, the symbols its build's ``.config`` sets (kernels without one
    are left out: their config is unknown)."""
    out = {}
    for name, build in build_dirs.items():
        text = read_file(build / ".config")
        if text is not None:
            out[name] = {line.split("=", 1)[0] for line in text.splitlines()
                         if "=" in line and not line.startswith("#")
                         and line.split("=", 1)[1] not in ("n", "")}
    return out


def _dependencies(package: Path) -> dict[str, tuple[int, ...]]:
    """``SYMBOL X.Y`` lines of the package's dependencies file: the symbol needs
    a kernel at least that new."""
    text = read_file(package / "dependencies") or ""
    out = {}
    for line in text.splitlines():
        words = line.split()
        if len(words) == 2 and re.fullmatch(r"\d+(\.\d+)*", words[1]):
            out[words[0]] = tuple(int(p) for p in words[1].split("."))
    return out


def symbols(package: Path | Makefiles, path: str) -> list[str] | None:
    """The Kconfig symbols that build the C file ``path`` of the package; None
    when no Makefile names its object."""
    makefiles = package if isinstance(package, Makefiles) else Makefiles(package)
    rel_dir, name = os.path.split(path)
    return makefiles.symbols_for(rel_dir, name[:-2] + ".o")


def reason(package: Path | Makefiles, path: str, build_dirs: dict[str, Path],
           kernels: list[Kernel]) -> str:
    """Why ``path`` (a package file) was compiled on no kernel; "" if unknown."""
    if path.endswith(".h"):
        return "no compiled object includes it"
    makefiles = package if isinstance(package, Makefiles) else Makefiles(package)
    package = makefiles.package
    rel_dir, name = os.path.split(path)
    needs_set = symbols(makefiles, path)
    if needs_set is None:
        return "" if not (package / rel_dir / "Makefile").is_file() else \
            f"no rule of {rel_dir or '.'}/Makefile builds {name[:-2]}.o"
    needs = makefiles.dependencies()
    newest = max((k.version_tuple for k in kernels), default=())
    for sym in needs_set:
        bare = re.sub(r"^(CONFIG|CPTCFG)_", "", sym)
        if bare in needs and needs[bare] > newest:
            want = ".".join(map(str, needs[bare]))
            return f"{bare} needs Linux {want} or newer (dependencies); no configured kernel is"
    configs = makefiles.configs(build_dirs)
    if configs:
        unset = [s for s in needs_set if not any(s in have for have in configs.values())]
        older = [m.group(1).replace("_", ".") for s in unset
                 if (m := re.fullmatch(r"(?:CONFIG|CPTCFG)_KERNEL_(\d+_\d+)", s))]
        if older:
            return f"compiled only on kernels older than {older[0]}; no configured kernel is"
        if unset:
            return f"{', '.join(unset)} not set in the build's config"
    return ""

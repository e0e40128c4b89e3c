"""The rules' ``[[kernels]]``: each kernel's name, version and prepared build dir
(a path, or a glob whose newest match is taken; ``version = "auto"`` reads it)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from bot.config import kversion
from bot.config.table import _path, _Table


@dataclass(frozen=True)
class Kernel:
    name: str
    version: str
    path: Path

    @property
    def version_tuple(self) -> tuple[int, ...]:
        return tuple(int(p) for p in re.findall(r"\d+", self.version)[:3])


def _natural(text: str) -> list:
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", text)]


def _kernel_path(t: _Table, base: Path) -> Path:
    """A path, or a glob whose newest match (version order) is taken, for
    Debian's linux-headers-6.1.0-NN-amd64 that change with each stable update."""
    raw = t.get("path", str)
    if not any(c in raw for c in "*?["):
        return _path(base, raw)
    pattern = _path(base, raw)
    matches = sorted(Path(pattern.anchor).glob(str(pattern.relative_to(pattern.anchor))),
                     key=lambda p: _natural(p.name))
    if not matches:
        raise t.fail("path", f"no directory matches {raw!r} (are the kernel headers installed?)")
    return matches[-1]


def _detect_version(t: _Table, path: Path) -> str:
    """MAJOR.PATCHLEVEL.SUBLEVEL from a kernel build dir's generated version.h."""
    version = kversion.version_of(path)
    if version is None:
        raise t.fail("version", f"is \"auto\" but no version.h with a version was found in {path}")
    return version


def _kernels(top: _Table, file: str, base: Path) -> list[Kernel]:
    raw = top.get("kernels", list)
    if not raw:
        raise top.fail("kernels", "must list at least one kernel")
    kernels = []
    for i, item in enumerate(raw):
        t = _Table(file, f"kernels[{i}]", item)
        path = _kernel_path(t, base)
        version = t.get("version", str)
        if version == "auto":
            version = _detect_version(t, path)
        if not re.match(r"^\d+\.\d+(\.\d+)?", version):
            raise t.fail("version", f"must look like 6.1 or 6.1.140 (or \"auto\"), not {version!r}")
        k = Kernel(name=t.get("name", str), version=version, path=path)
        t.done()
        if any(k.name == other.name for other in kernels):
            raise t.fail("name", f"duplicate kernel name {k.name!r}")
        kernels.append(k)
    return sorted(kernels, key=lambda k: k.version_tuple)

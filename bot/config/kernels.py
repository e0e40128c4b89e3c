"""The rules' ``[[kernels]]``: each kernel's name, version and prepared build dir
(a path, or a glob whose newest match is taken; ``version = "auto"`` reads it).
``KernelTable`` is one table as the file declares it; ``Kernel`` is what the
rest of the bot uses."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator

from bot.config import kversion
from bot.config.fields import problem, resolve


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


class KernelTable(BaseModel):
    """One ``[[kernels]]`` table. ``path`` is resolved (a glob to its newest
    match) and ``version = "auto"`` read from it while validating."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, defer_build=True)

    name: str
    path: Path
    version: str

    @field_validator("path", mode="before")
    @classmethod
    def _path(cls, raw: Any, info: ValidationInfo) -> Path:
        """A path, or a glob whose newest match (version order) is taken, for
        Debian's linux-headers-6.1.0-NN-amd64 that change with each stable update."""
        if not isinstance(raw, str):
            return raw  # the type check says what is wrong
        pattern = resolve((info.context or {}).get("base", Path.cwd()), raw)
        if pattern is None or not any(c in raw for c in "*?["):
            return pattern
        matches = sorted(Path(pattern.anchor).glob(str(pattern.relative_to(pattern.anchor))),
                         key=lambda p: _natural(p.name))
        if not matches:
            raise problem(f"no directory matches {raw!r} (are the kernel headers installed?)")
        return matches[-1]

    @field_validator("version")
    @classmethod
    def _version(cls, version: str, info: ValidationInfo) -> str:
        if version == "auto":
            path = info.data.get("path")
            if path is None:
                return version  # the path's own error says why
            version = kversion.version_of(path)
            if version is None:
                raise problem(f"is \"auto\" but no version.h with a version was found in {path}")
        if not re.match(r"^\d+\.\d+(\.\d+)?", version):
            raise problem(f"must look like 6.1 or 6.1.140 (or \"auto\"), not {version!r}")
        return version

    def kernel(self) -> Kernel:
        return Kernel(self.name, self.version, self.path)


def check_kernels(tables: list[KernelTable]) -> list[KernelTable]:
    """At least one kernel, no name twice (the error names the later one)."""
    if not tables:
        raise problem("must list at least one kernel")
    seen: set[str] = set()
    for i, table in enumerate(tables):
        if table.name in seen:
            raise problem(f"duplicate kernel name {table.name!r}", key=f"[{i}].name")
        seen.add(table.name)
    return tables

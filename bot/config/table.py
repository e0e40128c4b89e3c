"""Reading one TOML table of the rules: typed getters that remember which
keys were used, so unknown keys and bad values raise a ConfigError naming
the file and the key."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from bot.errors import ConfigError  # noqa: F401 (re-exported: its home is bot/errors.py)

PLACEHOLDERS = {
    "tree", "output", "upstream", "kernel_path", "kernel_version", "kernel_name",
    "build_dir", "jobs", "python",
}


_DURATION = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


class _Table:
    """Reads one TOML table, remembering which keys were used."""

    def __init__(self, file: str, prefix: str, data: Any):
        self.file, self.prefix = file, prefix
        if not isinstance(data, dict):
            raise ConfigError(file, prefix or "(top)", "must be a table")
        self.data = data
        self.used: set[str] = set()

    def _key(self, key: str) -> str:
        return f"{self.prefix}.{key}" if self.prefix else key

    def fail(self, key: str, problem: str) -> ConfigError:
        return ConfigError(self.file, self._key(key), problem)

    def get(self, key: str, kind: type | tuple, default: Any = ..., ) -> Any:
        self.used.add(key)
        if key not in self.data:
            if default is ...:
                raise self.fail(key, "is required")
            return default
        value = self.data[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kind):
            names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
            raise self.fail(key, f"must be {names}, not {type(value).__name__} {value!r}")
        return value

    def positive(self, key: str, default: Any = ...) -> int:
        value = self.get(key, int, default)
        if value <= 0:
            raise self.fail(key, f"must be positive, not {value}")
        return value

    def duration(self, key: str, default: Any = ...) -> int:
        value = self.get(key, (int, str), default)
        if isinstance(value, int):
            seconds = value
        else:
            match = _DURATION.match(value)
            if not match:
                raise self.fail(key, f"must be seconds or like '90s', '10m', '2h', '3d', not {value!r}")
            seconds = int(match.group(1)) * _UNITS[match.group(2)]
        if seconds < 0:
            raise self.fail(key, "must not be negative")
        return seconds

    def table(self, key: str, required: bool = False) -> _Table:
        data = self.get(key, dict, ... if required else {})
        return _Table(self.file, self._key(key), data)

    def commands(self, key: str) -> list[list[str]]:
        """One argument list, or a list of them run in order (never a shell string)."""
        value = self.get(key, list)
        lists = value if value and all(isinstance(a, list) for a in value) else [value]
        for args in lists:
            if not args or not all(isinstance(a, str) for a in args):
                raise self.fail(key, "must be an argument list of strings (or a list of such "
                                     "lists), not a shell string")
            for arg in args:
                for name in re.findall(r"\{(\w+)\}", arg):
                    if name not in PLACEHOLDERS:
                        raise self.fail(key, f"unknown placeholder {{{name}}}; known: "
                                             + ", ".join(sorted(PLACEHOLDERS)))
        return [list(a) for a in lists]

    def done(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            raise self.fail(unknown[0], "unknown key")


def _path(base: Path, value: str | None) -> Path | None:
    if not value:
        return None
    p = Path(value).expanduser()
    return p if p.is_absolute() else (base / p)


_SIZE = re.compile(r"^\s*(\d+)\s*([KMG]?)i?B?\s*$", re.I)
_SIZE_UNITS = {"": 1, "K": 1024, "M": 1024 ** 2, "G": 1024 ** 3}


def _size(table: _Table, key: str, default: int, zero: bool = True) -> int:
    """Bytes, as an integer or like "512M", "4G"; 0 (no limit) only when ``zero``."""
    value = table.get(key, (int, str), default)
    if isinstance(value, str):
        match = _SIZE.match(value)
        if not match:
            raise table.fail(key, f"must be bytes or like '512K', '64M', '4G', not {value!r}")
        value = int(match.group(1)) * _SIZE_UNITS[match.group(2).upper()]
    if value < 0 or (value == 0 and not zero):
        raise table.fail(key, f"must be {'0 (no limit) or ' if zero else ''}positive, not {value}")
    return value


def _count(table: _Table, key: str, default: int) -> int:
    value = table.get(key, int, default)
    if value < 0:
        raise table.fail(key, f"must be 0 (no limit) or positive, not {value}")
    return value

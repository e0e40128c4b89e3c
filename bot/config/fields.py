"""The value types of the rules file: durations, sizes, positive counts,
paths relative to the rules file, argument lists, address lists and fixed
choices. Each is an ``Annotated`` pydantic type whose validator says what is
wrong in today's words (``must be positive, not 0``); bot/config/schema.py
builds the tables from them."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, ValidationInfo
from pydantic_core import PydanticCustomError

# The placeholders a generate or build command may use (filled by rules.expand).
PLACEHOLDERS = {
    "tree", "output", "upstream", "kernel_path", "kernel_version", "kernel_name",
    "build_dir", "jobs", "python",
}
KiB, MiB, GiB = 1024, 1024 ** 2, 1024 ** 3
MAX_BYTES = 1024 ** 5 * 1024   # 1024P: far above any host, inside a 64-bit limit
MAX_SECONDS = 10 ** 9          # about 31 years

_DURATION = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_SIZE = re.compile(r"^\s*(\d+)\s*([KMG]?)i?B?\s*$", re.I)
_SIZE_UNITS = {"": 1, "K": KiB, "M": MiB, "G": GiB}


def problem(text: str, key: str = "") -> PydanticCustomError:
    """A validation error whose text is shown as is; ``key`` names a key below
    the one being validated (``password_file``, ``[2].name``)."""
    return PydanticCustomError("config", "{problem}", {"problem": text, "key": key})


def _wrong_type(value: Any, names: str) -> PydanticCustomError:
    return problem(f"must be {names}, not {type(value).__name__} {value!r}")


def _int_or_str(value: Any) -> int | str:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise _wrong_type(value, "int/str")
    return value


def _duration(value: Any) -> int:
    value = _int_or_str(value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if not match:
            raise problem(f"must be seconds or like '90s', '10m', '2h', '3d', not {value!r}")
        value = int(match.group(1)) * _UNITS[match.group(2)]
    if value < 0:
        raise problem("must not be negative")
    if value > MAX_SECONDS:  # prlimit's CPU limit and timeouts must stay in range
        raise problem(f"is too large: at most {MAX_SECONDS} seconds, not {value}")
    return value


def _bytes(value: Any) -> int:
    value = _int_or_str(value)
    if isinstance(value, str):
        match = _SIZE.match(value)
        if not match:
            raise problem(f"must be bytes or like '512K', '64M', '4G', not {value!r}")
        value = int(match.group(1)) * _SIZE_UNITS[match.group(2).upper()]
    if value > MAX_BYTES:  # prlimit and the kernel take 64-bit limits
        raise problem(f"is too large: at most {MAX_BYTES // 1024 ** 5}P, not {value}")
    return value


def _positive(value: int) -> int:
    if value <= 0:
        raise problem(f"must be positive, not {value}")
    return value


def _zero_or_positive(value: int) -> int:
    if value < 0:
        raise problem(f"must be 0 (no limit) or positive, not {value}")
    return value


# Seconds: an integer or "90s", "10m", "2h", "3d".
Duration = Annotated[int, BeforeValidator(_duration)]
# Bytes: an integer or "512K", "64M", "4G"; 0 means no limit.
Size = Annotated[int, BeforeValidator(_bytes), AfterValidator(_zero_or_positive)]
# Bytes, where 0 makes no sense.
PositiveSize = Annotated[int, BeforeValidator(_bytes), AfterValidator(_positive)]
Positive = Annotated[int, AfterValidator(_positive)]
# A count where 0 means no limit.
Count = Annotated[int, AfterValidator(_zero_or_positive)]


def resolve(base: Path, value: str | None) -> Path | None:
    """A rules path: "" is none, ``~`` is expanded, relative is under ``base``."""
    if not value:
        return None
    p = Path(value).expanduser()
    return p if p.is_absolute() else (base / p)


def _rules_path(value: Any, info: ValidationInfo) -> Path | None:
    if isinstance(value, Path):
        return value
    if not isinstance(value, str):
        raise _wrong_type(value, "str")
    return resolve((info.context or {}).get("base", Path.cwd()), value)


# A path, relative to the rules file's folder (the validation context's "base").
RulesPath = Annotated[Path | None, BeforeValidator(_rules_path)]


def _commands(value: Any) -> list[list[str]]:
    """One argument list, or a list of them run in order (never a shell string)."""
    if not isinstance(value, list):
        raise _wrong_type(value, "list")
    lists = value if value and all(isinstance(a, list) for a in value) else [value]
    for args in lists:
        if not args or not all(isinstance(a, str) for a in args):
            raise problem("must be an argument list of strings (or a list of such lists), "
                          "not a shell string")
        for arg in args:
            for name in re.findall(r"\{(\w+)\}", arg):
                if name not in PLACEHOLDERS:
                    raise problem(f"unknown placeholder {{{name}}}; known: "
                                  + ", ".join(sorted(PLACEHOLDERS)))
    return [list(a) for a in lists]


Commands = Annotated[list[list[str]], BeforeValidator(_commands)]


def _widen(value: Any) -> list[str]:
    """[build] widen: one argument list holding the argument "{symbols}" (the
    Kconfig symbols to enable, one argument each); [] for none."""
    if not isinstance(value, list) or not all(isinstance(a, str) for a in value):
        raise problem("must be one argument list of strings")
    if not value:
        return value
    if value.count("{symbols}") != 1:
        raise problem('must have "{symbols}" as exactly one whole argument (the symbols to '
                      'enable, one argument each)')
    if any("{symbols}" in a for a in value if a != "{symbols}"):
        raise problem('"{symbols}" must be an argument of its own, not part of one')
    if not value[0].strip() or value[0] == "{symbols}":
        raise problem("must start with the program to run")
    _commands([a for a in value if a != "{symbols}"])  # the other placeholders
    return value


WidenCommand = Annotated[list[str], BeforeValidator(_widen)]


def _addresses(what: str):
    def check(value: Any) -> tuple[str, ...]:
        if not isinstance(value, list | tuple):
            raise _wrong_type(value, "list")
        for i, item in enumerate(value):
            if not isinstance(item, str) or "@" not in item:
                raise problem(f"entry {i} must be {what}, not {item!r}")
        return tuple(v.strip().lower() for v in value)
    return BeforeValidator(check)


# Mail addresses, stored in lower case.
Addresses = Annotated[tuple[str, ...], _addresses("a mail address")]
# fnmatch patterns of addresses ("*@lists.*"), lower case.
AddressPatterns = Annotated[tuple[str, ...],
                            _addresses('an address pattern like "*@lists.example.org"')]


def choice(*values: str):
    """A string that must be one of ``values``; the error lists them."""
    two = len(values) == 2
    expected = f'"{values[0]}" or "{values[1]}"' if two else "one of " + ", ".join(values)

    def check(value: Any) -> str:
        if not isinstance(value, str):
            raise _wrong_type(value, "str")
        if value not in values:
            raise problem(f"must be {expected}, not {value!r}")
        return value
    return Annotated[str, BeforeValidator(check)]


def parse_listen(listen: str) -> tuple[str, int]:
    """'host:port' -> (host, port); ValueError saying what is wrong."""
    match = re.match(r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[^\s:\[\]]+)):(?P<port>\d+)$", listen)
    port = int(match.group("port")) if match else 0
    if not match or not 0 < port < 65536:
        raise ValueError(f"must be \"host:port\" like \"127.0.0.1:8080\" (port 1-65535), "
                         f"not {listen!r}")
    return match.group("v6") or match.group("host"), port


def _listen(value: Any) -> tuple[str, int] | None:
    if not isinstance(value, str):
        raise _wrong_type(value, "str")
    if not value:
        return None
    try:
        return parse_listen(value)
    except ValueError as exc:
        raise problem(str(exc)) from None


# [web] listen: "host:port" (or "[::1]:port"), "" for off.
Listen = Annotated[tuple[str, int] | None, BeforeValidator(_listen)]


def _verbatim(value: Any) -> tuple[tuple[str, str], ...]:
    """[generate] verbatim = ["backport/compat/*.[ch] -> compat/", ...]: tree files
    (a glob, ``**`` for any depth) the generator copies unchanged into a package dir."""
    if not isinstance(value, list):
        raise _wrong_type(value, "a list of strings")
    out = []
    for i, entry in enumerate(value):
        glob, sep, dest = entry.partition(" -> ") if isinstance(entry, str) else ("", "", "")
        glob, dest = glob.strip(), dest.strip()
        if not sep or not glob or not dest.endswith("/") or "/" in (glob[0], dest[0]) \
                or ".." in glob.split("/") + dest.split("/"):
            raise problem(f"entry {i} must read \"<tree glob> -> <package dir>/\""
                          f" (relative paths), not {entry!r}")
        out.append((glob, "" if dest == "./" else dest))
    return tuple(out)


# (tree glob, package dir) pairs the generator copies unchanged (bot/testrun/verbatim.py).
Verbatim = Annotated[tuple[tuple[str, str], ...], BeforeValidator(_verbatim)]


def _markers(value: Any) -> tuple[str, ...]:
    """[generate] verbatim_unless = ["CONFIG_", ...]: non-empty strings."""
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _wrong_type(value, "a list of strings")
    if "" in value:
        raise problem("an empty string would match every file")
    return tuple(value)


# Strings that make the generator rewrite a file it otherwise copies.
Markers = Annotated[tuple[str, ...], BeforeValidator(_markers)]


def _stamps(value: Any) -> tuple[str, ...]:
    """[generate] stamps = ["versions"]: relative package paths."""
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _wrong_type(value, "a list of strings")
    for i, entry in enumerate(value):
        if not entry or entry.startswith("/") or ".." in entry.split("/") or entry.endswith("/"):
            raise problem(f"entry {i} must be a file path relative to the package, not {entry!r}")
    return tuple(value)


# Package files the generator writes from the tree's revision (bot/testrun/warm.py).
Stamps = Annotated[tuple[str, ...], BeforeValidator(_stamps)]

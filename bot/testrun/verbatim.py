"""The verbatim shortcut: no generator run for files the generator only copies.

The rules declare tree files the generator copies unchanged (``[generate]
verbatim = ["backport/compat/*.[ch] -> compat/"]``). When a series changes
only such files, its package is the base's warm package (bot/testrun/warm.py)
with those files replaced or removed. The mapping is checked once per base
against the generator's real output (``check``): every tree file it names
must be byte-identical at its package path; when one is not, the shortcut
is refused for that base and the generator runs.

A generator may also rewrite some of the files it otherwise copies: the
real gentree.py renames the package's own Kconfig symbols (``CONFIG_X`` ->
``CPTCFG_X``) in every file. ``[generate] verbatim_unless`` names the strings
that trigger such rewrites: a tree file holding one is left out of the check,
and a series whose changed file holds one is generated.
"""

from __future__ import annotations

import codecs
import re
import shutil
from functools import lru_cache
from pathlib import Path

from bot.sandbox import cleanup

Mapping = tuple[tuple[str, str], ...]


@lru_cache(maxsize=64)
def _pattern(glob: str) -> tuple[re.Pattern, str]:
    """The glob as a regex ("**" any depth, "*" and "?" within a path part) and
    its fixed leading dirs (what the package dir replaces)."""
    parts = re.split(r"(\*\*/?|\*|\?|\[[^\]]*\])", glob)
    regex = ""
    for part in parts:
        if part.startswith("**"):
            regex += ".*"
        elif part == "*":
            regex += "[^/]*"
        elif part == "?":
            regex += "[^/]"
        elif part.startswith("[") and part.endswith("]") and len(part) > 2:
            regex += "[" + part[1:-1].replace("!", "^", 1 if part[1] == "!" else 0) + "]"
        else:
            regex += re.escape(part)
    fixed = parts[0].rpartition("/")[0]
    return re.compile(regex + r"\Z"), fixed + "/" if fixed else ""


def package_path(mapping: Mapping, tree_path: str) -> str | None:
    """Where the generator copies ``tree_path`` verbatim; None if the rules do not say."""
    for glob, dest in mapping:
        regex, fixed = _pattern(glob)
        if regex.match(tree_path):
            return dest + tree_path[len(fixed):]
    return None


def covers(mapping: Mapping, tree_paths: list[str]) -> bool:
    """Every changed tree path is one the generator copies verbatim."""
    return bool(mapping) and bool(tree_paths) and all(
        package_path(mapping, p) is not None for p in tree_paths)


def check(mapping: Mapping, tree: Path, package: Path, unless: tuple[str, ...] = ()) -> str:
    """"" when every tree file the mapping names (except those holding one of
    ``unless``) is byte-identical at its package path in ``package`` (the
    generator's output of ``tree``); else the first problem."""
    if not mapping:
        return "no [generate] verbatim mapping"
    for path in sorted(p for p in tree.rglob("*") if p.is_file() and ".git" not in p.parts):
        rel = str(path.relative_to(tree))
        dest = package_path(mapping, rel)
        if dest is None:
            continue
        copy = package / dest
        if not copy.is_file() or copy.is_symlink():  # rewritten or not: it is there
            return f"{rel} is not in the generated package at {dest}"
        data = path.read_bytes()
        if marked(data, unless):
            continue
        if copy.read_bytes() != data:
            return f"{rel} differs from its copy {dest} in the generated package"
    return ""


def marked(data: bytes, unless: tuple[str, ...]) -> str:
    """The first of ``unless`` that ``data`` holds (the generator rewrites it); "" if none."""
    return next((m for m in unless if m.encode() in data), "")


def rewritten(tree: Path, changed: list[str], unless: tuple[str, ...]) -> str:
    """"<path> holds <marker>" for the first changed tree file the generator would
    rewrite rather than copy; "" when none would be. A generator that rewrites
    files reads them as text (gentree.py: every file it writes): a file that is
    not UTF-8, or holds a carriage return (which it makes a newline), is never
    copied unchanged, whatever the base's files showed."""
    for rel in changed:
        path = tree / rel
        if unless and path.is_file() and (why := _rewritten(path, unless)):
            return f"{rel} {why}"
    return ""


def _rewritten(path: Path, unless: tuple[str, ...]) -> str:
    """Why the generator would not copy ``path`` unchanged; "" if it would. Read in
    chunks: a series' file may be as large as a build may write."""
    keep = max(len(m.encode()) for m in unless) - 1  # a marker across two chunks
    decoder = codecs.getincrementaldecoder("utf-8")()
    tail, not_text = b"", ""
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            if m := marked(tail + chunk, unless):
                return f"holds {m!r}"
            tail = (tail + chunk)[-keep:] if keep else b""
            not_text = not_text or _not_text(decoder, chunk)
    return not_text or _not_text(decoder, b"", final=True)


def _not_text(decoder: codecs.IncrementalDecoder, chunk: bytes, final: bool = False) -> str:
    """What the generator, reading the file as text, would not give back unchanged."""
    if b"\r" in chunk:
        return "holds a carriage return"  # a newline when read as text
    try:
        decoder.decode(chunk, final)
    except UnicodeDecodeError:
        return "is not UTF-8 text"
    return ""


CHUNK = 1 << 20


def lay(mapping: Mapping, base_package: Path, tree: Path, changed: list[str],
        output: Path) -> None:
    """``output`` := the base package (mtimes kept) with the series' ``changed``
    tree files copied over (removed when the series deletes them)."""
    cleanup.remove_tree(output)
    shutil.copytree(base_package, output, symlinks=True)
    for rel in changed:
        dest = output / package_path(mapping, rel)
        source = tree / rel
        if not _plain(tree, rel) and (source.exists() or source.is_symlink()):
            raise ValueError(f"{rel} is not a regular file of the tree")
        if source.is_file():
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.unlink(missing_ok=True)
            shutil.copyfile(source, dest)  # a fresh mtime: make rebuilds what uses it
        else:
            dest.unlink(missing_ok=True)


def plain_files(tree: Path, changed: list[str]) -> bool:
    """Each changed path is a regular file in the tree (no symlink on the way) or
    gone: the bot reads them unsandboxed."""
    return all(_plain(tree, rel) or not ((tree / rel).exists() or (tree / rel).is_symlink())
               for rel in changed)


def _plain(tree: Path, rel: str) -> bool:
    path = tree / rel
    return path.is_file() and path.resolve() == tree.resolve() / rel

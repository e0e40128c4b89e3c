"""What a series' diff touches, read with unidiff from the am-ready mbox."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

from unidiff import PatchSet
from unidiff.errors import UnidiffParseError

log = logging.getLogger(__name__)
_DIFF_START = re.compile(r"^diff --git ", re.M)


@dataclass
class FileChange:
    path: str
    added: list[str] = field(default_factory=list)    # added lines, without the '+'
    removed: list[str] = field(default_factory=list)  # removed lines, without the '-'
    # Their line numbers in the file after the whole series (a later patch that
    # inserts or removes lines above them moves them).
    added_lines: list[int] = field(default_factory=list)


_MAIL_START = r"^From (?:[0-9a-f]{40}|git@z|mboxrd@z) "
_DIFF_PATHS = re.compile(r"^diff --git a/(\S+) b/(\S+)$", re.M)


def patch_paths(mbox: bytes, number: int) -> list[str]:
    """The files patch ``number`` (1-based, as ``git am`` counts) names in its
    diff: what a reply about a patch that does not apply should name, rather
    than the file git's rename detection matched it to."""
    mails = [c for c in re.split(_MAIL_START, mbox.decode("utf-8", "replace"), flags=re.M)
             if c.strip()]
    if not 1 <= number <= len(mails):
        return []
    diff = mails[number - 1].split("\n-- \n", 1)[0]
    return list(dict.fromkeys(p for pair in _DIFF_PATHS.findall(diff) for p in pair))


def changes(mbox: bytes) -> list[FileChange]:
    """Every file the series changes, with its added and removed lines, merged per path."""
    text = mbox.decode("utf-8", "replace")
    merged: dict[str, FileChange] = {}
    # One PatchSet per mail: commit messages between patches confuse the parser.
    for chunk in re.split(_MAIL_START, text, flags=re.M):
        start = _DIFF_START.search(chunk)
        if not start:
            continue
        diff = chunk[start.start():].split("\n-- \n", 1)[0]
        try:
            patch = PatchSet(diff)
        except UnidiffParseError as exc:
            log.warning("diff not readable by unidiff: %s", exc)
            continue
        for pf in patch:
            path = pf.target_file[2:] if pf.target_file.startswith("b/") else pf.path
            if pf.is_removed_file:
                path = pf.source_file[2:] if pf.source_file.startswith("a/") else pf.path
            fc = merged.setdefault(path, FileChange(path))
            fc.added_lines = remap(fc.added_lines, list(pf))
            for hunk in pf:
                for line in hunk:
                    if line.is_added:
                        fc.added.append(line.value.rstrip("\n"))
                        fc.added_lines.append(line.target_line_no)
                    elif line.is_removed:
                        fc.removed.append(line.value.rstrip("\n"))
    return list(merged.values())


def remap(numbers: list[int], hunks: list) -> list[int]:
    """Line numbers of a file before ``hunks`` (unidiff hunks of one patch) as
    numbers after them; lines the hunks remove drop out."""
    if not numbers or not hunks:
        return numbers
    exact: dict[int, int] = {}
    gone: set[int] = set()
    for hunk in hunks:
        for line in hunk:
            if line.is_context:
                exact[line.source_line_no] = line.target_line_no
            elif line.is_removed:
                gone.add(line.source_line_no)
    out = []
    for n in numbers:
        if n in gone:
            continue
        if n in exact:
            out.append(exact[n])
            continue
        # Below every hunk that ends above it (an insertion of source length 0
        # goes after its source_start line).
        out.append(n + sum(h.target_length - h.source_length for h in hunks
                           if n >= h.source_start + max(h.source_length, 1)))
    return out


def touched_paths(mbox: bytes) -> list[str]:
    return sorted(c.path for c in changes(mbox))

"""Compiler diagnostics (``file:line[:col]: error|warning: text``) from a log."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

_DIAG = re.compile(
    r"^(?P<file>[^\s:][^:\n]*):(?P<line>\d+):(?:(?P<col>\d+):)?\s*"
    r"(?P<severity>fatal error|error|warning):\s*(?P<text>.*)$"
)
# gcc's "note:" after an error, e.g. where the previous definition is (in a kernel header)
_NOTE = re.compile(r"^(?P<file>[^\s:][^:\n]*):(?P<line>\d+):(?:(?P<col>\d+):)?\s*note:\s*(?P<text>.*)$")
MAX_NOTES = 2
# gcc's source excerpt lines: "   12 |   foo();" and "      |   ^~~"
_CONTEXT = re.compile(r"^\s*(\d+)? \| ")
# gcc's include chain printed before a note in another file: passed over.
_INCLUDED = re.compile(r"^(?:In file included from |\s+from )\S+[:,]$")
_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"'})
# Lines that explain a failure: make's "***", git's "fatal:"/"error:", a
# Python exception's last line, gentree's "Failed to apply", a missing file.
_TELLING = re.compile(
    r"^(?:g?make(?:\[\d+\])?: \*\*\* .*"
    r"|\s*(?:fatal|error|ERROR|FATAL): .*"
    r"|[A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt)(?:: .*)?"
    r"|.*Failed to .*"
    r"|.*: No such file or directory)$")


@dataclass
class Diagnostic:
    file: str
    line: int
    col: int
    severity: str  # error, warning
    text: str
    context: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # gcc's "note:" lines that follow it
    new: bool = True  # False when the base has the same diagnostic

    def location(self) -> str:
        return f"{self.file}:{self.line}" + (f":{self.col}" if self.col else "")

    def key(self) -> tuple[str, str, str]:
        """Identity for comparing with a baseline: no line or column numbers (they
        shift when the series edits the file), quotes and spacing normalised."""
        text = self.text.translate(_QUOTES)
        return (self.file, self.severity, " ".join(text.split()))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Diagnostic:
        known = {k: data[k] for k in ("file", "line", "col", "severity", "text", "context",
                                      "notes", "new") if k in data}
        return cls(**known)


def mark_new(series: list[Diagnostic], base: list[Diagnostic]) -> None:
    """Mark which of ``series`` the base does not have (a multiset comparison)."""
    left: dict[tuple, int] = {}
    for d in base:
        left[d.key()] = left.get(d.key(), 0) + 1
    for d in series:
        if left.get(d.key(), 0) > 0:
            left[d.key()] -= 1
            d.new = False
        else:
            d.new = True


def parse(log: str, strip_prefixes: tuple[str, ...] = (), limit: int = 200) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    current: Diagnostic | None = None
    in_note = False  # a note's own source excerpt is not the error's
    for raw_line in log.splitlines():
        match = _DIAG.match(raw_line)
        if match:
            severity = "error" if "error" in match["severity"] else "warning"
            current = Diagnostic(
                file=_relative(match["file"], strip_prefixes), line=int(match["line"]),
                col=int(match["col"] or 0), severity=severity, text=match["text"].strip(),
            )
            in_note = False
            if len(out) < limit:
                out.append(current)
            continue
        note = _NOTE.match(raw_line) if current is not None else None
        if note:
            in_note = True
            if len(current.notes) < MAX_NOTES:
                col = f":{note['col']}" if note["col"] else ""
                current.notes.append(f"{_relative(note['file'], strip_prefixes)}:{note['line']}"
                                     f"{col}: note: {note['text'].strip()}")
        elif current is not None and _CONTEXT.match(raw_line):
            if not in_note and len(current.context) < 4:
                current.context.append(raw_line.rstrip())
        elif not _INCLUDED.match(raw_line):
            current, in_note = None, False
    return out


def _relative(path: str, prefixes: tuple[str, ...]) -> str:
    for prefix in sorted(prefixes, key=len, reverse=True):
        if prefix and path.startswith(prefix.rstrip("/") + "/"):
            return path[len(prefix.rstrip("/")) + 1:]
    return path


def last_failure_lines(log: str, n: int = 5) -> list[str]:
    """When there is no file:line diagnostic, the last telling lines of a log."""
    lines = [ln for ln in log.splitlines() if ln.strip()]
    telling = [ln for ln in lines if _TELLING.match(ln) or "rror" in ln]
    return (telling or lines)[-n:]

"""Records shared across the stages: what a reply answers and to whom."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Target:
    """The mail we answer and who gets the answer."""

    msgid: str
    subject: str
    references: list[str]
    author_name: str
    author_addr: str
    series_subject: str
    revision: int
    expected: int
    present: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what assembly left out, and why

"""The entities' states and words in one place: version, run and step states,
the verdict with the one table of words every reply, `bpbot status` and the
status page show for it, and the records shared across the stages.

The enums are ``StrEnum``: a member is the very string stored in SQLite, so
``row["state"] == VersionState.READY`` holds and a member binds as a
parameter as is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import NamedTuple


class VersionState(StrEnum):
    """Where a series version is (versions.state); bot/store/ moves it."""

    WAITING = "waiting"          # patches missing; answered as incomplete after the grace
    READY = "ready"              # complete, to be tested (again, after an infra-error)
    RUNNING = "running"          # a run is under way (or the daemon died in it)
    DONE = "done"                # tested and answered
    INCOMPLETE = "incomplete"    # answered as incomplete
    UNTESTABLE = "untestable"    # cannot be tested (reason in state_reason); answered once
    SUPERSEDED = "superseded"    # a later version came before it was tested


# Not answered yet: the queue, and what keeps the daemon busy.
PENDING = (VersionState.WAITING, VersionState.READY, VersionState.RUNNING)
# Picked by the test loop (a 'running' one is a run the daemon did not finish).
TESTABLE = (VersionState.READY, VersionState.RUNNING)


class RunState(StrEnum):
    """How one run of a version ended (runs.state)."""

    RUNNING = "running"
    DONE = "done"                # answered (whatever the verdict)
    INFRA_ERROR = "infra-error"  # the bot failed; retried, answered after the last try
    INTERRUPTED = "interrupted"  # a state write failed mid-run; the version runs again
    ABANDONED = "abandoned"      # the daemon died in it; the next run is isolated
    CRASHED = "crashed"          # the isolated run killed its child process too
    UNTESTABLE = "untestable"    # b4 could not make the am-ready patches


# A run that ended a try: the crash-suspect count starts after the last one.
FINISHED = (RunState.DONE, RunState.INFRA_ERROR, RunState.UNTESTABLE)


class StepStatus(StrEnum):
    """How one apply / generate / build step ended (steps.status)."""

    SUCCESS = "success"
    FAILED = "failed"
    SKIPPED = "skipped"
    TIMEOUT = "timeout"
    INFRA_ERROR = "infra-error"


class Verdict(StrEnum):
    """A kernel's verdict against the base (the first five) and a version's
    overall verdict (versions.verdict, runs.verdict, steps.verdict)."""

    PASS = "pass"
    FAIL = "fail"
    BASE_FAILS = "base-fails"    # the base already fails there: not the series' fault
    NOT_BUILT = "not-built"
    INFRA_ERROR = "infra-error"
    NOT_APPLIED = "not-applied"
    NOT_TESTED = "not-tested"    # nothing was tested (the reason is given)
    PARTIAL = "partial"          # only some kernels were: never a plain PASS
    INCOMPLETE = "incomplete"    # answered without a run: patches missing
    UNTESTABLE = "untestable"    # answered without a run: b4 could not prepare it


class Label(NamedTuple):
    word: str        # in sentences: a reply's kernel lines, the page's verdict column
    cell: str        # in a matrix cell: a reply's step table, `bpbot status`, the page
    header: str      # a reply's X-bpbot-Verdict header
    css: str         # the page's colour class (the word carries the meaning)


# The one table of verdict words.
VERDICT_LABELS: dict[str, Label] = {
    Verdict.PASS: Label("PASS", "ok", "PASS", "good"),
    Verdict.FAIL: Label("FAIL", "FAIL", "FAIL", "bad"),
    Verdict.BASE_FAILS: Label("base already fails", "base-fails", "BASE-FAILS", "warn"),
    Verdict.NOT_BUILT: Label("not built", "-", "NOT-BUILT", "none"),
    Verdict.INFRA_ERROR: Label("INFRA ERROR", "INFRA", "INFRA-ERROR", "infra"),
    Verdict.NOT_APPLIED: Label("does not apply", "does not apply", "NOT-APPLIED", "bad"),
    Verdict.NOT_TESTED: Label("NOT TESTED", "NOT TESTED", "NOT-TESTED", "warn"),
    Verdict.PARTIAL: Label("PARTIAL", "PARTIAL", "PARTIAL", "warn"),
    Verdict.INCOMPLETE: Label("incomplete", "incomplete", "NOT TESTED (incomplete)", "warn"),
    Verdict.UNTESTABLE: Label("untestable", "untestable", "NOT TESTED (untestable)", "warn"),
}

# The words of a step's status (a reply's table marks a skipped step "-").
STEP_LABELS: dict[str, Label] = {
    StepStatus.SUCCESS: Label("ok", "ok", "", "good"),
    StepStatus.FAILED: Label("FAILED", "FAILED", "", "bad"),
    StepStatus.SKIPPED: Label("skipped", "-", "", "none"),
    StepStatus.TIMEOUT: Label("TIMEOUT", "TIMEOUT", "", "bad"),
    StepStatus.INFRA_ERROR: Label("INFRA", "INFRA", "", "infra"),
}


def words(table: dict[str, Label], column: str) -> dict[str, str]:
    """One column of a label table, keyed by the stored string."""
    return {str(key): getattr(label, column) for key, label in table.items()}


def verdict_header(verdict: str) -> str:
    """The X-bpbot-Verdict word of a verdict (an unknown one upper-cased)."""
    label = VERDICT_LABELS.get(verdict)
    return label.header if label else verdict.upper()


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

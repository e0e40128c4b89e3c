"""What a patch mail says, read the way git and the list's tools read it. Pure.

- ``numbering(subject)``: version and n/m from every subject style seen on
  lists: ``[PATCH v2 1/3]``, Mercurial's ``[PATCH 1 of 3]``, netdev's
  ``[PATCH net,v2,1/3]``, ``[PATCH 1/3 v2]``, ``[RFC PATCH v2 RESEND 1/3]``.
- ``canonical_subject(subject)``: the same subject as b4 reads it best
  (``[PATCH net v2 1/3] rest``), so b4 and classify agree on the numbers.
- ``has_diff(body)``: a diff as git mailinfo / git apply see one: a
  ``diff --git`` header, a ``---``/``+++`` pair or a ``GIT binary patch``;
  no ``@@`` hunk needed (renames, mode changes, empty files).
- ``diff_problem(body)``: why git would refuse the diff (a corrupt hunk, a
  binary change without its data), or ''.
- ``is_pull_request(subject, body)``: ``[GIT PULL]``, ``[PULL n/m]`` or
  ``git request-pull`` text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_DIFF = re.compile(r"^(diff --git \S+ \S+|--- \S.*\n\+\+\+ \S|GIT binary patch$)", re.M)
_BRACKETS = re.compile(r"^((?:\s*\[[^\]]*\])+)\s*(.*)$", re.S)
_REPLY = re.compile(r"^\s*((?:(?:re|aw|sv|fwd?)\s*:\s*)+)", re.I)
_N_OF_M = re.compile(r"\b(\d{1,4})\s+of\s+(\d{1,4})\b", re.I)
_NM = re.compile(r"^(\d{1,4})/(\d{1,4})$")
_VERSION = re.compile(r"^v(\d{1,3})$", re.I)
_GLUED_VERSION = re.compile(r"\b(PATCH)(v\d{1,3})\b", re.I)
# Prefixes that say how a patch is sent, not which tree it is for.
_HOW_SENT = re.compile(r"^(RFC|RESEND|PATCH.*)$", re.I)
_PULL_TAG = re.compile(r"^\s*(?:re:\s*)?\[(?:[^\]]*[\s,])?(?:GIT[\s,]+)?PULL(?:[\s,][^\]]*)?\]",
                       re.I)
_PULL_TEXT = re.compile(r"^The following changes since commit [0-9a-f]{7,}", re.M)
_PULL_WHERE = re.compile(r"^are available in the [Gg]it repository at", re.M)
_HUNK = re.compile(r"^@@ -\d+(?:,(\d+))? \+\d+(?:,(\d+))? @@")
_BINARY_NO_DATA = re.compile(r"^Binary files (\S+) and (\S+) differ$", re.M)


@dataclass(frozen=True)
class Numbering:
    revision: int = 1
    counter: int = 1
    expected: int = 1
    numbered: bool = False  # n/m was written (else 1/1 is assumed)
    patch: bool = False     # a PATCH/RFC tag, or numbers in the brackets
    tags: tuple[str, ...] = ()  # other prefixes: net, net-next, RESEND, RFC...


def _tokens(brackets: str) -> list[str]:
    inner = " ".join(re.findall(r"\[([^\]]*)\]", brackets))
    inner = _N_OF_M.sub(r"\1/\2", inner)
    inner = _GLUED_VERSION.sub(r"\1 \2", inner)  # "PATCHv2", read as b4 reads it
    return [t for t in re.split(r"[\s,]+", inner) if t]


def numbering(subject: str) -> Numbering:
    """Version and n/m of a (non-reply) subject, whatever the prefix style."""
    match = _BRACKETS.match(_REPLY.sub("", subject or ""))
    if not match:
        return Numbering()
    revision, counter, expected, numbered, patch = 1, 1, 1, False, False
    tags = []
    for token in _tokens(match.group(1)):
        if (nm := _NM.match(token)) and not numbered:
            counter, expected, numbered = int(nm.group(1)), int(nm.group(2)), True
        elif (ver := _VERSION.match(token)):
            revision = max(1, int(ver.group(1)))
        elif token.upper() in ("PATCH", "RFC"):
            patch = True
            if token.upper() == "RFC":
                tags.append("RFC")
        else:
            tags.append(token)
    return Numbering(revision, counter, expected, numbered, patch or numbered, tuple(tags))


def tree_tags(subject: str) -> tuple[str, ...]:
    """The subject's tags that name a tree or branch ("[qemu-web PATCH]",
    "[PATCH net-next 1/2]", "[PATCH 6.1]"): what [tree] tag_branches maps."""
    return tuple(t for t in numbering(subject).tags if not _HOW_SENT.match(t))


def canonical_subject(subject: str) -> str:
    """``[PATCH tags vN n/m] rest`` for any prefix style; other subjects unchanged.

    b4 reads "1 of 3", "net,v2,1/3" and "[net,v2,1/3]" as unnumbered v1 patches."""
    text = subject or ""
    reply = _REPLY.match(text)
    lead = reply.group(1) if reply else ""
    match = _BRACKETS.match(text[len(lead):])
    if not match:
        return subject
    brackets = match.group(1)
    if "PATCH" in brackets.upper() and "," not in brackets and brackets.count("[") == 1 \
            and not _N_OF_M.search(brackets):
        return subject  # a form b4 reads as it is (the common case: keep it fast)
    n = numbering(text[len(lead):])
    if not n.patch:
        return subject
    parts = ["PATCH", *n.tags]
    if n.revision > 1:
        parts.append(f"v{n.revision}")
    if n.numbered:
        parts.append(f"{n.counter}/{n.expected}")
    return f"{lead}[{' '.join(parts)}] {match.group(2)}"


def has_diff(body: str) -> bool:
    return bool(_DIFF.search(body))


def is_pull_request(subject: str, body: str) -> bool:
    if _PULL_TAG.match(subject or ""):
        return True
    return bool(_PULL_TEXT.search(body) and _PULL_WHERE.search(body))


def diff_problem(body: str) -> str:
    """Why ``git apply`` would refuse this diff, or '' (pure, no git)."""
    binary = _BINARY_NO_DATA.search(body)
    if binary:
        path = binary.group(2) if binary.group(2) != "/dev/null" else binary.group(1)
        return (f"it changes the binary file {path.removeprefix('b/').removeprefix('a/')} "
                "without its data ('Binary files ... differ'); git cannot apply that. "
                "Send it with git format-patch --binary (the default) instead")
    return _corrupt_hunk(body)


def _corrupt_hunk(body: str) -> str:
    """git apply's 'corrupt patch at line N': a hunk with fewer lines than its header says."""
    lines = body.split("\n")
    i = 0
    while i < len(lines):
        head = _HUNK.match(lines[i])
        if not head:
            i += 1
            continue
        old = int(head.group(1)) if head.group(1) is not None else 1
        new = int(head.group(2)) if head.group(2) is not None else 1
        start = i + 1
        i += 1
        while (old > 0 or new > 0) and i < len(lines):
            line = lines[i]
            tag = line[:1]
            if tag in (" ", ""):  # git reads an empty line as empty context
                old, new = old - 1, new - 1
            elif tag == "-":
                old -= 1
            elif tag == "+":
                new -= 1
            elif tag != "\\":
                break
            i += 1
        if old > 0 or new > 0:
            return (f"corrupt patch: the hunk '{lines[start - 1]}' (line {start} of the "
                    f"message body) ends {max(old, new)} line(s) early; it was probably "
                    "edited by hand or wrapped by the mail program")
        if old < 0 or new < 0:
            return (f"corrupt patch: the hunk '{lines[start - 1]}' (line {start} of the "
                    "message body) has more lines than its header says")
    return ""

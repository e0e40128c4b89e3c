"""Series assembly with b4's library (not our own threading).

The spool is split into threads first (In-Reply-To / References), each
thread gets its own ``LoreMailbox`` (mixing threads corrupts a series), and
every ``get_series`` call gets a fresh mailbox (a second call on the same
mailbox doubles the trailers). b4 never touches the network, and its
configuration never comes from the host's git identity.
"""

from __future__ import annotations

import copy
import email.utils
import io
import logging
import re
from dataclasses import dataclass, field

import b4

from bot.ingest import mail, patchmail

log = logging.getLogger(__name__)
_NOT_TAGS = re.compile(r"^(patch|rfc|resend|v\d+|\d+/\d+)$", re.I)


def configure_b4(name: str, address: str) -> None:
    """Set b4's globals once, from our rules only."""
    b4.can_network = False
    config = copy.deepcopy(b4.DEFAULT_CONFIG)
    config["attestation-policy"] = "off"
    config["attestation-check-dkim"] = "no"
    config["listid-preference"] = ["*"]
    config["gpgbin"] = "false"
    b4.MAIN_CONFIG = config
    b4.USER_CONFIG = {"name": name, "email": address}
    logging.getLogger("b4").setLevel(logging.ERROR)
    # b4 runs `git patch-id` once per patch (a subprocess each) to match patches
    # across versions; the patchwork hash b4 also has is the same idea (a hash
    # of the diff without line numbers) in pure Python: ingest is ~10x faster.
    b4.LoreMessage.get_patch_id = staticmethod(_diff_hash)


def _diff_hash(body: str) -> str | None:
    """b4's patchwork hash of the diff alone (the commit message may change
    between versions while the patch, and its trailers, stay the same)."""
    start = body.find("diff --git ")
    return b4.LoreMessage.get_patchwork_hash(body[start:]) if start >= 0 else None


@dataclass
class Version:
    """One version of a series as b4 sees it in one thread."""

    key: str
    revision: int
    subject: str
    author_name: str
    author_addr: str
    expected: int
    present: list[int]
    complete: bool
    has_cover: bool
    reply_to: str
    thread_root: str
    msgids: list[str]
    base_commit: str = ""
    tags: list[str] = field(default_factory=list)
    trailers: int = 0
    fingerprint: str = ""
    am_mbox: bytes | None = None
    problem: str = ""  # set when b4 could not make the am-ready mbox
    notes: list[str] = field(default_factory=list)  # what assembly left out, and why

    @property
    def missing(self) -> list[int]:
        return [n for n in range(1, self.expected + 1) if n not in self.present]


def thread_roots(links: list[tuple[str, str, list[str]]]) -> dict[str, str]:
    """Union-find over (msgid, in_reply_to, references): msgid -> thread root.

    Unknown parents still join threads (two replies to a lost message stay
    together). The root is the smallest id of the set, so it is stable.
    """
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(a: str, b: str) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            if rb < ra:
                ra, rb = rb, ra
            parent[rb] = ra

    for msgid, irt, refs in links:
        find(msgid)
        for other in ([irt] if irt else []) + list(refs):
            union(msgid, other)
    return {m: find(m) for m, _, _ in links}


def assemble_thread(raws: list[bytes | tuple[str, bytes]], thread_root: str,
                    with_am: bool = True, only_revision: int | None = None) -> list[Version]:
    """All series versions b4 finds in one thread's messages: raw bytes, or
    (spooled msgid, raw bytes) so mail without a Message-ID keeps its spool id.

    ``with_am`` also makes the am-ready mbox of complete versions (b4 runs
    ``git mailinfo`` per patch: the tracker leaves it to the test run).
    """
    msgs = [_prepared(item) for item in raws]
    msgs, notes = select_patches(msgs)
    box, unreadable, broken = _mailbox_tolerant(msgs)
    notes += [u for u in unreadable if u not in broken]  # the others are the problem
    versions = []
    fresh: b4.LoreMailbox | None = box  # the probe is fresh for its first get_series call
    probe = box
    for revision in sorted(probe.series):
        if only_revision is not None and revision != only_revision:
            continue
        # A second get_series on one mailbox doubles follow-up trailers; without
        # the am-ready mbox no trailers are read, so one mailbox serves all.
        box, fresh = fresh or _mailbox(msgs), (probe if not with_am else None)
        try:
            version = _one_version(box, revision, thread_root, with_am)
        except Exception as exc:  # noqa: BLE001 - one bad thread must not stop the others
            log.exception("b4 failed on v%s in thread %s", revision, thread_root)
            version = _fallback(box, revision, thread_root, f"b4 failed: {exc}")
        if version is not None:
            version.notes = _for_revision(notes, revision)
            if broken and not version.problem:
                version.problem = "; ".join(broken)
            versions.append(version)
    if broken and not versions and only_revision in (None, 1):
        # No patch of the thread could be read: answered as untestable, not dropped.
        versions.append(_unreadable(msgs, broken, thread_root))
    return versions


def _unreadable(msgs: list, broken: list[str], thread_root: str) -> Version:
    """A version for a thread whose patches b4 cannot read at all, named by the first."""
    first = next((m for m in msgs if f"<{mail.normalise_msgid(mail.header(m, 'Message-ID'))}>"
                  in broken[0]), msgs[0])
    subject = mail.header(first, "Subject")
    name, addr = mail.address(first, "From")
    n = patchmail.numbering(subject)
    msgid = mail.normalise_msgid(mail.header(first, "Message-ID"))
    return Version(key=f"{addr}|{' '.join(_bare(subject).lower().split())}", revision=n.revision,
                   subject=subject, author_name=name, author_addr=addr, expected=n.expected,
                   present=[n.counter], complete=False, has_cover=False, reply_to=msgid,
                   thread_root=thread_root, msgids=[msgid], problem="; ".join(broken))


def assembly_notes(raws: list[bytes | tuple[str, bytes]], revision: int) -> list[str]:
    """The notes assemble_thread() gives version ``revision``, without b4."""
    _, notes = select_patches([_prepared(item) for item in raws])
    return _for_revision(notes, revision)


def _for_revision(notes: list[str], revision: int) -> list[str]:
    """The notes for one version (their "vN " prefix taken off), and those for all."""
    return [n.removeprefix(f"v{revision} ") for n in notes
            if n.startswith(f"v{revision} ") or not re.match(r"v\d+ ", n)]


def _prepared(item: bytes | tuple[str, bytes]):
    msgid, raw = item if isinstance(item, tuple) else ("", item)
    msg = mail.parse_fast(raw)
    found = mail.normalise_msgid(mail.header(msg, "Message-ID"))
    clean = found or msgid or mail.message_id(msg, raw)[0]
    if str(msg.get("Message-ID", "")).strip() != f"<{clean}>":
        # b4 refuses mail without a Message-ID and keeps folds inside one:
        # give it the id we spooled the mail by.
        del msg["Message-ID"]
        msg["Message-ID"] = f"<{clean}>"
    subject = mail.header(msg, "Subject")
    canonical = patchmail.canonical_subject(subject)
    if canonical != subject:
        # b4 reads "[PATCH 1 of 3]" and "[PATCH net,v2,1/3]" as unnumbered v1.
        del msg["Subject"]
        msg["Subject"] = canonical
    _readable_parts(msg)
    return msg


_ATTACHED_PATCH = ("text/x-diff", "text/x-patch-file", "application/octet-stream")


def _readable_parts(msg) -> None:
    """Make what git would read readable to b4, in place: format=flowed text is
    unflowed as git mailinfo does (b4 drops the parameter, and git am then sees
    a corrupt patch), and diffs attached as text/x-diff or as
    application/octet-stream *.patch / *.diff become text/x-patch, which b4 reads."""
    try:
        for part in msg.walk():
            if part.is_multipart():
                continue
            ctype = part.get_content_type()
            if part.get_param("charset") is not None and \
                    not mail.known_charset(part.get_content_charset() or "utf-8"):
                # What b4 does with a charset Python does not know (utf-8), also
                # for a name b4 would raise on (one holding a NUL: ValueError).
                part.set_param("charset", "utf-8")
            if ctype in _ATTACHED_PATCH and (ctype.startswith("text/") or str(
                    part.get_filename() or "").endswith((".patch", ".diff"))):
                part.set_type("text/x-patch")
            elif ctype == "text/plain" and (flow := mail.is_flowed(part))[0]:
                payload = part.get_payload(decode=True) or b""
                charset = part.get_content_charset() or "utf-8"
                text = mail.unflow(payload.decode(charset, "replace"), flow[1])
                part.del_param("format")
                part.del_param("delsp")
                del part["Content-Transfer-Encoding"]
                part.set_payload(text.encode(charset, "replace"))
                part["Content-Transfer-Encoding"] = "8bit"
    except Exception:  # noqa: BLE001 - a broken MIME tree: b4 reads what it can
        log.warning("could not normalise the parts of <%s>", msg.get("Message-ID"))


def select_patches(msgs: list) -> tuple[list, list[str]]:
    """Leave out what b4 would mis-number, saying why: a patch numbered above
    its series (3/2), an unnumbered patch in a thread of numbered ones (b4
    would shift the numbers) and older copies of the same n/m (the newest is
    used)."""
    notes: list[str] = []
    seen: dict[tuple[int, int], list] = {}
    numbered_revisions = set()
    meta = []
    for msg in msgs:
        subject = mail.header(msg, "Subject")
        text, note = mail.text_body(msg)
        if note == mail.FORWARDED:
            continue  # b4 would read the forwarded patch as the forwarder's
        if _is_reply(subject) or not patchmail.has_diff(text):
            meta.append((msg, None, subject))
            continue
        n = patchmail.numbering(subject)
        meta.append((msg, n, subject))
        if n.numbered and n.expected > 1:
            numbered_revisions.add(n.revision)
    keep = []
    for msg, n, subject in meta:
        mid = mail.normalise_msgid(mail.header(msg, "Message-ID"))
        if n is None:
            keep.append(msg)
        elif n.numbered and n.counter > n.expected:
            notes.append(f"v{n.revision} patch {n.counter}/{n.expected} ({_bare(subject)}, "
                         f"<{mid}>) is numbered above the series' {n.expected} patches: not applied")
        elif not n.numbered and n.revision in numbered_revisions:
            notes.append(f"v{n.revision} unnumbered patch ({_bare(subject)}, <{mid}>) in the "
                         f"thread of a numbered series: not taken as one of its patches")
        elif n.numbered:
            seen.setdefault((n.revision, n.counter), []).append((_date(msg), mid, msg))
        else:
            keep.append(msg)
    for (revision, counter), copies in sorted(seen.items()):
        copies.sort(key=lambda c: (c[0], c[1]))
        keep.append(copies[-1][2])
        if len(copies) > 1:
            old = ", ".join(f"<{c[1]}>" for c in copies[:-1])
            notes.append(f"v{revision} patch {counter} was sent {len(copies)} times: the newest "
                         f"copy (<{copies[-1][1]}>) is used, the duplicate {old} ignored")
    return keep, notes


def _is_reply(subject: str) -> bool:
    return bool(re.match(r"^\s*(re|aw|sv)\s*:", subject, re.I))


def _bare(subject: str) -> str:
    return re.sub(r"^(\s*\[[^\]]*\])+\s*", "", subject)


def _date(msg) -> float:
    try:
        return email.utils.parsedate_to_datetime(mail.header(msg, "Date")).timestamp()
    except (TypeError, ValueError, OverflowError, IndexError):
        return 0.0


def _mailbox_tolerant(msgs: list) -> tuple[b4.LoreMailbox, list[str], list[str]]:
    """A mailbox of every message b4 can read; why the others could not be
    read (all of them; those holding a diff)."""
    box = b4.LoreMailbox()
    problems, patches = [], []
    for msg in msgs:
        try:
            box.add_message(msg)
        except Exception as exc:  # noqa: BLE001 - b4 raises many kinds on odd headers
            mid = mail.normalise_msgid(mail.header(msg, "Message-ID"))
            log.warning("b4 cannot read <%s>: %s", mid, exc)
            box.msgid_map.pop(mid, None)
            text = (f"b4 cannot read the message <{mid}> ({_bare(mail.header(msg, 'Subject'))}): "
                    f"{type(exc).__name__}: {exc}")
            problems.append(text)
            if patchmail.has_diff(mail.text_body(msg)[0]):
                patches.append(text)
    return box, problems, patches


def _mailbox(msgs: list) -> b4.LoreMailbox:
    return _mailbox_tolerant(msgs)[0]


def _one_version(box: b4.LoreMailbox, revision: int, thread_root: str,
                 with_am: bool) -> Version | None:
    # ``box`` must be fresh: a second get_series on one mailbox doubles the trailers.
    lser = box.get_series(revision, sloppytrailers=False, codereview_trailers=False)
    if lser is None:
        return None
    version = _describe(lser, thread_root)
    version.problem = diff_problems(lser)
    if version.complete and with_am and not version.problem:
        try:
            am_msgs = lser.get_am_ready(noaddtrailers=False, addmysob=False, addlink=False,
                                        allowbadchars=False)
        except SystemExit as exc:  # b4 exits (e.g. on bidi characters) instead of raising
            log.warning("b4 refused v%s in thread %s: exit %s", revision, thread_root, exc.code)
            version.problem = ("b4 refused the series: it contains characters b4 will not "
                               "apply, such as bidirectional control characters (U+202E) that "
                               "can make code read differently from what it does")
            return version
        buf = io.BytesIO()
        b4.save_git_am_mbox(am_msgs, buf)
        version.am_mbox = buf.getvalue()
    return version


def diff_problems(lser) -> str:
    """Why git would refuse a patch of this version (named), or ''."""
    for n, patch in enumerate(lser.patches[1:], start=1):
        if patch is not None and (problem := patchmail.diff_problem(patch.body or "")):
            return f"Patch {n}/{lser.expected} ({patch.subject}): {problem}."
    return ""


def _fallback(probe: b4.LoreMailbox, revision: int, thread_root: str, problem: str) -> Version | None:
    lser = probe.series.get(revision)
    if lser is None:
        return None
    version = _describe(lser, thread_root)
    version.problem = problem
    return version


def _describe(lser, thread_root: str) -> Version:
    patches = [p for p in lser.patches[1:] if p is not None]
    cover = lser.patches[0] if lser.has_cover else None
    first = cover or (lser.patches[1] if len(lser.patches) > 1 and lser.patches[1] else None) \
        or (patches[0] if patches else None)
    subject = first.subject if first is not None else lser.subject
    # The bot's own strict reading of From (bot/ingest/mail.py): b4 decodes
    # encoded words before it parses, so a display name could give the address.
    name, addr = mail.address(first.msg, "From") if first is not None else ("", "")
    # The key links versions across threads: patch 1's subject (a v2 may add a
    # cover letter that v1 did not have), else the first subject we have.
    first_patch = patches[0] if patches else first
    key_subject = first_patch.subject if first_patch is not None else subject
    key = f"change-id:{lser.change_id}" if lser.change_id else \
        f"{addr.lower()}|{' '.join(key_subject.lower().split())}"
    present = [i for i, p in enumerate(lser.patches[1:], start=1) if p is not None]
    tags: list[str] = []
    if first is not None:
        tags = [p for p in first.lsubject.prefixes if not _NOT_TAGS.match(p)]
    trailers = sum(len(p.followup_trailers) for p in lser.patches if p is not None)
    msgids = [p.msgid for p in lser.patches if p is not None]
    complete = bool(lser.complete) or (present == list(range(1, lser.expected + 1)))
    return Version(
        key=key, revision=lser.revision, subject=subject,
        author_name=name or addr, author_addr=addr,
        expected=lser.expected, present=present, complete=complete,
        has_cover=cover is not None, reply_to=first.msgid if first else thread_root,
        thread_root=thread_root, msgids=msgids, base_commit=lser.base_commit or "",
        tags=tags, trailers=trailers, fingerprint=lser.fingerprint,
    )

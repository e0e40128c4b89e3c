"""Classification: a pure function of the message bytes.

``classify(raw, bot_address, loop_id)`` says what a mail is (a patch, a
cover letter, a reply with trailers, a command for the bot, a bounce or an
auto-reply, our own mail, other) or why it is quarantined. It touches no
database, disk or network and never raises.
"""

from __future__ import annotations

import datetime
import email.errors
import email.header
import email.utils
import re
from dataclasses import dataclass, field

from bot.ingest import mail, patchmail
from bot.ingest.lists import ListRule
from bot.ingest.silence import bounce_reason

PATCH = "patch"
COVER = "cover"
REPLY = "reply"
COMMAND = "command"
BOUNCE = "bounce"
AUTOREPLY = "autoreply"
OWN = "own"
OTHER = "other"
QUARANTINE = "quarantine"
PULL = "pull-request"

KINDS = (PATCH, COVER, REPLY, COMMAND, BOUNCE, AUTOREPLY, OWN, OTHER, QUARANTINE, PULL)
# Kinds that take part in series assembly (b4 sees these).
SERIES_KINDS = (PATCH, COVER, REPLY)

_TRAILER = re.compile(
    r"^(Reviewed-by|Acked-by|Tested-by|Reported-by|Suggested-by|Co-developed-by|"
    r"Signed-off-by|Fixes|Closes|Link|Cc|Nacked-by):\s*(\S.*)$",
    re.M | re.I,
)


@dataclass(frozen=True)
class Classified:
    kind: str
    reason: str
    msgid: str
    msgid_made_up: bool = False
    subject: str = ""
    from_name: str = ""
    from_addr: str = ""
    date: str = ""
    in_reply_to: str = ""
    references: tuple[str, ...] = ()
    revision: int = 1
    counter: int = 0
    expected: int = 0
    trailers: tuple[str, ...] = field(default=())
    notes: tuple[str, ...] = ()
    through_list: bool = True  # with ``lists``: its List-Id, or the list in To/Cc

    @property
    def parent(self) -> str:
        """The message this one answers: In-Reply-To, else the last Reference."""
        return self.in_reply_to or (self.references[-1] if self.references else "")


def classify(raw: bytes, bot_address: str = "", loop_id: str = "",
             max_bytes: int = 0, lists: ListRule | None = None) -> Classified:
    """Say what ``raw`` is. Never raises; unusable input is QUARANTINE.
    With ``lists``, also whether it came through the list (read from the same
    parse: a series message is parsed once at ingest)."""
    try:
        return _classify(raw, bot_address.lower(), loop_id, max_bytes, lists)
    except Exception as exc:  # noqa: BLE001 - the contract is "never raises"
        mid = mail.normalise_msgid(_grep_header(raw, b"message-id")) or \
            mail.message_id(mail.parse_bytes(b""), raw)[0]
        return Classified(QUARANTINE, f"parser error: {type(exc).__name__}: {exc}", mid,
                          msgid_made_up=mid.endswith("@bpbot.invalid"))


def _grep_header(raw: bytes, name: bytes) -> str:
    head = raw.split(b"\n\n", 1)[0]
    for line in head.splitlines():
        if line.lower().startswith(name + b":"):
            return line.split(b":", 1)[1].decode("latin-1", "replace")
    return ""


def _header_block(raw: bytes) -> bytes:
    ends = [i for i in (raw.find(b"\n\n"), raw.find(b"\r\n\r\n")) if i >= 0]
    return raw[:min(ends)] + b"\n\n" if ends else raw[:1024 * 1024]


def _classify(raw: bytes, bot: str, loop_id: str, max_bytes: int,
              lists: ListRule | None) -> Classified:
    if (refused := _refused(raw, max_bytes)) is not None:
        return refused
    msg = mail.parse_fast(raw)
    msgid, made_up = mail.message_id(msg, raw)
    notes = ["no Message-ID header; an id was made from the content"] if made_up else []
    if not msg.keys():
        return Classified(QUARANTINE, "no header block", msgid, made_up)
    defects = [type(d).__name__ for d in getattr(msg, "defects", [])]
    if defects:
        notes.append("MIME defects: " + ", ".join(sorted(set(defects))))
    if "StartBoundaryNotFoundDefect" in defects:
        return Classified(QUARANTINE, "broken MIME: the multipart boundary of its Content-Type "
                          "never appears, so no part can be read", msgid, made_up, notes=tuple(notes))
    subject = mail.header(msg, "Subject")
    from_name, from_addr, from_problem = mail.mailbox(msg, "From")
    base = dict(
        msgid=msgid, msgid_made_up=made_up, subject=subject, from_name=from_name,
        from_addr=from_addr, date=mail.header(msg, "Date"),
        in_reply_to=mail.normalise_msgid(mail.header(msg, "In-Reply-To")),
        references=tuple(mail.msgid_list(mail.header(msg, "References"))),
        through_list=lists.came_through_list(msg) if lists is not None else True,
    )

    def out(kind: str, reason: str, **extra) -> Classified:
        return Classified(kind, reason, notes=tuple(notes), **base, **extra)

    if (silent := _never_answered(msg, from_addr, subject, bot, loop_id)) is not None:
        return out(*silent)
    if from_problem:  # whom to answer would be a guess
        return out(QUARANTINE, from_problem)
    body, body_note = mail.text_body(msg)
    if body_note:
        notes.append(body_note)
    if (reason := _header_problem(msg, raw)):
        return out(QUARANTINE, reason)
    return _by_content(out, msg, base, body, body_note, bot)


def _refused(raw: bytes, max_bytes: int) -> Classified | None:
    """An empty mail, or one over the size limit (refused from its headers only:
    parsing a 50 MB body just to refuse it takes seconds)."""
    if not raw.strip():
        return Classified(QUARANTINE, "empty message",
                          mail.message_id(mail.parse_bytes(b""), raw)[0], msgid_made_up=True)
    if max_bytes and len(raw) > max_bytes:
        msgid, made_up = mail.message_id(mail.parse_fast(_header_block(raw)), raw)
        return Classified(QUARANTINE, f"message is {len(raw)} bytes, over the limit of {max_bytes}",
                          msgid, made_up)
    return None


def _never_answered(msg, from_addr: str, subject: str, bot: str,
                    loop_id: str) -> tuple[str, str] | None:
    """(kind, reason) of mail in a loop or from a machine: our own, our X-Loop,
    a bounce, an auto-reply."""
    if bot and from_addr == bot:
        return OWN, "sent by the bot itself"
    if loop_id and any(loop_id.lower() == v.strip().lower()
                       for v in (msg.get_all("X-Loop") or [])):
        return OWN, "carries our X-Loop header"
    if (reason := bounce_reason(msg, from_addr, subject)):
        return BOUNCE, reason
    auto = mail.header(msg, "Auto-Submitted").lower()
    if auto and auto != "no":
        return AUTOREPLY, f"Auto-Submitted: {auto}"
    return None


def _by_content(out, msg, base: dict, body: str, body_note: str, bot: str) -> Classified:
    """What a readable mail from a person is, by its subject and body."""
    # b4 (with requests, dkim and dnspython behind it) is imported here, not at
    # module level: reading mail that holds no patch should not pay for it.
    from b4 import LoreSubject
    lsub = LoreSubject(patchmail.canonical_subject(base["subject"]))
    has_diff = patchmail.has_diff(body)
    if not lsub.reply and patchmail.is_pull_request(base["subject"], body):
        return out(PULL, "a pull request ([GIT PULL] or git request-pull text), not a patch series")
    if body_note.startswith("forwarded"):
        return out(OTHER, body_note)
    trailers = tuple(m.group(0).strip() for m in _TRAILER.finditer(_unquoted(body)))
    numbers = dict(revision=lsub.revision, counter=lsub.counter if not lsub.counters_inferred else 1,
                   expected=lsub.expected)
    if not lsub.reply and has_diff and lsub.patch:
        return out(PATCH, "[PATCH] subject with a diff", trailers=trailers, **numbers)
    if not lsub.reply and lsub.patch and not lsub.counters_inferred and lsub.counter == 0:
        return out(COVER, "[PATCH 0/n] cover letter", revision=lsub.revision, counter=0,
                   expected=lsub.expected)
    to_bot = bool(bot) and bot in mail.all_addresses(msg, "To", "Cc")
    if to_bot and not has_diff:
        return out(COMMAND, "addressed to the bot")
    if has_diff and not lsub.reply:
        # A diff without [PATCH]: still a patch for b4 when it threads like one.
        return out(PATCH, "diff without a [PATCH] subject tag", trailers=trailers, **numbers)
    if lsub.reply or base["in_reply_to"] or base["references"]:
        follow = [t for t in trailers if not t.lower().startswith(("signed-off-by", "cc:"))]
        reason = f"reply with {len(follow)} trailer(s)" if follow else "reply"
        return out(REPLY, reason, trailers=tuple(follow))
    if body_note.startswith("HTML only"):
        return out(OTHER, "HTML-only mail, no text to read")
    return out(OTHER, "no patch, not a reply")


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_CONTROL_BYTES = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
MAX_MSGID = 998  # RFC 5322's line limit: longer ids do not survive a References header


def _header_problem(msg, raw: bytes) -> str:
    """Why this mail's headers cannot be used (b4 would raise and drop the whole
    thread, or an id/name would carry control characters into git and replies), or ''."""
    controls = _CONTROL_BYTES.search(_header_block(raw)) is not None  # rare: look closer
    for name in ("Message-ID", "From", "Subject", "In-Reply-To", "References") if controls else ():
        for value in msg.get_all(name) or []:
            if (bad := _CONTROL.search(str(value))):
                return f"illegal character U+{ord(bad.group()):04X} in the {name} header"
    if (reason := _bad_encoded_word(msg)):
        return reason
    msgid = mail.normalise_msgid(mail.header(msg, "Message-ID"))
    if len(msgid) > MAX_MSGID:
        return f"the Message-ID is {len(msgid)} characters long, over the limit of {MAX_MSGID}"
    value = mail.header(msg, "Date")
    if not value:
        return ""
    try:
        parsed = email.utils.parsedate_tz(value)
        if parsed is not None:  # b4 makes a datetime of it (and raises if it cannot)
            datetime.datetime(*parsed[:6])
    except (ValueError, TypeError, OverflowError, IndexError) as exc:
        return f"unreadable Date header {value!r}: {exc}; b4 cannot place the mail in a series"
    return ""


# An RFC 2047 encoded word in base64 ("B") encoding: =?charset?b?text?=
_B_WORD = re.compile(r"=\?[^?\s]+\?[bB]\?[^?\s]*\?=")
B4_DECODED = ("From", "Subject", "References")  # the headers b4 decodes as it reads a mail


def _bad_encoded_word(msg) -> str:
    """An encoded word of a header b4 decodes whose base64 cannot be decoded, named, or ''.

    Read from the raw header, as strictly as b4 reads it (the email package's
    ``decode_header``: padding added when missing, characters outside the
    alphabet skipped, as git mailinfo does too); what b4 still cannot decode
    makes it raise and drop the whole thread."""
    for name in B4_DECODED:
        for value in msg.get_all(name) or []:
            for word in _B_WORD.findall(str(value)):
                try:
                    email.header.decode_header(word)
                except (email.errors.HeaderParseError, ValueError) as exc:
                    return f"bad base64 in an encoded word of the {name} header ({word}): {exc}"
    return ""


def _unquoted(body: str) -> str:
    return "\n".join(line for line in body.splitlines() if not line.startswith(">"))

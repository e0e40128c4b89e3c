"""Pure helpers for reading mail bytes: parsing, Message-IDs, bodies.

Nothing here raises on bad input; problems come back as values.
"""

from __future__ import annotations

import codecs
import email
import email.errors
import email.header
import email.policy
import email.utils
import functools
import hashlib
import re
from email.message import EmailMessage, Message

# b4's parsing policy: keep 8-bit bodies, never rewrap lines.
POLICY = email.policy.EmailPolicy(utf8=True, cte_type="8bit", max_line_length=None)

_MSGID = re.compile(r"<([^<>\s]+)>")


def parse_bytes(raw: bytes) -> EmailMessage:
    return email.message_from_bytes(raw, policy=POLICY)  # type: ignore[return-value]


class _Fast(email.policy.Compat32):
    """compat32, except that raw 8-bit (UTF-8) header bytes come back as text
    instead of a Header object of surrogates (which b4 cannot read)."""

    def _sanitize_header(self, name, value):  # noqa: ANN001 - the email package's API
        if isinstance(value, str) and email.utils._has_surrogates(value):
            return value.encode("ascii", "surrogateescape").decode("utf-8", "replace")
        return value


FAST = _Fast()


def parse_fast(raw: bytes) -> Message:
    """The compat32 parser: headers stay strings until asked for, several times
    faster than the modern policy's header registry. ``header()`` decodes."""
    return email.message_from_bytes(raw, policy=FAST)


def header(msg: Message, name: str) -> str:
    """A header as a clean one-line string; '' when missing or undecodable."""
    try:
        value = msg.get(name)
    except Exception:  # noqa: BLE001 - the email package raises many kinds on bad headers
        value = None
        raw = msg.get_all(name) if hasattr(msg, "get_all") else None
        if raw:
            value = str(raw[0])
    if value is None:
        return ""
    try:
        text = str(value)
        if "=?" in text:  # RFC 2047 encoded words (compat32 leaves them encoded)
            text = str(email.header.make_header(email.header.decode_header(text)))
    except Exception:  # noqa: BLE001 - a broken encoded word stays as it was
        text = str(value) if isinstance(value, str) else ""
    return " ".join(text.split())


def normalise_msgid(value: str | None) -> str:
    """'<a@b>' / ' a@b ' / folded lines -> 'a@b'; '' when nothing usable."""
    if not value:
        return ""
    joined = "".join(value.split())
    match = _MSGID.search(joined)
    if match:
        return match.group(1)
    return joined.strip("<>")


def msgid_list(value: str | None) -> list[str]:
    """Every <id> in References-like text; ids folded over lines are joined."""
    if not value:
        return []
    ids = _MSGID.findall(re.sub(r"\r?\n[ \t]+", "", value).replace("<", " <"))
    return [i for i in ids if i]


def message_id(msg: Message, raw: bytes) -> tuple[str, bool]:
    """The normalised Message-ID and whether it was made up (missing)."""
    mid = normalise_msgid(header(msg, "Message-ID"))
    if mid:
        return mid, False
    return f"sha256-{hashlib.sha256(raw).hexdigest()[:32]}@bpbot.invalid", True


def address(msg: Message, name: str) -> tuple[str, str]:
    """(display name, lower-case address) of the one address of a header;
    ("", "") when it has not exactly one valid address (``mailbox`` says why)."""
    realname, addr, _ = mailbox(msg, name)
    return realname, addr


_FOLD = re.compile(r"\r?\n(?=[ \t])")


def mailbox(msg: Message, name: str) -> tuple[str, str, str]:
    """(display name, lower-case address, problem) of the first ``name`` header.

    Read from the raw header, unfolded, by the email package's strict parser:
    encoded words are decoded only inside the display name, so an address
    written there ("Mallory <victim@example.com>" quoted, or encoded) stays
    part of the name. A header that does not hold exactly one valid address
    (two, a group, none, text the parser had to guess at) gives a problem and
    no address: a reply must not go to a guess."""
    value = next((v for k, v in msg.raw_items() if k.lower() == name.lower()), None)
    if value is None:
        return "", "", f"no {name} header"
    if hasattr(value, "addresses"):
        return _one_mailbox(name, value)
    try:
        text = _FOLD.sub("", _text(value)).strip()
    except Exception:  # noqa: BLE001 - a Header object of an unknown charset
        return "", "", f"unreadable {name} header"
    return _parsed_mailbox(name, text)


@functools.lru_cache(maxsize=4096)
def _parsed_mailbox(name: str, text: str) -> tuple[str, str, str]:
    """``mailbox`` of a header's text. Cached: the strict parser costs about a
    millisecond, and a list's senders write the same From header again and again."""
    return _one_mailbox(name, text)


def _one_mailbox(name: str, value) -> tuple[str, str, str]:
    try:
        parsed = value if hasattr(value, "addresses") else \
            email.policy.default.header_factory(name, value)
        found = list(parsed.addresses)
        groups = list(parsed.groups)
        defects = list(parsed.defects)
    except Exception:  # noqa: BLE001 - the email package raises many kinds on bad headers
        return "", "", f"unreadable {name} header"
    invalid = [d for d in defects if isinstance(d, email.errors.InvalidHeaderDefect)]
    if invalid or len(found) != 1 or len(groups) != 1 or groups[0].display_name is not None:
        return "", "", f"the {name} header does not hold exactly one valid address"
    one = found[0]
    if not one.username or not one.domain:
        return "", "", f"the {name} header does not hold exactly one valid address"
    return " ".join(one.display_name.split()), one.addr_spec.lower(), ""


def _text(value: object) -> str:
    """A raw header value as text; raw 8-bit bytes read as UTF-8."""
    text = str(value)
    if email.utils._has_surrogates(text):
        return text.encode("ascii", "surrogateescape").decode("utf-8", "replace")
    return text


def all_addresses(msg: Message, *names: str) -> list[str]:
    values = [header(msg, n) for n in names]
    try:
        pairs = email.utils.getaddresses([v for v in values if v])
    except Exception:  # noqa: BLE001
        return []
    return [a.lower() for _, a in pairs if "@" in a]


PATCH_TYPES = ("text/x-patch", "text/x-diff", "text/x-patch-file")


def text_body(msg: Message) -> tuple[str, str]:
    """(text, note): the text a reader (and b4) would read, decoded: the first
    text part holding a diff (inline or a .patch attachment), else the first
    text/plain part; note says what was odd. A forwarded message/rfc822 is
    not the sender's text: its parts are left out (and noted)."""
    parts, forwarded = _text_parts(msg)
    if not parts:
        if _has_type(msg, "text/html"):
            return "", "HTML only, no text/plain part"
        return "", FORWARDED if forwarded else "no text part"
    decoded = [_decode(p) for p in parts]
    for text, note in decoded:
        if "\ndiff --git " in "\n" + text or "\n+++ " in text:
            return text, note
    if forwarded:
        return decoded[0][0], FORWARDED
    return decoded[0]


FORWARDED = ("forwarded message (message/rfc822): a patch inside it is its author's, "
             "not the forwarder's; it is not tested as this mail")


def _decode(part: Message) -> tuple[str, str]:
    try:
        payload = part.get_payload(decode=True) or b""
    except Exception as exc:  # noqa: BLE001
        return "", f"undecodable body: {exc}"
    if not isinstance(payload, bytes):
        payload = str(payload).encode("utf-8", "replace")
    charset = part.get_content_charset() or "utf-8"
    note = ""
    try:
        if not known_charset(charset):
            raise LookupError(charset)
        text = payload.decode(charset)
    except LookupError:
        text, note = payload.decode("latin-1"), f"unknown charset {charset!r}, read as latin-1"
    except UnicodeDecodeError:
        text, note = payload.decode(charset, "replace"), f"invalid {charset} bytes replaced"
    if "\x00" in text:
        text, note = text.replace("\x00", ""), "; ".join(n for n in (note, "NUL bytes removed") if n)
    return text.replace("\r\n", "\n"), note


def known_charset(charset: str) -> bool:
    """Whether Python has a codec for this MIME charset. An unknown name raises
    LookupError, but a name holding a NUL raises ValueError: both are unknown."""
    try:
        codecs.lookup(charset)
    except (LookupError, ValueError):
        return False
    return True


def _text_parts(msg: Message) -> tuple[list[Message], bool]:
    """(text/plain parts that are not unrelated attachments, and patch
    attachments; whether a forwarded message with a diff was skipped)."""
    out: list[Message] = []
    forwarded = False
    todo = [msg]
    try:
        while todo:
            part = todo.pop(0)
            ctype = part.get_content_type()
            if ctype == "message/rfc822":
                inner = part.get_payload()
                inner = inner[0] if isinstance(inner, list) and inner else inner
                if isinstance(inner, Message):
                    forwarded = forwarded or _holds_diff(inner)
                continue
            if part.is_multipart():
                todo[0:0] = [p for p in part.get_payload() if isinstance(p, Message)]
                continue
            filename = str(part.get_filename() or "")
            if ctype in PATCH_TYPES or filename.endswith((".patch", ".diff")):
                out.append(part)
            elif ctype == "text/plain":
                disposition = str(part.get("Content-Disposition") or "").lower()
                if not disposition.startswith("attachment"):
                    out.append(part)
    except Exception:  # noqa: BLE001 - a broken MIME tree: whatever was found
        pass
    return out, forwarded


def _holds_diff(inner: Message) -> bool:
    text, _ = text_body(inner)
    return "\ndiff --git " in "\n" + text or "\n+++ " in text


def _has_type(msg: Message, ctype: str) -> bool:
    try:
        return any(p.get_content_type() == ctype for p in msg.walk())
    except Exception:  # noqa: BLE001
        return False


def unflow(text: str, delsp: bool) -> str:
    """RFC 3676 format=flowed undone the way git mailinfo does it: the signature
    separator stays; one leading space is unstuffed; a line ending in a space
    joins the next (that space dropped with delsp=yes)."""
    out: list[str] = []
    pending = ""
    for line in text.split("\n"):
        line = line.removesuffix("\r")
        if line == "-- ":
            if pending:
                out.append(pending)
                pending = ""
            out.append(line)
            continue
        if line.startswith(" "):
            line = line[1:]
        if line.endswith(" "):
            pending += line[:-1] if delsp else line
            continue
        out.append(pending + line)
        pending = ""
    if pending:
        out.append(pending)
    return "\n".join(out)


def is_flowed(part: Message) -> tuple[bool, bool]:
    """(format=flowed, delsp=yes) of a text part."""
    try:
        flowed = str(part.get_param("format") or "").lower() == "flowed"
        return flowed, flowed and str(part.get_param("delsp") or "").lower() == "yes"
    except Exception:  # noqa: BLE001 - a broken Content-Type is not flowed
        return False, False

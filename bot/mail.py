"""Pure helpers for reading mail bytes: parsing, Message-IDs, bodies.

Nothing here raises on bad input; problems come back as values.
"""

from __future__ import annotations

import email
import email.policy
import email.utils
import hashlib
import re
from email.message import EmailMessage, Message

# b4's parsing policy: keep 8-bit bodies, never rewrap lines.
POLICY = email.policy.EmailPolicy(utf8=True, cte_type="8bit", max_line_length=None)

_MSGID = re.compile(r"<([^<>\s]+)>")


def parse_bytes(raw: bytes) -> EmailMessage:
    return email.message_from_bytes(raw, policy=POLICY)  # type: ignore[return-value]


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
    except Exception:  # noqa: BLE001
        return ""
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
    if not value:
        return []
    ids = _MSGID.findall("".join(value.split("\n")).replace("\r", ""))
    return [i for i in ids if i]


def message_id(msg: Message, raw: bytes) -> tuple[str, bool]:
    """The normalised Message-ID and whether it was made up (missing)."""
    mid = normalise_msgid(header(msg, "Message-ID"))
    if mid:
        return mid, False
    return f"sha256-{hashlib.sha256(raw).hexdigest()[:32]}@bpbot.invalid", True


def address(msg: Message, name: str) -> tuple[str, str]:
    """(display name, lower-case address) of the first address in a header."""
    value = header(msg, name)
    if not value:
        return "", ""
    try:
        realname, addr = email.utils.parseaddr(value)
    except Exception:  # noqa: BLE001
        return "", ""
    return realname, addr.lower()


def all_addresses(msg: Message, *names: str) -> list[str]:
    values = [header(msg, n) for n in names]
    try:
        pairs = email.utils.getaddresses([v for v in values if v])
    except Exception:  # noqa: BLE001
        return []
    return [a.lower() for _, a in pairs if "@" in a]


def text_body(msg: Message) -> tuple[str, str]:
    """(text, note): the first text/plain part decoded; note says what was odd."""
    part = _first_part(msg, "text/plain")
    if part is None:
        if _first_part(msg, "text/html") is not None:
            return "", "HTML only, no text/plain part"
        return "", "no text part"
    try:
        payload = part.get_payload(decode=True) or b""
    except Exception as exc:  # noqa: BLE001
        return "", f"undecodable body: {exc}"
    charset = part.get_content_charset() or "utf-8"
    note = ""
    try:
        text = payload.decode(charset)
    except LookupError:
        text, note = payload.decode("latin-1"), f"unknown charset {charset!r}, read as latin-1"
    except UnicodeDecodeError:
        text, note = payload.decode(charset, "replace"), f"invalid {charset} bytes replaced"
    if "\x00" in text:
        text, note = text.replace("\x00", ""), "NUL bytes removed"
    return text.replace("\r\n", "\n"), note


def _first_part(msg: Message, ctype: str) -> Message | None:
    try:
        for part in msg.walk():
            if part.get_content_type() == ctype and not part.is_multipart():
                disposition = (part.get("Content-Disposition") or "").lower()
                if ctype == "text/plain" and disposition.startswith("attachment") and \
                        not str(part.get_filename() or "").endswith((".patch", ".diff")):
                    continue
                return part
    except Exception:  # noqa: BLE001
        return None
    return None

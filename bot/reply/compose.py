"""Every reply the bot mails is put together here: headers, threading,
recipients and the envelope (reports, notices, command replies, the rate
notice; a subscriber's copy is the report readdressed). Bodies come from
bot/reply/render.py.

Addresses are written with ``email.headerregistry.Address``, so a display
name with ``[ ]``, commas, quotes, parentheses or non-ASCII is quoted or
encoded as it must be, and the envelope holds exactly the addr-specs chosen,
never a re-parse of a header. An address that is malformed, or that needs
SMTPUTF8 (a non-ASCII local part), gets no mail: ``mailbox`` says why, and
the caller logs it.
"""

from __future__ import annotations

import email
import email.policy
import email.utils
import hashlib
import logging
import re
from dataclasses import dataclass, field
from email.errors import HeaderParseError, MessageError
from email.headerregistry import Address
from email.message import EmailMessage

from bot.config.rules import Rules

log = logging.getLogger(__name__)
MAX_REFERENCES = 20
# A host name with at least one dot: no domain literals, no bare TLD.
_DOMAIN = re.compile(r"(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+"
                     r"[A-Za-z]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_NAME_BAD = re.compile(r"[\x00-\x1f\x7f]")


def mailbox(name: str, addr: str) -> tuple[Address | None, str]:
    """(the address to write, '') or (None, why it cannot be mailed)."""
    addr = (addr or "").strip()
    if not addr:
        return None, "no address"
    if not addr.isascii():
        return None, f"address {addr!r} needs SMTPUTF8 (a non-ASCII local part)"
    try:
        # A control character in a name would make a header the parser splits.
        result = Address(display_name=_NAME_BAD.sub(" ", name or "").strip(), addr_spec=addr)
    except (HeaderParseError, MessageError, ValueError, IndexError) as exc:
        return None, f"address {addr!r} is malformed ({type(exc).__name__}: {exc})"
    if not result.username or not _DOMAIN.fullmatch(result.domain) or \
            result.addr_spec != addr:
        return None, f"address {addr!r} is malformed (not local@host.domain)"
    return result, ""


@dataclass
class Reply:
    """One reply: what it answers, who gets it, and its body (rendered text)."""

    subject: str
    parent: str  # the Message-ID answered, without <>
    references: list[str]
    to: list[Address]
    body: str
    key: str  # the outbox key; the Message-ID is made from it
    cc: list[Address] = field(default_factory=list)
    footer: str = ""
    auto: str = "auto-generated"  # Auto-Submitted: auto-generated, or auto-replied
    reply_to: str = ""
    headers: dict[str, str] = field(default_factory=dict)  # after the standard ones


def message_id(rules: Rules, key: str) -> str:
    """Stable across restarts: made from the outbox key."""
    domain = rules.bot_address.split("@", 1)[1]
    return f"<bpbot-{hashlib.sha1(key.encode()).hexdigest()[:16]}@{domain}>"


def compose(rules: Rules, reply: Reply) -> tuple[EmailMessage, list[str]]:
    """The reply as a message, and its envelope recipients (To, then Cc)."""
    msg = EmailMessage()
    subject = reply.subject
    msg["Subject"] = subject if subject.lower().startswith("re:") else f"Re: {subject}"
    bot, _ = mailbox(rules.bot_name, rules.bot_address)
    msg["From"] = bot if bot is not None else rules.bot_address
    if reply.to:
        msg["To"] = reply.to
    if reply.cc:
        msg["Cc"] = reply.cc
    if reply.reply_to:
        msg["Reply-To"] = reply.reply_to
    msg["Date"] = email.utils.formatdate(localtime=False)
    msg["Message-ID"] = message_id(rules, reply.key)
    msg["In-Reply-To"] = f"<{reply.parent}>"
    refs = [r for r in reply.references if r != reply.parent] + [reply.parent]
    msg["References"] = " ".join(f"<{r}>" for r in refs[-MAX_REFERENCES:])
    msg["X-Loop"] = rules.loop_id
    msg["Auto-Submitted"] = reply.auto
    for name, value in reply.headers.items():
        msg[name] = value
    footer = f"\n\n{reply.footer}" if reply.footer else ""
    msg.set_content(reply.body + footer + "\n")
    return msg, [a.addr_spec for a in [*reply.to, *reply.cc]]


def readdress(msg: EmailMessage, to: Address, headers: dict[str, str],
              note: str) -> EmailMessage:
    """A copy of a composed reply for one more reader: the same Message-ID (who
    also reads the list sees it once), To the reader only, ``note`` appended."""
    copy = email.message_from_bytes(msg.as_bytes(), policy=email.policy.default)
    del copy["To"]
    del copy["Cc"]
    copy["To"] = to
    for name, value in headers.items():
        copy[name] = value
    body = copy.get_content().rstrip("\n")
    copy.set_content(body + "\n\n" + note + "\n")
    return copy

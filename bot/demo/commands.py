"""The demo's mail-command exchange, before the list traffic starts.

A reader mails ``help`` (``bot/demo/data/commands/15-help.eml``), then
subscribes to reports touching ``backport-include/*`` (16, a reply to the
help answer); the demo answers the confirmation request the way the reader
would, with the token read from the reply the demo's SMTP server received.
The series mailed to the list afterwards then reach the reader as copies.
"""

from __future__ import annotations

import email
import email.policy
import logging
import re
import tempfile
from collections.abc import Callable
from pathlib import Path

from bot.daemon import Daemon
from bot.demo import layout

log = logging.getLogger(__name__)
COMMANDS = layout.DATA / "commands"
READER = "Rafael Oliveira <rafael.oliveira@example.net>"
_TOKEN_LINE = re.compile(r"^    confirm [0-9a-f]{20}\r?$", re.M)  # in the request's text


def command_mails() -> list[Path]:
    return sorted(COMMANDS.glob("*.eml"))


async def help_and_subscribe(daemon: Daemon, maildir: Path,
                             received: Callable[[], list[bytes]]) -> int:
    """Deliver the command mails and the confirmation; returns the next delivery index."""
    index = 0
    for src in command_mails():
        layout.deliver(maildir, src, index)
        log.info("bot: delivered %s", src.name)
        index += 1
        await daemon.process()
    request = next((m for m in map(_parse, received())
                    if _TOKEN_LINE.search(m.get_content())), None)
    if request is None:
        raise RuntimeError("the demo's subscribe mail got no confirmation request")
    with tempfile.TemporaryDirectory(prefix="bpbot-demo-confirm-") as tmp:
        confirm = Path(tmp) / "17-confirm.eml"
        confirm.write_bytes(confirmation(daemon.rules.bot_address, request))
        layout.deliver(maildir, confirm, index)
    log.info("bot: delivered the confirmation (%s)", request["Subject"])
    await daemon.process()
    return index + 1


def _parse(raw: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(raw, policy=email.policy.default)


def confirmation(bot_address: str, request: email.message.EmailMessage) -> bytes:
    """The reader's answer: a plain reply quoting the request, and so its token."""
    quoted = "\n".join(f"> {line}".rstrip() for line in request.get_content().splitlines())
    refs = f"{request['References']} {request['Message-ID']}".strip()
    subject = str(request["Subject"])
    subject = subject if subject.lower().startswith("re:") else f"Re: {subject}"  # as a mail client
    return (f"From: {READER}\n"
            f"To: bpbot <{bot_address}>\n"
            f"Subject: {subject}\n"
            "Date: Sun, 11 Jan 2026 10:24:05 +0100\n"
            "Message-ID: <20260111092405.2251-1-rafael.oliveira@example.net>\n"
            f"In-Reply-To: {request['Message-ID']}\n"
            f"References: {refs}\n"
            "MIME-Version: 1.0\n"
            "Content-Type: text/plain; charset=UTF-8\n"
            "Content-Transfer-Encoding: 8bit\n\n"
            f"Yes, please.\n\n{quoted}\n").encode()

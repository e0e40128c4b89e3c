"""Mail the bot must never answer: bounces, auto-replies, list and bulk mail,
its own mail and other robots'. Pure: a function of the parsed message."""

from __future__ import annotations

import re

from bot.ingest import mail
from bot.ingest.lists import ListRule

# The one bounce rule, used by classify() and by the mail commands.
BOUNCE_SENDERS = re.compile(r"^(mailer-daemon|postmaster|mail-daemon|mailerdaemon)@", re.I)
_BOUNCE_SUBJECT = re.compile(
    r"(undeliver|delivery status notification|returned mail|mail delivery (failed|system)|"
    r"failure notice|delivery failure)", re.I)

# Local parts of automatic senders: no-reply and friends, and other bots.
_BOT_SENDERS = re.compile(
    r"^(.*[._+-])?(no-?reply|do-?not-?reply|bounces?|daemon|robot|bot|notifications?)$"
    r"|^(lkp|syzbot|patchwork|kernelci|ci|jenkins|buildbot|gitlab|github)$", re.I)
# Headers a mail carries at most once (RFC 5322). Two copies let a replayed,
# DKIM-signed mail say one thing to the signature and another to the bot.
SINGLE_HEADERS = ("From", "To", "Cc", "Subject", "Date", "Message-ID", "In-Reply-To",
                  "References")
_AUTO_HEADERS = ("X-Autoreply", "X-Autorespond", "X-Autoresponder", "X-bpbot-Verdict",
                 "X-bpbot-Commands", "X-Patchwork-Hint")


def bounce_reason(msg, from_addr: str, subject: str) -> str:
    """Why this mail is a bounce, or ''. An empty Return-Path alone is not one
    (auto-replies use it too); ``silence_reason`` refuses it on its own."""
    if msg.get_content_type() == "multipart/report":
        return f"delivery report ({msg.get_param('report-type') or 'multipart/report'})"
    if BOUNCE_SENDERS.match(from_addr or ""):
        return f"from {from_addr}"
    if _null_sender(msg) and _BOUNCE_SUBJECT.search(subject):
        return "empty Return-Path and a delivery-failure subject"
    return ""


def _null_sender(msg) -> bool:
    return mail.header(msg, "Return-Path").replace(" ", "") == "<>"


def duplicate_headers(msg) -> str:
    """Why the mail is refused for carrying a header twice, or ''."""
    twice = [name for name in SINGLE_HEADERS if len(msg.get_all(name) or []) > 1]
    if not twice:
        return ""
    return (f"refused: more than one {', '.join(twice)} header (a mail carries each once; "
            "a second copy is how a signed mail is replayed with other meaning)")


def silence_reason(msg, from_addr: str, bot: str, loop_id: str = "",
                   lists: ListRule | None = None) -> str:
    """Why this mail must never be answered, or ''. Pure."""
    if (twice := duplicate_headers(msg)):
        return twice
    if not from_addr or "@" not in from_addr:
        return "no usable From address"
    local, _, domain = from_addr.partition("@")
    bot_local, _, bot_domain = bot.partition("@")
    if from_addr == bot or (domain == bot_domain and local.split("+", 1)[0] == bot_local):
        return "sent by the bot itself"
    if lists is not None and lists.is_list_address(from_addr):
        return f"sent from a list address ({from_addr}): a reply would go to its archive"
    if loop_id and any(loop_id == str(v).strip().lower() for v in (msg.get_all("X-Loop") or [])):
        return "carries our X-Loop header"
    if (bounce := bounce_reason(msg, from_addr, mail.header(msg, "Subject"))):
        return f"a bounce ({bounce})"
    if _null_sender(msg):  # RFC 5321 4.5.5: mail from the null sender is never answered
        return "automatic mail (empty Return-Path)"
    auto = mail.header(msg, "Auto-Submitted").lower()
    if auto and auto.split(";")[0].strip() != "no":
        return f"automatic mail (Auto-Submitted: {auto})"
    precedence = mail.header(msg, "Precedence").lower()
    if precedence in ("bulk", "junk", "list"):
        return f"automatic or list mail (Precedence: {precedence})"
    suppress = mail.header(msg, "X-Auto-Response-Suppress").lower()
    if any(w in suppress for w in ("all", "oof", "autoreply")):
        return f"automatic mail (X-Auto-Response-Suppress: {suppress})"
    for name in _AUTO_HEADERS:
        if msg.get(name) is not None:
            return f"automatic mail ({name})"
    if _BOT_SENDERS.match(local):
        return f"sent by a robot ({from_addr})"
    return ""

"""DKIM for maintainers' retests (``[commands] require_dkim``).

A signature counts only when it cannot be turned into another request:
it verifies and is of the From domain (or a parent), covers the whole body
(no ``l=``), signs every header the bot reads to know what to retest
(``REQUIRED`` always, ``WHEN_PRESENT`` when the mail has them; with
duplicates refused by the parser, the signed copy is the one read), and the
mail's Date is recent (within the token lifetime). The runner also remembers
each used signature (``signature``), so a replay does nothing.
"""

from __future__ import annotations

import email.utils
import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import dkim
import dkim.util

from bot.ingest import mail

DnsFunc = Callable[..., bytes | None]
REQUIRED = ("from", "date", "message-id")
WHEN_PRESENT = ("to", "cc", "subject", "in-reply-to", "references")
FUTURE_SLACK = 86400  # a Date this far ahead is a wrong clock, not a fresh mail
# Each verification is a DNS lookup: a forged mail with many signatures must
# not hold the runner for a timeout each. Others' signatures are not looked up.
MAX_SIGNATURES = 3


@dataclass(frozen=True)
class Verdict:
    passed: bool
    why: str
    signature: str = ""  # sha256 of the b= value that passed, to refuse it a second time


NOT_CHECKED = Verdict(False, "not checked")


def verdict(raw: bytes, sender: str, at: float, max_age: float,
            dnsfunc: DnsFunc | None = None) -> Verdict:
    """Whether a DKIM signature of the From domain vouches for this whole mail."""
    domain = sender.rpartition("@")[2].lower()
    headers, _ = dkim.rfc822_parse(raw)
    signatures = [value for name, value in headers if name.lower() == b"dkim-signature"]
    if not signatures:
        return Verdict(False, "no DKIM-Signature header")
    present = {name.decode("ascii", "replace").lower() for name, _ in headers}
    problems = []
    looked_up = 0
    for idx, value in enumerate(signatures):
        try:
            tags = dkim.util.parse_tag_value(value)
        except dkim.util.InvalidTagValueList:
            problems.append(f"signature {idx + 1} cannot be read")
            continue
        signer = tags.get(b"d", b"").decode("ascii", "replace").lower()
        name = f"signature {idx + 1} (d={signer})"
        weak = "" if domain == signer or domain.endswith("." + signer) else \
            "is not of the From domain"
        weak = weak or coverage_problem(tags, present)
        if weak or looked_up >= MAX_SIGNATURES:
            problems.append(f"{name} {weak or 'not checked: too many signatures'}")
            continue
        looked_up += 1
        why = ""
        try:
            ok = dkim.DKIM(raw).verify(idx=idx, dnsfunc=dnsfunc or dkim.get_txt)
        except dkim.DKIMException as exc:  # the details (hashes) mean nothing to a person
            ok, why = False, ": " + str(exc).split(" (")[0]
        if not ok:
            problems.append(f"{name} does not verify{why}")
        else:
            stale = date_problem(raw, at, max_age)
            if stale:
                return Verdict(False, f"{name} verified, but {stale}")
            b_value = b"".join(tags.get(b"b", b"").split())
            return Verdict(True, f"DKIM signature of {signer} verified",
                           hashlib.sha256(b_value).hexdigest())
    return Verdict(False, "; ".join(problems))


def coverage_problem(tags: dict[bytes, bytes], present: set[str]) -> str:
    """Why a signature does not vouch for the whole mail, or ''."""
    if b"l" in tags:
        return "signs only the first l= bytes of the body; text could be added below"
    signed = {h.strip().decode("ascii", "replace").lower() for h in tags.get(b"h", b"").split(b":")}
    unsigned = [h for h in REQUIRED if h not in signed] + \
        [h for h in WHEN_PRESENT if h in present and h not in signed]
    if unsigned:
        return f"does not sign {', '.join(unsigned)}"
    return ""


def date_problem(raw: bytes, at: float, max_age: float) -> str:
    """Why the mail's Date makes it too old (or too new) to act on, or ''."""
    value = mail.header(mail.parse_fast(raw), "Date")
    try:
        sent = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return f"its Date {value!r} cannot be read"
    if sent < at - max_age:
        return (f"its Date ({value}) is more than {int(max_age // 86400)} days old: an old "
                "signed mail is not acted on again")
    if sent > at + FUTURE_SLACK:
        return f"its Date ({value}) is in the future"
    return ""

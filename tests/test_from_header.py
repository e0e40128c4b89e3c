"""The From header decides who is answered: it is read with the strict modern
parser, unfolded, encoded words decoded only inside the display name. A display
name that holds an address never becomes the recipient; a From without exactly
one valid address is refused (quarantined, or a command mail left silent)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.commands.parse import parse as parse_command
from bot.ingest import mail
from bot.ingest.classify import QUARANTINE, classify
from bot.series import assembly

CORPUS = Path(__file__).resolve().parent / "data" / "corpus"
BOT = "bpbot@backports.example.org"
VICTIM = "victim@example.com"
EVIL = "mallory@evil.example"

# From values whose one valid address is mallory's, dressed up with the victim's.
MISLEADING = {
    "quoted name holding an address, folded": b'"Mallory <victim@example.com>"\r\n <mallory@evil.example>',
    "encoded word holding <address>":
        b"=?utf-8?q?Mallory_=3Cvictim=40example=2Ecom=3E?= <mallory@evil.example>",
    "encoded word that is an address": b"=?utf-8?q?victim=40example=2Ecom?= <mallory@evil.example>",
    "comment after": b"mallory@evil.example (victim@example.com)",
    "comment before, folded": b"(victim@example.com)\r\n\tmallory@evil.example",
}
# From values without exactly one valid address: refused.
INVALID = {
    "name then two addresses, folded": b"Mallory <victim@example.com>\r\n <mallory@evil.example>",
    "bare address then another, folded": b"victim@example.com\r\n\t<mallory@evil.example>",
    "two addresses": b"mallory@evil.example, victim@example.com",
    "address after the angle address": b"Mallory <mallory@evil.example> victim@example.com",
    "a group": b"friends: mallory@evil.example;",
    "no address": b"Mallory",
}
ORDINARY = {
    b"Jane Doe <jane@example.org>": ("Jane Doe", "jane@example.org"),
    b"=?utf-8?q?J=C3=B6rg_M=C3=BCller?= <Jorg@Example.com>": ("Jörg Müller", "jorg@example.com"),
    "Jörg Müller\r\n <jorg@example.com>".encode(): ("Jörg Müller", "jorg@example.com"),
    b"John Q. Public <john@example.com>": ("John Q. Public", "john@example.com"),
    b'"Doe, Jane" <jane@example.org>': ("Doe, Jane", "jane@example.org"),
    b"jane@example.org": ("", "jane@example.org"),
}


def _patch_mail(from_value: bytes) -> bytes:
    raw = (CORPUS / "patch-single.eml").read_bytes()
    head, _, rest = raw.partition(b"\n")
    assert head.startswith(b"From: ")
    return b"From: " + from_value + b"\n" + rest


def _command_mail(from_value: bytes) -> bytes:
    return (b"From: " + from_value + b"\r\nTo: " + BOT.encode() + b"\r\nSubject: help\r\n"
            b"Message-ID: <cmd@example.org>\r\n\r\nhelp\r\n")


@pytest.mark.parametrize("value", MISLEADING.values(), ids=MISLEADING.keys())
def test_an_address_in_the_display_name_is_never_the_sender(value):
    raw = _patch_mail(value)
    for msg in (mail.parse_fast(raw), mail.parse_bytes(raw)):
        assert mail.address(msg, "From")[1] == EVIL
    found = classify(raw, BOT)
    assert (found.kind, found.from_addr) != (QUARANTINE, "") and found.from_addr == EVIL
    assert parse_command(_command_mail(value), BOT).from_addr == EVIL


@pytest.mark.parametrize("value", INVALID.values(), ids=INVALID.keys())
def test_a_from_without_one_valid_address_is_refused(value):
    raw = _patch_mail(value)
    for msg in (mail.parse_fast(raw), mail.parse_bytes(raw)):
        assert mail.address(msg, "From") == ("", "")
    found = classify(raw, BOT)
    assert found.kind == QUARANTINE and "From" in found.reason
    parsed = parse_command(_command_mail(value), BOT)
    assert parsed.from_addr == "" and parsed.silent == "no usable From address"


@pytest.mark.parametrize("value", ORDINARY, ids=[v.decode() for v in ORDINARY])
def test_ordinary_from_headers_still_read(value):
    raw = _patch_mail(value)
    for msg in (mail.parse_fast(raw), mail.parse_bytes(raw)):
        assert mail.address(msg, "From") == ORDINARY[value]
    assert classify(raw, BOT).kind != QUARANTINE


@pytest.mark.parametrize("value", [*MISLEADING.values(), *INVALID.values()],
                         ids=[*MISLEADING, *INVALID])
def test_the_series_author_is_read_as_strictly(value):
    """b4 decodes encoded words before it parses addresses; the author a series
    reply goes to is the bot's own strict reading."""
    assembly.configure_b4("bpbot", BOT)
    [version] = assembly.assemble_thread([_patch_mail(value)], "root@test", with_am=False)
    assert version.author_addr in (EVIL, "")
    assert VICTIM not in version.author_name or version.author_addr == EVIL

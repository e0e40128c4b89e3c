"""Broken and odd mail: every one gets a named outcome, never a crash.

The corpus is tests/data/malformed/ (made by make_corpus.py there); the two
big ones (a 1 MB header, a 50 MB body) are made here. Outcomes:

- ``quarantined``: spooled with kind ``quarantine`` and the reason named;
- ``ignored``: spooled, classified as not a patch (no reply);
- ``processed``: a patch that reaches a reply (its verdict named).

A hypothesis fuzz test mutates the corpus and runs classify, the spool and
series assembly on it: no exception, every message stored with a kind.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.config.rules import Source
from bot.daemon import Daemon
from bot.demo import layout
from bot.ingest import classify, spool
from bot.ingest.sources import LocalSource
from bot.reply import notices
from bot.sandbox import bwrap as sandbox
from bot.series import tracker
from bot.series.assembly import configure_b4
from bot.state import State

DATA = Path(__file__).resolve().parent / "data" / "malformed"
BOT = "bpbot@backports.example.org"
MAX_BYTES = 10 * 1024 * 1024

# file -> (outcome, what the bot must say: classify reason/note, or the reply's verdict)
OUTCOMES = {
    "bad-mime-boundary.eml": ("quarantined", "broken MIME"),
    "unterminated-multipart.eml": ("processed", "PASS"),
    "unknown-charset.eml": ("processed", "PASS"),
    "invalid-utf8.eml": ("processed", "PASS"),
    "nul-bytes.eml": ("processed", "NOT-APPLIED"),  # git am refuses a NUL in the log
    "base64-crlf.eml": ("processed", "PASS"),
    "broken-base64.eml": ("processed", "PASS"),
    "html-only.eml": ("ignored", "HTML-only"),
    "missing-message-id.eml": ("processed", "PASS"),
    "same-message-id-first.eml": ("processed", "PASS"),
    "same-message-id-second.eml": ("quarantined", "same Message-ID as an earlier message"),
    "bidi-in-patch.eml": ("processed", "NOT TESTED (untestable)"),  # with the reason
    "broken-encoded-words.eml": ("processed", "PASS"),
    "no-body.eml": ("ignored", "no patch"),
    "header-without-colon.eml": ("processed", "PASS"),
    "huge-header.eml": ("processed", "PASS"),
    "huge-body.eml": ("quarantined", "over the limit"),
}
# What classify() alone says (the second copy is only a conflict in the spool).
NOTES = {
    "unknown-charset.eml": "unknown charset",
    "invalid-utf8.eml": "invalid utf-8 bytes replaced",
    "nul-bytes.eml": "NUL bytes removed",
    "unterminated-multipart.eml": "CloseBoundaryNotFoundDefect",
    "missing-message-id.eml": "no Message-ID header",
    "header-without-colon.eml": "MissingHeaderBodySeparatorDefect",
}


def huge_header() -> bytes:
    """A patch with one 1 MB header line."""
    raw = (DATA / "unknown-charset.eml").read_bytes()
    raw = raw.replace(b"Message-ID: <malformed-03@", b"Message-ID: <malformed-huge-header@")
    raw = raw.replace(b"(unknown charset)", b"(a 1 MB header)")
    return raw.replace(b"MIME-Version:", b"X-Junk: " + b"z" * (1024 * 1024) + b"\nMIME-Version:")


def huge_body() -> bytes:
    """A patch with a 50 MB body."""
    raw = (DATA / "unknown-charset.eml").read_bytes()
    raw = raw.replace(b"Message-ID: <malformed-03@", b"Message-ID: <malformed-huge-body@")
    raw = raw.replace(b"(unknown charset)", b"(a 50 MB body)")
    filler = (b"y" * 76 + b"\n") * (50 * 1024 * 1024 // 77)
    return raw.replace(b"Signed-off-by:", filler + b"\nSigned-off-by:")


def load(name: str) -> bytes:
    if name == "huge-header.eml":
        return huge_header()
    if name == "huge-body.eml":
        return huge_body()
    return (DATA / name).read_bytes()


def test_every_corpus_file_has_an_outcome():
    stored = {p.name for p in DATA.glob("*.eml")}
    assert stored == set(OUTCOMES) - {"huge-header.eml", "huge-body.eml"}


@pytest.mark.parametrize("name", sorted(OUTCOMES))
def test_classify_names_the_outcome(name: str):
    c = classify.classify(load(name), BOT, BOT, MAX_BYTES)
    outcome, words = OUTCOMES[name]
    assert c.kind in classify.KINDS and c.msgid and c.reason
    if outcome == "quarantined" and name != "same-message-id-second.eml":
        assert c.kind == classify.QUARANTINE and words in c.reason, c
    elif outcome == "ignored":
        assert c.kind == classify.OTHER and words in c.reason, c
    else:
        assert c.kind == classify.PATCH, c
    if name in NOTES:
        assert any(NOTES[name] in n for n in c.notes), c.notes


def test_the_50mb_body_is_refused_without_parsing_it():
    import time
    raw = huge_body()
    started = time.monotonic()
    c = classify.classify(raw, BOT, BOT, MAX_BYTES)
    assert time.monotonic() - started < 1.0
    assert c.kind == classify.QUARANTINE and c.msgid == "malformed-huge-body@example.org"
    assert c.reason == f"message is {len(raw)} bytes, over the limit of {MAX_BYTES}"


def test_same_message_id_with_other_content_is_kept_apart(tmp_path):
    state = State(tmp_path / "s.sqlite")
    first, second = load("same-message-id-first.eml"), load("same-message-id-second.eml")
    r1 = spool.spool(state, "t", [first, second], bot_address=BOT, loop_id=BOT)
    r2 = spool.spool(state, "t", [second, first], bot_address=BOT, loop_id=BOT)  # a rescan
    assert (r1.new, r1.conflicting, r2.new, r2.duplicates) == (2, 1, 0, 2)
    rows = {r["msgid"]: r for r in state.query("SELECT * FROM messages")}
    assert bytes(rows["malformed-dup@example.org"]["raw"]) == first
    [other] = [r for m, r in rows.items() if m.startswith("malformed-dup@example.org#conflict-")]
    assert bytes(other["raw"]) == second and other["kind"] == classify.QUARANTINE


def test_mbox_from_escaping(tmp_path):
    """mboxo escapes a body line "From ..." as ">From ...": two messages, not three."""
    rules = layout.prepare(tmp_path / "work", with_list=False)
    rules = dataclasses.replace(rules, source=Source(kind="mbox", path=DATA / "from-escaping.mbox"))
    state = State(rules.state_dir / "bpbot.sqlite")
    configure_b4(rules.bot_name, rules.bot_address)
    assert LocalSource(rules, state).poll() == 2
    kinds = {r["msgid"]: r["kind"] for r in state.query("SELECT msgid, kind FROM messages")}
    assert kinds == {"malformed-15@example.org": "patch", "malformed-15-question@example.org": "other"}
    assert tracker.assemble(state, rules) == 1
    [version] = state.query("SELECT * FROM versions")
    assert version["state"] == "ready"


def test_every_malformed_mail_through_the_daemon(tmp_path, smtp_server):
    """All of them (and the 50 MB one) through the real loop: a named outcome each."""
    rules = layout.prepare(tmp_path / "work", with_list=False)
    rules = dataclasses.replace(
        rules, grace_seconds=1, kernels=rules.kernels[-1:],
        smtp=dataclasses.replace(rules.smtp, host=smtp_server.host, port=smtp_server.port))
    names = sorted(OUTCOMES)
    # The first copy of the duplicated Message-ID must arrive first.
    names.remove("same-message-id-second.eml")
    names.append("same-message-id-second.eml")
    for i, name in enumerate(names):
        path = tmp_path / name
        path.write_bytes(load(name))
        layout.deliver(tmp_path / "work" / "list", path, i)
    state = State(rules.state_dir / "bpbot.sqlite")
    asyncio.run(Daemon(rules, state, sandbox.for_rules(rules)).run(until_idle=True, tick=0.2))

    processed = [n for n in names if OUTCOMES[n][0] == "processed"]
    replies = smtp_server.take(len(processed), timeout=30)
    by_parent = {m.message["In-Reply-To"]: m.message for m in replies}
    rows = state.query("SELECT msgid, kind, reason, subject FROM messages")
    assert len(rows) == len(names)  # nothing lost: the conflicting copy is kept too
    for name in names:
        outcome, words = OUTCOMES[name]
        raw = load(name)
        c = classify.classify(raw, BOT, BOT, MAX_BYTES)
        if outcome == "processed":
            reply = by_parent[f"<{c.msgid}>"]
            verdict = reply["X-bpbot-Verdict"]
            assert verdict == words, (name, verdict, reply.get_content())
            if name == "bidi-in-patch.eml":
                assert "bidirectional control characters" in reply.get_content()
            if name == "nul-bytes.eml":
                assert "NUL byte" in reply.get_content()
        else:
            kind = classify.QUARANTINE if outcome == "quarantined" else classify.OTHER
            [row] = [r for r in rows if r["kind"] == kind and words in r["reason"]
                     and (r["subject"] == c.subject or not c.subject)]
            assert row
    assert smtp_server.unchecked() == []


# --- fuzz: mutated malformed mail through classify, spool and assembly -----

CORPUS = sorted(p.name for p in DATA.glob("*.eml"))
FUZZ_EXAMPLES = int(os.environ.get("BPBOT_FUZZ_EXAMPLES", "60"))


@pytest.fixture(scope="module")
def fuzz_rules(tmp_path_factory):
    return layout.prepare(tmp_path_factory.mktemp("fuzz") / "work", with_list=False)


@settings(max_examples=FUZZ_EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(st.tuples(st.sampled_from(CORPUS), st.lists(st.tuples(
    st.integers(0, 4000), st.sampled_from([b"", b"\n", b"\r\n", b"\x00", b"--", b"=?", b">",
                                           b"From ", "\u202e".encode(), b"\xff", b"\n\n"])),
    max_size=4)), min_size=1, max_size=4))
def test_fuzz_spool_and_assembly_never_crash(fuzz_rules, mails):
    configure_b4("bpbot", BOT)
    raws = []
    for name, edits in mails:
        raw = bytearray((DATA / name).read_bytes())
        for at, piece in edits:
            at = min(at, len(raw))
            raw[at:at + (1 if not piece else 0)] = piece
        raws.append(bytes(raw))
    with tempfile.TemporaryDirectory() as tmp:
        rules = dataclasses.replace(fuzz_rules, state_dir=Path(tmp))
        state = State(rules.state_dir / "bpbot.sqlite")
        result = spool.spool(state, "fuzz", raws, bot_address=BOT, loop_id=BOT)
        tracker.assemble(state, rules)
        notices.expire(state, rules, at=float("inf"))
        stored = state.query("SELECT kind, reason FROM messages")
        assert len(stored) == result.new == len(raws) - result.duplicates
        assert all(r["kind"] in classify.KINDS and r["reason"] for r in stored)
        assert not state.query("SELECT 1 FROM messages WHERE assembled = 0")
        state.close()


# --- [limits]: most patches per series, largest series ----------------------

@pytest.mark.parametrize("limit, words", [
    (dict(max_patches=2), "the series has 3 patches; this bot tests at most 2"),
    (dict(max_diff_bytes=2000), "bytes of mail; this bot tests at most 2000 bytes"),
])
def test_series_over_the_limits_is_answered_untestable(tmp_path, limit, words):
    rules = dataclasses.replace(layout.prepare(tmp_path / "work", with_list=False), **limit)
    configure_b4(rules.bot_name, rules.bot_address)
    state = State(rules.state_dir / "bpbot.sqlite")
    clean = [p for p in layout.sample_list() if p.name.startswith(("01-", "02-", "03-", "04-"))]
    spool.spool(state, "t", [p.read_bytes() for p in clean], bot_address=BOT, loop_id=BOT)
    tracker.assemble(state, rules)
    [version] = state.query("SELECT * FROM versions")
    assert version["state"] == "untestable" and words in version["state_reason"]
    notices.expire(state, rules)
    [reply] = state.query("SELECT * FROM outbox")
    assert reply["kind"] == "untestable" and words in bytes(reply["raw"]).decode()

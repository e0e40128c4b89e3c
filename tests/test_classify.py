"""classify() over the mail corpus, one row per file, plus msgid helpers and a fuzz.

Every file in tests/data/corpus/ is named for what it shows; the table below
says what classify() must make of it. A new corpus file without a row fails
``test_every_corpus_file_has_a_row``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.ingest import mail
from bot.ingest.classify import KINDS, Classified, classify

CORPUS = Path(__file__).resolve().parent / "data" / "corpus"
BOT = "bpbot@backports.example.org"
MADE_UP = re.compile(r"^sha256-[0-9a-f]{32}@bpbot\.invalid$")


def corpus(name: str) -> bytes:
    return (CORPUS / name).read_bytes()


def run(name: str, **kwargs) -> Classified:
    return classify(corpus(name), bot_address=BOT, loop_id=BOT, **kwargs)


@dataclass(frozen=True)
class Want:
    """What classify() must say; None / "" fields are not checked."""

    kind: str
    reason: str = ""  # substring of Classified.reason
    msgid: str | None = None  # exact; "made-up" checks the sha256 form and the flag
    revision: int | None = None
    counter: int | None = None
    expected: int | None = None
    trailers: int | None = None
    in_reply_to: str | None = None
    from_addr: str | None = None
    note: str = ""  # substring of one of Classified.notes

    def check(self, got: Classified) -> None:
        assert got.kind == self.kind, got
        assert self.reason in got.reason, got.reason
        if self.msgid == "made-up":
            assert MADE_UP.match(got.msgid), got.msgid
        elif self.msgid is not None:
            assert got.msgid == self.msgid
            assert not got.msgid_made_up
        for name in ("revision", "counter", "expected", "in_reply_to", "from_addr"):
            if getattr(self, name) is not None:
                assert getattr(got, name) == getattr(self, name), name
        if self.trailers is not None:
            assert len(got.trailers) == self.trailers, got.trailers
        if self.note:
            assert any(self.note in n for n in got.notes), got.notes


def bug(reason: str):
    return pytest.mark.xfail(reason=f"bug: {reason}", strict=True)


PS = "20260301110000.1234-1-jane@example.org"
COVER = "20260302090000.4711-1-wei.chen@example.com"

CASES = [
    # --- patches and cover letters
    ("patch-single.eml", Want(
        "patch", "[PATCH] subject with a diff", msgid=PS, revision=1, counter=1, expected=1,
        trailers=1, from_addr="jane@example.org")),
    ("series-cover-0of2.eml", Want(
        "cover", "cover letter", msgid=COVER, counter=0, expected=2, trailers=0)),
    ("series-cover-1of2.eml", Want(
        "patch", msgid="20260302090000.4711-2-wei.chen@example.com", counter=1, expected=2,
        in_reply_to=COVER)),
    ("series-cover-2of2.eml", Want("patch", counter=2, expected=2, in_reply_to=COVER)),
    ("series-nocover-1of2.eml", Want("patch", counter=1, expected=2, in_reply_to="")),
    ("series-nocover-2of2.eml", Want(
        "patch", counter=2, expected=2, in_reply_to="20260303140000.2222-1-jane@example.org")),
    ("v1-and-v2-v1-0of2.eml", Want("cover", revision=1, counter=0, expected=2)),
    ("v1-and-v2-v1-1of2.eml", Want("patch", revision=1, counter=1, expected=2)),
    ("v1-and-v2-v1-2of2.eml", Want("patch", revision=1, counter=2, expected=2)),
    ("v1-and-v2-v2-0of2.eml", Want(
        "cover", revision=2, counter=0, expected=2,
        in_reply_to="20260304080000.3001-1-maria@example.net")),
    ("v1-and-v2-v2-1of2.eml", Want("patch", revision=2, counter=1, expected=2)),
    ("v1-and-v2-v2-2of2.eml", Want("patch", revision=2, counter=2, expected=2)),
    ("v2-adds-cover-0of2.eml", Want("cover", revision=2, counter=0, expected=2)),
    ("v2-adds-cover-1of2.eml", Want("patch", revision=2, counter=1, expected=2)),
    ("v2-adds-cover-2of2.eml", Want("patch", revision=2, counter=2, expected=2)),
    ("out-of-order-0of3.eml", Want("cover", counter=0, expected=3)),
    ("out-of-order-1of3.eml", Want("patch", counter=1, expected=3)),
    ("out-of-order-2of3.eml", Want("patch", counter=2, expected=3)),
    ("out-of-order-3of3.eml", Want("patch", counter=3, expected=3)),
    ("partial-1of3.eml", Want("patch", counter=1, expected=3)),
    ("trailer-carry-over-v1.eml", Want("patch", revision=1, counter=1, expected=1)),
    ("trailer-carry-over-v2.eml", Want(
        "patch", revision=2, in_reply_to="20260315090000.8080-1-ola@example.no")),
    ("trailer-carry-over-v1-reply.eml", Want("reply", trailers=1)),
    ("partial-3of3.eml", Want("patch", counter=3, expected=3)),
    ("patch-diff-no-tag.eml", Want(
        "patch", "diff without a [PATCH] subject tag", counter=1, expected=1)),
    ("bidi-in-patch.eml", Want("patch", "[PATCH] subject with a diff")),
    ("bidi-in-series-2of2.eml", Want("patch", counter=2, expected=2, in_reply_to=COVER)),
    ("bidi-in-v2-2of2.eml", Want("patch", revision=2, counter=2, expected=2)),
    pytest.param("patch-attachment.eml", Want("patch", counter=1, expected=1)),
    pytest.param("patch-attachment-text-plain.eml", Want("patch")),
    # --- transfer encodings and charsets
    ("body-base64.eml", Want("patch", msgid="20260310080000.1500-1-jane@example.org",
                             trailers=1)),
    ("body-quoted-printable.eml", Want("patch", trailers=1)),
    ("charset-latin1.eml", Want("patch", from_addr="juergen@example.de", trailers=1)),
    ("charset-unknown.eml", Want("patch", note="unknown charset 'x-unknown-foo'")),
    ("header-raw-utf8.eml", Want("patch", from_addr="juergen@example.de", trailers=1)),
    ("nul-bytes.eml", Want("patch", note="NUL bytes removed")),
    # --- replies
    ("reply-reviewed-by.eml", Want("reply", "reply with 1 trailer", trailers=1, in_reply_to=PS)),
    ("reply-quoted-trailer.eml", Want("reply", "reply", trailers=0, in_reply_to=PS)),
    ("reply-acked-by-cover.eml", Want("reply", "1 trailer", trailers=1, in_reply_to=COVER)),
    ("out-of-order-reply-to-2of3.eml", Want(
        "reply", trailers=1, in_reply_to="20260307070000.909-3-ola@example.no")),
    ("discussion-reply.eml", Want("reply", "reply", trailers=0)),
    ("folded-message-id.eml", Want(
        "reply", trailers=1, in_reply_to=PS,
        msgid="AM9PR08MB6785F1E2D3C4B5A6978877665544332211A0@AM9PR08MB6785.eurprd08.prod."
              "outlook.example.com")),
    # --- not for series assembly
    ("discussion.eml", Want("other", "no patch, not a reply")),
    ("html-only.eml", Want("other", "HTML-only", note="HTML only")),
    ("command-help.eml", Want("command", "addressed to the bot")),
    ("own-mail.eml", Want("own", "sent by the bot")),
    ("xloop.eml", Want("own", "X-Loop")),
    ("bounce-dsn.eml", Want("bounce", "delivery report (delivery-status)")),
    ("bounce-mailer-daemon.eml", Want("bounce", "from mailer-daemon@mx.example.net")),
    ("bounce-empty-return-path.eml", Want("bounce", "empty Return-Path")),
    ("autoreply-vacation.eml", Want("autoreply", "Auto-Submitted: auto-replied")),
    # Marked only by Precedence: auto_reply / X-Autoreply / X-Auto-Response-Suppress (no
    # Auto-Submitted): classify says "command"; bot/commands/parse.py then refuses it as
    # automatic mail, so the bot does not answer it.
    ("autoreply-precedence-to-bot.eml", Want("command", "addressed to the bot")),
    # --- unusable or odd mail
    ("empty.eml", Want("quarantine", "empty message", msgid="made-up")),
    ("garbage.eml", Want("quarantine", "no header block", msgid="made-up")),
    ("missing-message-id.eml", Want(
        "patch", msgid="made-up", note="no Message-ID header", counter=1, expected=1)),
    # Message-IDs the modern email policy used to mangle ('x$', cut at the fold, an
    # IndexError on '<>'): read raw, as b4 reads them.
    ("folded-message-id-inside.eml", Want(
        "patch", msgid="20260312090000.4242-1-wei.chen@example.com")),
    ("message-id-with-parens.eml", Want("reply", msgid="x$(c7a1)@mail.example.no")),
    ("message-id-empty-brackets.eml", Want("other", "no patch, not a reply", msgid="made-up")),
]


def test_every_corpus_file_has_a_row():
    rows = {c.values[0] if hasattr(c, "values") else c[0] for c in CASES}
    files = {p.name for p in CORPUS.glob("*.eml")}
    assert files - rows == set(), "corpus files without a row in CASES"
    assert rows - files == set(), "rows naming a file not in the corpus"


@pytest.mark.parametrize(("name", "want"), CASES,
                         ids=[(c.values[0] if hasattr(c, "values") else c[0])[:-4]
                              for c in CASES])
def test_classify_corpus(name: str, want: Want):
    want.check(run(name))


# --- the same mails under other settings -----------------------------------

OPTIONS = [
    # (file, classify kwargs, kind, reason substring)
    ("patch-single.eml", dict(max_bytes=200), "quarantine", "over the limit of 200"),
    ("patch-single.eml", dict(max_bytes=10_000), "patch", "[PATCH]"),
    ("command-help.eml", dict(bot_address=""), "other", "no patch, not a reply"),
    ("command-help.eml", dict(bot_address="BPBot@Backports.Example.ORG"), "command", "bot"),
    ("own-mail.eml", dict(bot_address="BPBOT@backports.example.org"), "own", "bot itself"),
    ("own-mail.eml", dict(bot_address="other-bot@example.org"), "reply", "reply"),
    ("xloop.eml", dict(loop_id="BPBOT@BACKPORTS.EXAMPLE.ORG"), "own", "X-Loop"),
    ("xloop.eml", dict(loop_id=""), "reply", "reply"),
    # a patch mailed straight to the bot is still a patch, not a command
    ("patch-single.eml", dict(bot_address="hauke@example.de"), "patch", "[PATCH]"),
]


@pytest.mark.parametrize(("name", "kwargs", "kind", "reason"), OPTIONS)
def test_classify_options(name: str, kwargs: dict, kind: str, reason: str):
    args = dict(bot_address=BOT, loop_id=BOT) | kwargs
    got = classify(corpus(name), **args)
    assert (got.kind, reason in got.reason) == (kind, True), got.reason


@pytest.mark.parametrize(("name", "from_name", "subject"), [
    ("charset-latin1.eml", "J\u00fcrgen M\u00fcller",
     "[PATCH] backport-include: add timer_shutdown() f\u00fcr 6.2"),
    pytest.param("header-raw-utf8.eml", "J\u00fcrgen M\u00fcller",
                 "[PATCH] backport-include: add timer_delete() f\u00fcr 6.15", id="header-raw-utf8"),
], ids=lambda v: v if str(v).endswith(".eml") else "")
def test_decoded_headers(name: str, from_name: str, subject: str):
    got = run(name)
    assert (got.from_name, got.subject) == (from_name, subject)


def test_references_keep_thread_order():
    got = run("v1-and-v2-v2-1of2.eml")
    assert got.references == ("20260304080000.3001-1-maria@example.net",
                              "20260306080000.3377-1-maria@example.net")
    assert got.parent == "20260306080000.3377-1-maria@example.net"


def test_made_up_flag_matches_made_up_ids():
    wrong = {}
    for path in sorted(CORPUS.glob("*.eml")):
        got = classify(path.read_bytes(), BOT, BOT)
        if bool(MADE_UP.match(got.msgid)) != got.msgid_made_up:
            wrong[path.name] = (got.msgid, got.msgid_made_up)
    assert wrong == {}


def test_made_up_msgid_is_stable_and_content_based():
    a, b = run("missing-message-id.eml"), run("missing-message-id.eml")
    assert a.msgid == b.msgid
    other = classify(corpus("missing-message-id.eml") + b"\n", BOT, BOT)
    assert other.msgid != a.msgid


# --- msgid helpers ------------------------------------------------------------

NORMALISE = [
    ("<a@b>", "a@b"),
    (" a@b ", "a@b"),
    ("a@b", "a@b"),
    ("\n <20260301110000.1234-1-jane@example.org>",
     "20260301110000.1234-1-jane@example.org"),
    ("<20260312090000.4242-1-\n wei.chen@example.com>",
     "20260312090000.4242-1-wei.chen@example.com"),
    ("<a@b> (added by the list)", "a@b"),
    ("(comment) <a@b>", "a@b"),
    ("<a@b> <c@d>", "a@b"),
    ("<x$(c7a1)@mail.example.no>", "x$(c7a1)@mail.example.no"),
    ("<a@b", "a@b"),
    ("<>", ""),
    ("", ""),
    (None, ""),
    ("   \n ", ""),
]


@pytest.mark.parametrize(("value", "want"), NORMALISE)
def test_normalise_msgid(value, want):
    assert mail.normalise_msgid(value) == want


MSGID_LISTS = [
    ("<a@b> <c@d>", ["a@b", "c@d"]),
    ("<a@b>\n <c@d>", ["a@b", "c@d"]),
    ("<a@b>\r\n\t<c@d>", ["a@b", "c@d"]),
    ("<a@b>,<c@d>", ["a@b", "c@d"]),
    ("<x$(c7a1)@mail.example.no>", ["x$(c7a1)@mail.example.no"]),
    ("<a@b> <a@b>", ["a@b", "a@b"]),  # duplicates are kept; thread_roots does not mind
    ("a@b c@d", []),  # bare ids without <> are not trusted
    ("<>", []),
    ("", []),
    (None, []),
    pytest.param("<a@b>\n <20260312090000.4242-1-\n wei.chen@example.com>",
                 ["a@b", "20260312090000.4242-1-wei.chen@example.com"]),
]


@pytest.mark.parametrize(("value", "want"), MSGID_LISTS)
def test_msgid_list(value, want):
    assert mail.msgid_list(value) == want


# --- fuzz: no crash, a clear outcome -------------------------------------------

FUZZ = settings(max_examples=100, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow])
CORPUS_FILES = sorted(p.name for p in CORPUS.glob("*.eml"))


def assert_clear(got: Classified) -> None:
    assert got.kind in KINDS
    assert got.msgid and not any(ch.isspace() for ch in got.msgid), got.msgid
    assert isinstance(got.reason, str) and got.reason


@FUZZ
@given(st.binary(max_size=1500))
def test_fuzz_arbitrary_bytes(raw: bytes):
    assert_clear(classify(raw, BOT, BOT, max_bytes=100_000))


HEADER_NAMES = ["Message-ID", "In-Reply-To", "References", "From", "To", "Cc", "Subject",
                "Content-Type", "Content-Transfer-Encoding", "Auto-Submitted", "X-Loop",
                "Return-Path", "Date", "MIME-Version"]
header_value = st.one_of(
    st.binary(max_size=60),
    st.sampled_from([b"<>", b"<a@b", b"<x$(y)@z>", b"=?utf-8?q?=E2=80=AE?=", b"<a@\n b>",
                     b"multipart/mixed; boundary=", b"text/plain; charset=x-unknown",
                     b"base64", b"quoted-printable", b"\"unterminated", b"(", b"<<>>",
                     BOT.encode(), b"mailer-daemon@x", b"multipart/report"]))


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(HEADER_NAMES), header_value), max_size=8),
       st.binary(max_size=300))
def test_fuzz_headers(headers: list[tuple[str, bytes]], body: bytes):
    raw = b"".join(n.encode() + b": " + v + b"\n" for n, v in headers) + b"\n" + body
    assert_clear(classify(raw, BOT, BOT))


@FUZZ
@given(st.sampled_from(CORPUS_FILES), st.data())
def test_fuzz_mutated_corpus(name: str, data: st.DataObject):
    raw = bytearray(corpus(name))
    for _ in range(data.draw(st.integers(1, 6), label="mutations")):
        at = data.draw(st.integers(0, len(raw)), label="at")
        op = data.draw(st.sampled_from(["flip", "insert", "delete", "truncate"]), label="op")
        if op == "flip" and at < len(raw):
            raw[at] = data.draw(st.integers(0, 255), label="byte")
        elif op == "insert":
            raw[at:at] = data.draw(st.sampled_from(
                [b"\n", b"\r", b"\x00", b"<", b">", b":", b"=?", b"\n\n", b"\xff\xfe",
                 "\u202e".encode(), b"--", b"\n--\n"]), label="insert")
        elif op == "delete":
            del raw[at:at + data.draw(st.integers(1, 40), label="len")]
        elif op == "truncate":
            del raw[at:]
    assert_clear(classify(bytes(raw), BOT, BOT))

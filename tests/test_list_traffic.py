"""Real list traffic: every patch found, every series assembled right, nothing
dropped silently. Mails are in tests/data/traffic/ (made by make_mails.py
there), each named for what it shows; the tables say what the bot makes of
them: kind, version, numbers, the patches git am applies and in which order,
the reply text.
"""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
from pathlib import Path

import pytest

from bot import check, state, status
from bot.config import rules as config
from bot.ingest import classify, mail, patchmail, sources, spool, tags
from bot.reply import notices
from bot.series import assembly as series
from bot.series import tracker

DATA = Path(__file__).resolve().parent / "data" / "traffic"
BOT = "bpbot@backports.example.org"
ROOT = "thread-root@test"


@pytest.fixture(scope="module", autouse=True)
def b4_configured():
    series.configure_b4("bpbot", BOT)


def raw(name: str) -> bytes:
    return (DATA / name).read_bytes()


# --- classify: kind, version and numbers ---------------------------------------

KINDS = [
    # (file, kind, revision, counter, expected, reason substring)
    # 1. a diff as git sees one: no @@ hunk needed
    ("diff-rename-only.eml", "patch", 1, 1, 1, "[PATCH]"),
    ("diff-mode-only.eml", "patch", 1, 1, 1, "[PATCH]"),
    ("diff-new-empty-file.eml", "patch", 1, 1, 1, "[PATCH]"),
    ("diff-deleted-empty-file.eml", "patch", 1, 1, 1, "[PATCH]"),
    ("diff-binary-literal.eml", "patch", 1, 1, 1, "[PATCH]"),
    ("diff-binary-no-data.eml", "patch", 1, 1, 1, "[PATCH]"),
    ("diff-corrupt-short-hunk.eml", "patch", 1, 1, 1, "[PATCH]"),
    ("diff-unified-no-git-header.eml", "patch", 1, 1, 1, "[PATCH]"),
    ("not-a-diff-dashes.eml", "other", 1, 0, 0, "no patch"),
    # 2. numbering styles
    ("hg-0of2.eml", "cover", 1, 0, 2, "cover letter"),
    ("hg-1of2.eml", "patch", 1, 1, 2, "[PATCH]"),
    ("hg-2of2.eml", "patch", 1, 2, 2, "[PATCH]"),
    ("netdev-comma-2of2.eml", "patch", 2, 2, 2, "[PATCH]"),
    ("netdev-bare-comma-2of2.eml", "patch", 3, 2, 2, "[PATCH]"),
    ("resend-2of2.eml", "patch", 2, 2, 2, "[PATCH]"),
    ("rfc-2of2.eml", "patch", 3, 2, 2, "[PATCH]"),
    ("version-after-2of2.eml", "patch", 4, 2, 2, "[PATCH]"),
    ("above-m-3of2.eml", "patch", 1, 3, 2, "[PATCH]"),
    ("unnumbered-in-thread-fixup.eml", "patch", 1, 1, 1, "[PATCH]"),
    ("unthreaded-2of3.eml", "patch", 1, 2, 3, "[PATCH]"),
    ("unthreaded-3of3.eml", "patch", 1, 3, 3, "[PATCH]"),
    ("two-v2-separate-a.eml", "patch", 2, 1, 1, "[PATCH]"),
    ("two-v2-separate-b.eml", "patch", 2, 1, 1, "[PATCH]"),
    # 3. pull requests are not patch series
    ("pull-git-pull.eml", "pull-request", 1, 0, 0, "pull request"),
    ("pull-with-diff.eml", "pull-request", 1, 0, 0, "pull request"),
    ("pull-request-pull-text-no-tag.eml", "pull-request", 1, 0, 0, "pull request"),
    ("pull-1of2.eml", "pull-request", 1, 0, 0, "pull request"),
    # 5. bodies
    ("flowed-delsp-patch.eml", "patch", 1, 1, 1, "[PATCH]"),
    ("base64-crlf-patch.eml", "patch", 1, 1, 1, "[PATCH]"),
    ("attach-text-x-diff.eml", "patch", 1, 1, 1, "[PATCH]"),
    ("attach-octet-stream-patch.eml", "patch", 1, 1, 1, "[PATCH]"),
    ("attach-octet-stream-diff.eml", "patch", 1, 1, 1, "[PATCH]"),
    ("forwarded-rfc822-patch.eml", "other", 1, 0, 0, "forwarded message"),
    # 6. headers b4 or git cannot take: quarantined, the reason named
    ("header-date-year-99999.eml", "quarantine", 1, 0, 0, "unreadable Date header"),
    ("header-date-day-32.eml", "quarantine", 1, 0, 0, "day is out of range"),
    ("header-date-hour-25.eml", "quarantine", 1, 0, 0, "hour must be in 0..23"),
    ("series-2of3-date-day-32.eml", "quarantine", 1, 0, 0, "day is out of range"),
    ("thread-2of2-date-day-32.eml", "quarantine", 1, 0, 0, "day is out of range"),
    ("header-overlong-message-id.eml", "quarantine", 1, 0, 0, "1212 characters long"),
    ("header-illegal-characters.eml", "quarantine", 1, 0, 0, "illegal character U+0001"),
    ("header-bad-base64-subject.eml", "quarantine", 1, 0, 0,
     "bad base64 in an encoded word of the Subject header (=?utf-8?b?!!!notbase64?=)"),
    ("header-bad-base64-from.eml", "quarantine", 1, 0, 0,
     "bad base64 in an encoded word of the From header (=?utf-8?b?!!!notbase64?=)"),
    # subject tags: patches as any other unless the rules have strict_tags (below)
    ("tag-qemu-web-patch.eml", "patch", 1, 1, 1, "[PATCH]"),
    ("tag-net-next-0of2.eml", "cover", 1, 0, 2, "cover letter"),
    ("tag-net-next-1of2.eml", "patch", 1, 1, 2, "[PATCH]"),
    ("tag-net-next-2of2.eml", "patch", 1, 2, 2, "[PATCH]"),
    ("tag-known-branch.eml", "patch", 1, 1, 1, "[PATCH]"),
    ("tag-known-branch-rfc-v2.eml", "patch", 2, 1, 1, "[PATCH]"),
    ("tag-glued-version.eml", "patch", 2, 1, 1, "[PATCH]"),
    # stray characters and excess padding that git and b4 both skip: read
    ("header-sloppy-base64-encoded-word.eml", "patch", 1, 1, 1, "[PATCH]"),
]


def test_every_traffic_mail_has_a_row():
    rows = {k[0] for k in KINDS} | {n for g in GROUPS for n in g.values[0]}
    assert {p.name for p in DATA.glob("*.eml")} - rows == set()


@pytest.mark.parametrize(("name", "kind", "revision", "counter", "expected", "reason"), KINDS,
                         ids=[k[0][:-4] for k in KINDS])
def test_kind_and_numbers(name, kind, revision, counter, expected, reason):
    got = classify.classify(raw(name), BOT, BOT)
    assert (got.kind, got.revision, got.counter, got.expected) == \
        (kind, revision, counter, expected), got.reason
    assert reason in got.reason


SUBJECTS = [
    ("[PATCH 2 of 3] foo", "[PATCH 2/3] foo", (1, 2, 3)),
    ("[PATCH v2 0 of 3] foo", "[PATCH v2 0/3] foo", (2, 0, 3)),
    ("[PATCH 1 of 3 V2] foo", "[PATCH v2 1/3] foo", (2, 1, 3)),
    ("[PATCH net,v2,2/3] foo", "[PATCH net v2 2/3] foo", (2, 2, 3)),
    ("[net-next,v3,1/2] foo", "[PATCH net-next v3 1/2] foo", (3, 1, 2)),
    # forms b4 reads as they are stay as they are
    ("[PATCH v2 RESEND 2/3] foo", "[PATCH v2 RESEND 2/3] foo", (2, 2, 3)),
    ("[RFC PATCH v3 2/3] foo", "[RFC PATCH v3 2/3] foo", (3, 2, 3)),
    ("[PATCH 2/3 v4] foo", "[PATCH 2/3 v4] foo", (4, 2, 3)),
    ("[PATCH 6.1 v2 2/3] foo", "[PATCH 6.1 v2 2/3] foo", (2, 2, 3)),
    ("[PATCH] foo", "[PATCH] foo", (1, 1, 1)),
    ("Re: [PATCH 2 of 3] foo", "Re: [PATCH 2/3] foo", (1, 2, 3)),
    ("[GIT PULL] foo", "[GIT PULL] foo", (1, 1, 1)),
    ("no brackets", "no brackets", (1, 1, 1)),
]


@pytest.mark.parametrize(("subject", "canonical", "numbers"), SUBJECTS)
def test_subject_numbering(subject, canonical, numbers):
    n = patchmail.numbering(subject)
    assert (n.revision, n.counter, n.expected) == numbers
    assert patchmail.canonical_subject(subject) == canonical


# --- assembly: versions, patches applied in order, what was left out -----------

@dataclasses.dataclass(frozen=True)
class Want:
    revision: int
    expected: int
    present: tuple[int, ...]
    applied: tuple[str, ...] = ()  # subjects git am applies, in this order
    problem: str = ""              # substring of Version.problem
    notes: tuple[str, ...] = ()    # substrings, one per note, in order
    am_has: tuple[str, ...] = ()   # texts in the am-ready mbox
    am_lacks: tuple[str, ...] = ()  # texts not in it


GROUPS = [
    pytest.param(["diff-rename-only.eml"], [Want(1, 1, (1,), ("compat: rename rename-me.c",))],
                 id="rename-only"),
    pytest.param(["diff-mode-only.eml"], [Want(1, 1, (1,), ("compat: make script.sh",))],
                 id="mode-only"),
    pytest.param(["diff-new-empty-file.eml"], [Want(1, 1, (1,), ("backport-include: add empty",))],
                 id="new-empty-file"),
    pytest.param(["diff-deleted-empty-file.eml"], [Want(1, 1, (1,), ("compat: remove empty",))],
                 id="deleted-empty-file"),
    pytest.param(["diff-binary-literal.eml"], [Want(1, 1, (1,), ("compat: add firmware.bin",))],
                 id="binary-literal"),
    pytest.param(["diff-unified-no-git-header.eml"], [Want(1, 1, (1,), ("compat: add int q",))],
                 id="unified-no-git-header"),
    pytest.param(["diff-binary-no-data.eml"], [Want(1, 1, (1,), problem=(
        "Patch 1/1 (compat: add firmware.bin blob without data): it changes the binary file "
        "compat/firmware.bin without its data"))], id="binary-no-data-untestable"),
    pytest.param(["diff-corrupt-short-hunk.eml"], [Want(1, 1, (1,), problem=(
        "Patch 1/1 (compat: add int c (hand-edited hunk)): corrupt patch: the hunk "
        "'@@ -1,3 +1,5 @@'"))], id="corrupt-hunk-named"),
    pytest.param(["hg-2of2.eml", "hg-0of2.eml", "hg-1of2.eml"], [Want(
        1, 2, (1, 2), ("compat: hg change 1", "compat: hg change 2"))], id="hg-n-of-m"),
    pytest.param(["netdev-comma-2of2.eml", "netdev-comma-1of2.eml"], [Want(
        2, 2, (1, 2), ("compat: netdev 1", "compat: netdev 2"))], id="netdev-comma"),
    pytest.param(["netdev-bare-comma-2of2.eml", "netdev-bare-comma-1of2.eml"], [Want(
        3, 2, (1, 2), ("compat: bare comma 1", "compat: bare comma 2"))], id="netdev-bare-comma"),
    pytest.param(["resend-2of2.eml", "resend-1of2.eml"], [Want(
        2, 2, (1, 2), ("compat: resent 1", "compat: resent 2"))], id="v2-resend"),
    pytest.param(["rfc-2of2.eml", "rfc-1of2.eml"], [Want(
        3, 2, (1, 2), ("compat: rfc 1", "compat: rfc 2"))], id="rfc-v3"),
    pytest.param(["version-after-2of2.eml", "version-after-1of2.eml"], [Want(
        4, 2, (1, 2), ("compat: version after 1", "compat: version after 2"))],
        id="version-after-numbers"),
    pytest.param(["dup-2of3-newer-copy.eml", "dup-3of3.eml", "dup-2of3.eml", "dup-1of3.eml"],
                 [Want(1, 3, (1, 2, 3), ("compat: dup 1", "compat: dup 2", "compat: dup 3"),
                       am_has=("+int d2_again;", "compat: dup 2 (second copy)"),
                       am_lacks=("+int d2;",),
                       notes=("patch 2 was sent 2 times: the newest copy "
                              "(<20260323080000.40-2-again-jane@example.org>) is used",))],
                 id="same-n-of-m-twice-newest-once"),
    pytest.param(["above-m-1of2.eml", "above-m-3of2.eml", "above-m-2of2.eml"], [Want(
        1, 2, (1, 2), ("compat: above 1", "compat: above 2"),
        notes=("patch 3/2 (compat: above 3, <20260324080000.50-3-jane@example.org>) is "
               "numbered above the series' 2 patches: not applied",))], id="3-of-2-not-applied"),
    pytest.param(["unnumbered-in-thread-1of2.eml", "unnumbered-in-thread-fixup.eml",
                  "unnumbered-in-thread-2of2.eml"], [Want(
                      1, 2, (1, 2), ("compat: numbered 1", "compat: numbered 2"),
                      notes=("unnumbered patch (compat: fixup for numbered 2",))],
                 id="unnumbered-not-taken-for-1"),
    pytest.param(["flowed-delsp-patch.eml"], [Want(1, 1, (1,), ("compat: a flowed patch",))],
                 id="format-flowed-delsp"),
    pytest.param(["base64-crlf-patch.eml"], [Want(1, 1, (1,), ("compat: base64 with CRLF",))],
                 id="base64-crlf"),
    pytest.param(["attach-text-x-diff.eml"], [Want(1, 1, (1,), ("compat: attached attach-text",))],
                 id="attachment-text-x-diff"),
    pytest.param(["attach-octet-stream-patch.eml"], [Want(
        1, 1, (1,), ("compat: attached attach-octet-stream-patch",))],
        id="attachment-octet-stream-patch"),
    pytest.param(["attach-octet-stream-diff.eml"], [Want(
        1, 1, (1,), ("compat: attached attach-octet-stream-diff",))],
        id="attachment-octet-stream-diff"),
    pytest.param(["forwarded-rfc822-patch.eml"], [], id="forwarded-not-the-forwarders"),
    pytest.param(["header-sloppy-base64-encoded-word.eml"], [Want(1, 1, (1,), ("compat: bad",))],
                 id="sloppy-base64-encoded-word"),
    # b4 raises on these Dates: the patch is left out, and the version says why
    pytest.param(["unthreaded-1of3.eml", "series-2of3-date-day-32.eml"], [Want(
        1, 3, (1,), problem="b4 cannot read the message <20260329080000.95-7-jane@example.org>")],
        id="b4-unreadable-date-named"),
]

BASE = "/* compat */\nint a;\nint b;\n"


def git(repo: Path, *args: str, data: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(repo), *args], input=data, capture_output=True,
                          timeout=120, check=False)


def applied(tmp_path: Path, am: bytes) -> list[str]:
    """Subjects of the commits `git am` makes from ``am`` on a tree holding the
    files the patches change; fails the test when git refuses."""
    repo = tmp_path / "tree"
    repo.mkdir()
    git(repo, "init", "-q")
    text = am.decode("utf-8", "replace")
    files = {"compat/rename-me.c": "".join(f"line{i}\n" for i in range(1, 9)),
             "compat/script.sh": "x\n", "compat/empty-old.h": ""}
    files |= {p: BASE for p in re.findall(r"^--- a/(\S+)", text, re.M)}
    for path, content in files.items():
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_text(content)
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "base")
    result = git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "am", data=am)
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
    log = git(repo, "log", "--reverse", "--format=%s", "HEAD~" + str(text.count("\nFrom: ")) +
              "..HEAD").stdout.decode()
    return log.splitlines()


@pytest.mark.parametrize(("names", "want"), GROUPS)
def test_assembly(tmp_path: Path, names: list[str], want: list[Want]):
    got = series.assemble_thread([raw(n) for n in names], ROOT)
    assert [(v.revision, v.expected, tuple(v.present)) for v in got] == \
        [(w.revision, w.expected, w.present) for w in want]
    for version, expected in zip(got, want, strict=True):
        assert len(version.notes) == len(expected.notes), version.notes
        for note, text in zip(version.notes, expected.notes, strict=True):
            assert text in note
        if expected.problem:
            assert expected.problem in version.problem
            assert version.am_mbox is None
            continue
        assert version.problem == ""
        am = version.am_mbox.decode()
        assert [t for t in expected.am_has if t not in am] == []
        assert [t for t in expected.am_lacks if t in am] == []
        subjects = applied(tmp_path, version.am_mbox)
        assert len(subjects) == len(expected.applied), subjects
        for subject, start in zip(subjects, expected.applied, strict=True):
            assert subject.startswith(start), subjects


def test_flowed_patch_is_unflowed_as_git_does():
    text = mail.unflow("a \nb\n  c\n-- \nsig", delsp=True)
    assert text == "ab\n c\n-- \nsig"
    assert mail.unflow("a \nb", delsp=False) == "a b"


# --- the tracker: threads without References, separate series, replies ---------

@pytest.fixture()
def bot(tmp_path: Path):
    rules = dataclasses.replace(config.load(config.DEMO_RULES, base_dir=tmp_path), grace_seconds=0)
    st = state.State(tmp_path / "state.sqlite")

    def feed(names: list[str]) -> None:
        spool.spool(st, "test", [raw(n) for n in names], bot_address=BOT, loop_id=BOT)
        tracker.assemble(st, rules)
    return rules, st, feed


def versions(st: state.State) -> list[tuple]:
    return [(r["key"], r["revision"], r["present"], r["state"]) for r in st.query(
        "SELECT s.key, v.revision, v.present, v.state FROM versions v JOIN series s"
        " ON s.id = v.series_id ORDER BY v.id")]


def test_unthreaded_patches_arriving_out_of_order_are_one_series(bot):
    rules, st, feed = bot
    feed(["unthreaded-3of3.eml"])
    feed(["unthreaded-1of3.eml"])
    feed(["unthreaded-2of3.eml"])
    # 3/3 alone was keyed by its own subject; with patch 1 there it is the same series
    superseded, version = st.query("SELECT * FROM versions ORDER BY id")
    assert (superseded["state"], superseded["present"]) == ("superseded", "[3]")
    notices.expire(st, rules, at=9e12)
    assert st.query("SELECT * FROM outbox") == []
    assert (version["present"], version["state"]) == ("[1, 2, 3]", "ready")
    mbox, problem = tracker.am_ready(st, version)
    assert problem == ""
    subjects = re.findall(rb"^Subject: \[PATCH (\d)/3\]", mbox, re.M)
    assert subjects == [b"1", b"2", b"3"]


def test_two_separate_v2_mails_are_two_series(bot):
    rules, st, feed = bot
    feed(["two-v2-separate-a.eml"])
    feed(["two-v2-separate-b.eml"])
    got = versions(st)
    assert len(got) == 2 and {v[3] for v in got} == {"ready"}
    assert got[0][0] != got[1][0]


def test_a_resend_of_the_same_patch_stays_one_series(bot):
    rules, st, feed = bot
    feed(["two-v2-separate-a.eml"])
    resent = raw("two-v2-separate-a.eml").replace(b"70-a-jane", b"70-a-resent-jane")
    spool.spool(st, "test", [resent], bot_address=BOT, loop_id=BOT)
    tracker.assemble(st, rules)
    assert len(versions(st)) == 1


def test_incomplete_reply_lists_what_is_missing(bot):
    rules, st, feed = bot
    feed(["unthreaded-3of3.eml"])
    notices.expire(st, rules, at=9e12)
    (reply,) = st.query("SELECT raw FROM outbox")
    body = mail.parse_bytes(bytes(reply["raw"])).get_content()
    assert "missing 1, 2 of 3; got 3." in " ".join(body.split())
    assert "got 3 of 3" not in body
    assert "bpbot tested" not in body


def test_duplicate_is_named_in_the_reply(bot):
    rules, st, feed = bot
    feed(["dup-1of3.eml", "dup-2of3.eml", "dup-2of3-newer-copy.eml"])
    (version,) = st.query("SELECT * FROM versions")
    target = notices.target_for(st, version)
    assert len(target.notes) == 1 and "was sent 2 times" in target.notes[0]
    notices.expire(st, rules, at=9e12)
    (reply,) = st.query("SELECT raw FROM outbox")
    body = " ".join(mail.parse_bytes(bytes(reply["raw"])).get_content().split())
    assert "Note: Patch 2 was sent 2 times: the newest copy" in body
    assert "missing 3 of 3; got 1, 2." in body


def test_quarantined_patch_is_named_in_the_incomplete_reply(bot):
    rules, st, feed = bot
    feed(["above-m-1of2.eml", "thread-2of2-date-day-32.eml"])
    notices.expire(st, rules, at=9e12)
    (reply,) = st.query("SELECT raw FROM outbox")
    body = " ".join(mail.parse_bytes(bytes(reply["raw"])).get_content().split())
    assert "missing 2 of 2; got 1." in body
    assert ("Note: A mail of this thread was quarantined and not used: [PATCH 2/2] compat: "
            "above 2 <20260329080000.95-8-jane@example.org>: unreadable Date header") in body


def test_corrupt_patch_is_answered_naming_the_patch(bot):
    rules, st, feed = bot
    feed(["diff-corrupt-short-hunk.eml"])
    (version,) = st.query("SELECT state, state_reason FROM versions")
    assert version["state"] == "untestable"
    notices.expire(st, rules)
    (reply,) = st.query("SELECT raw FROM outbox")
    body = " ".join(mail.parse_bytes(bytes(reply["raw"])).get_content().split())
    assert "Patch 1/1 (compat: add int c (hand-edited hunk)): corrupt patch" in body


def test_pull_request_is_recorded_and_not_answered(bot):
    rules, st, feed = bot
    feed(["pull-git-pull.eml", "pull-with-diff.eml", "pull-1of2.eml"])
    kinds = {r["kind"] for r in st.query("SELECT kind FROM messages")}
    assert kinds == {"pull-request"}
    notices.expire(st, rules, at=9e12)
    assert st.query("SELECT * FROM versions") == [] and st.query("SELECT * FROM outbox") == []


def test_pull_requests_answered_with_one_line_when_the_rules_say_so(bot):
    rules, st, feed = bot
    rules = dataclasses.replace(rules, answer_pull_requests=True)
    feed(["pull-git-pull.eml", "pull-1of2.eml"])
    notices.expire(st, rules)
    notices.expire(st, rules)  # a second pass answers nothing twice
    replies = st.query("SELECT kind, raw FROM outbox ORDER BY id")
    assert [r["kind"] for r in replies] == ["pull-request", "pull-request"]
    body = mail.parse_bytes(bytes(replies[0]["raw"])).get_content()
    assert "does not test pull requests" in body
    assert st.query("SELECT * FROM versions") == []


# --- mbox reading as git mailsplit does ----------------------------------------

MBOXES = [
    # (file, mails, a text the first mail holds)
    ("mbox-18-mails-leading-blank-lines.mbox", 18, b"Subject: [PATCH 1/18]"),
    ("mboxrd-escaped-from.mbox", 2, b"\n>From the caller's side\n>>From quoted twice\n"),
    ("hg-1of2.eml", 1, b"From: Jane Doe"),
]


@pytest.mark.parametrize(("name", "count", "text"), MBOXES)
def test_mbox_split_like_git_mailsplit(name, count, text):
    mails = sources.read_mbox(raw(name))
    assert len(mails) == count
    assert text in mails[0]
    assert check.read_mail(DATA / name) == mails


def test_check_spools_every_mail_of_an_mbox(tmp_path: Path):
    mails = check.read_mail(DATA / "mbox-18-mails-leading-blank-lines.mbox")
    st = state.State(tmp_path / "state.sqlite")
    result = spool.spool(st, "check", mails, bot_address=BOT, loop_id=BOT)
    assert (result.new, result.quarantined) == (18, 0)
    body5 = mail.text_body(mail.parse_fast(mails[4]))[0]
    assert "From the driver's point of view" in body5


def test_mbox_source_spools_every_mail(tmp_path: Path):
    rules = config.load(config.DEMO_RULES, base_dir=tmp_path)
    rules = dataclasses.replace(rules, source=config.Source(
        kind="mbox", path=DATA / "mbox-18-mails-leading-blank-lines.mbox"))
    st = state.State(tmp_path / "state.sqlite")
    assert sources.LocalSource(rules, st).poll() == 18
    assert {r["kind"] for r in st.query("SELECT kind FROM messages")} == {"patch"}


# --- quarantined mail is listed with its reason: status, page, check --json -----

BAD = ["header-bad-base64-subject.eml", "header-bad-base64-from.eml", "header-date-day-32.eml"]


def test_quarantined_mail_is_listed_with_its_reason(bot):
    rules, st, feed = bot
    feed([*BAD, "diff-rename-only.eml"])
    got = status.quarantined(st)
    assert [q["msgid"] for q in got] == ["20260329080000.95-2-jane@example.org",
                                         "20260329080000.95-10-jane@example.org",
                                         "20260329080000.95-9-jane@example.org"]
    by_id = {q["msgid"]: q for q in got}
    assert by_id["20260329080000.95-9-jane@example.org"]["reason"].startswith(
        "bad base64 in an encoded word of the Subject header")
    assert by_id["20260329080000.95-10-jane@example.org"]["subject"] == \
        "[PATCH] compat: bad base64 in From"
    assert all(q["received_at"] > 0 for q in got)
    text = status.render_table(st)
    assert "quarantined (3, newest first):" in text
    assert "<20260329080000.95-10-jane@example.org> [PATCH] compat: bad base64 in From" in text
    assert "bad base64 in an encoded word of the From header" in text
    data = json.loads(status.render_json(st))
    assert [q["msgid"] for q in data["quarantined"]] == [q["msgid"] for q in got]


def test_status_page_lists_quarantined_mail(bot):
    from bot.web import page
    rules, st, feed = bot
    feed(BAD)
    app = page.StatusApp(rules, st)
    html = app.handle("/").body.decode()
    assert 'id="quarantine"' in html and "bad base64 in an encoded word" in html
    api = json.loads(app.handle("/api/quarantine").body)
    assert len(api["quarantined"]) == 3 and "day is out of range" in api["quarantined"][0]["reason"]


def test_check_json_lists_quarantined_mail(tmp_path: Path, capsys):
    from bot import cli
    box = tmp_path / "in.mbox"
    box.write_bytes(b"".join(b"From x Thu Jan  1 00:00:00 2026\n" + raw(n) + b"\n" for n in BAD))
    assert cli.main(["check", "--json", str(box)]) == check.NOT_TESTED_EXIT
    data = json.loads(capsys.readouterr().out)
    assert len(data["quarantined"]) == 3
    assert {q["msgid"]: q["reason"].split(" (")[0] for q in data["quarantined"]}[
        "20260329080000.95-9-jane@example.org"] == \
        "bad base64 in an encoded word of the Subject header"
    kinds = {m["msgid"]: m["kind"] for m in data["messages"]}
    assert set(kinds.values()) == {"quarantine"}


# --- [tree] strict_tags: a patch tagged for another tree is not tested ---------

STRICT = [
    # (file, kind with strict_tags = true, the tag named in the reason)
    ("tag-qemu-web-patch.eml", "not-for-tree", "[qemu-web]"),
    ("tag-net-next-0of2.eml", "not-for-tree", "[net-next]"),
    ("tag-net-next-1of2.eml", "not-for-tree", "[net-next]"),
    ("netdev-comma-1of2.eml", "not-for-tree", "[net]"),
    ("tag-known-branch.eml", "patch", ""),
    ("tag-known-branch-rfc-v2.eml", "patch", ""),   # RFC says how it is sent; MAIN is main
    ("tag-glued-version.eml", "patch", ""),         # [PATCHv2] is v2, not a tag
    ("resend-1of2.eml", "patch", ""),               # RESEND is no tree
    ("diff-rename-only.eml", "patch", ""),          # no tag: the default branch
    ("pull-git-pull.eml", "pull-request", ""),
]


@pytest.fixture()
def strict(bot):
    rules, st, _ = bot
    rules = dataclasses.replace(rules, strict_tags=True)

    def feed(names: list[str]) -> None:
        spool.spool(st, "test", [raw(n) for n in names], bot_address=BOT, loop_id=BOT,
                    tree_tags=tags.allowed_tags(rules))
        tracker.assemble(st, rules)
    return rules, st, feed


@pytest.mark.parametrize(("name", "kind", "tag"), STRICT, ids=[s[0][:-4] for s in STRICT])
def test_strict_tags_kind(strict, name, kind, tag):
    rules, st, feed = strict
    feed([name])
    (row,) = st.query("SELECT kind, reason FROM messages")
    assert row["kind"] == kind, row["reason"]
    if kind == "not-for-tree":
        assert f"subject tag {tag} is not one of this tree's (tree.tag_branches: main;" \
            in row["reason"]
        assert st.query("SELECT * FROM versions") == []
    elif kind == "patch":
        assert len(st.query("SELECT state FROM versions")) == 1  # taken into a series


def test_strict_tags_series_is_not_tested_nor_answered(strict):
    rules, st, feed = strict
    feed(["tag-net-next-0of2.eml", "tag-net-next-1of2.eml", "tag-net-next-2of2.eml",
          "tag-qemu-web-patch.eml"])
    assert {r["kind"] for r in st.query("SELECT kind FROM messages")} == {"not-for-tree"}
    notices.expire(st, rules, at=9e12)
    assert st.query("SELECT * FROM versions") == [] and st.query("SELECT * FROM outbox") == []


def test_without_strict_tags_a_foreign_tag_is_tested_as_before(bot):
    rules, st, feed = bot
    assert rules.strict_tags is False and tags.allowed_tags(rules) is None
    feed(["tag-net-next-0of2.eml", "tag-net-next-1of2.eml", "tag-net-next-2of2.eml",
          "tag-qemu-web-patch.eml"])
    assert sorted(v[3] for v in versions(st)) == ["ready", "ready"]


def test_strict_tags_read_from_the_rules(tmp_path: Path):
    text = config.DEMO_RULES.read_text().replace("strict_tags = false", "strict_tags = true")
    (tmp_path / "rules.toml").write_text(text)
    rules = config.load(tmp_path / "rules.toml")
    assert rules.strict_tags is True and tags.allowed_tags(rules) == frozenset({"main"})
    (tmp_path / "bad.toml").write_text(text.replace("strict_tags = true", 'strict_tags = "yes"'))
    with pytest.raises(config.ConfigError, match="strict_tags"):
        config.load(tmp_path / "bad.toml")


def test_check_json_says_a_mail_is_not_for_this_tree(tmp_path: Path, capsys):
    from bot import cli
    text = config.DEMO_RULES.read_text().replace("strict_tags = false", "strict_tags = true")
    (tmp_path / "rules.toml").write_text(text)
    assert cli.main(["check", "--json", "--no-cache", "--rules", str(tmp_path / "rules.toml"),
                     str(DATA / "tag-qemu-web-patch.eml")]) == check.NOT_TESTED_EXIT
    (msg,) = json.loads(capsys.readouterr().out)["messages"]
    assert msg["kind"] == "not-for-tree" and "[qemu-web]" in msg["reason"]

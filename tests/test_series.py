"""Series assembly with b4 over groups of corpus mails, and thread splitting.

Each row of GROUPS names corpus files (in the order they arrive) and the
versions assemble_thread() must find in them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from bot import state
from bot.config import rules as config
from bot.ingest import spool
from bot.ingest.classify import classify
from bot.series import assembly as series
from bot.series import tracker

CORPUS = Path(__file__).resolve().parent / "data" / "corpus"
BOT = "bpbot@backports.example.org"
ROOT = "thread-root@test"

PS = "20260301110000.1234-1-jane@example.org"
COVER = "20260302090000.4711-1-wei.chen@example.com"
# Versions are linked by the author and patch 1's subject (a v2 may add a cover letter).
COVER_KEY = "wei.chen@example.com|compat: add ktime_get_boottime_ns() for kernels < 5.3"
NC1 = "20260303140000.2222-1-jane@example.org"
CO1 = "20260315090000.8080-1-ola@example.no"
NC_KEY = "jane@example.org|backport-include: add list_count_nodes()"
WIPHY_KEY = "maria@example.net|backport-include: add wiphy_work_init() and wiphy_work_queue()"
SAM_RB = "Reviewed-by: Sam Reviewer <sam@example.com>"
BIDI = "bidirectional control characters"


@pytest.fixture(scope="module", autouse=True)
def b4_configured():
    series.configure_b4("bpbot", BOT)


def raws(names: list[str]) -> list[bytes]:
    return [(CORPUS / n).read_bytes() for n in names]


def assemble(names: list[str]) -> list[series.Version]:
    return series.assemble_thread(raws(names), ROOT)


def bug(reason: str):
    return pytest.mark.xfail(reason=f"bug: {reason}", strict=True)


@dataclass(frozen=True)
class V:
    """One expected version; am_* are checked against the am-ready mbox."""

    revision: int
    expected: int
    present: tuple[int, ...]
    complete: bool
    has_cover: bool
    reply_to: str
    trailers: int = 0
    key: str | None = None
    base_commit: str = ""
    problem: str = ""  # substring; "" means no problem
    am_count: tuple[tuple[str, int], ...] = ()  # (text, times it appears)
    am_order: tuple[str, ...] = ()  # texts that appear in this order

    def check(self, got: series.Version) -> None:
        want_missing = [n for n in range(1, self.expected + 1) if n not in self.present]
        assert (got.revision, got.expected, got.present, got.missing, got.complete,
                got.has_cover, got.reply_to, got.trailers, got.base_commit) == \
            (self.revision, self.expected, list(self.present), want_missing, self.complete,
             self.has_cover, self.reply_to, self.trailers, self.base_commit)
        if self.key is not None:
            assert got.key == self.key
        if self.problem:
            assert self.problem in got.problem
            assert got.am_mbox is None
        else:
            assert got.problem == ""
        if not self.complete:
            assert got.am_mbox is None
        if self.complete and not self.problem:
            assert isinstance(got.am_mbox, bytes)
            am = got.am_mbox.decode()
            for text, times in self.am_count:
                assert am.count(text) == times, text
            at = [am.find(text) for text in self.am_order]
            assert -1 not in at and at == sorted(at), self.am_order


def single(msgid: str, trailers: int = 0, **kw) -> V:
    return V(1, 1, (1,), True, False, msgid, trailers, **kw)


OOO = ["out-of-order-3of3.eml", "out-of-order-1of3.eml", "out-of-order-reply-to-2of3.eml",
       "out-of-order-0of3.eml", "out-of-order-2of3.eml"]
V1V2 = [f"v1-and-v2-v{r}-{n}of2.eml" for r in (1, 2) for n in range(3)]
COVER_SERIES = [f"series-cover-{n}of2.eml" for n in range(3)]
NOCOVER = ["series-nocover-1of2.eml", "series-nocover-2of2.eml"]

GROUPS = [
    pytest.param(["patch-single.eml"], [single(
        PS, key="jane@example.org|backport-include: add timer_shutdown_sync()",
        am_count=(("Subject: [PATCH] backport-include: add timer_shutdown_sync()", 1),
                  ("Message-Id: <20260301110000.1234-1-jane@example.org>", 1)))],
        id="single-patch"),
    pytest.param(COVER_SERIES, [V(
        1, 2, (1, 2), True, True, COVER, key=COVER_KEY,
        base_commit="3f1c2a9b8e7d6c5b4a39281706f5e4d3c2b1a098",
        am_count=(("From git@z", 2), ("[PATCH 0/2]", 0)),
        am_order=("Subject: [PATCH 1/2]", "Subject: [PATCH 2/2]"))],
        id="cover-letter"),
    pytest.param(NOCOVER, [V(
        1, 2, (1, 2), True, False, NC1, key=NC_KEY,
        am_order=("Subject: [PATCH 1/2]", "Subject: [PATCH 2/2]"))], id="no-cover"),
    pytest.param(OOO, [V(
        1, 3, (1, 2, 3), True, True, "20260307070000.909-1-ola@example.no", trailers=1,
        key="ola@example.no|compat: include linux/overflow.h in backport-5.4.c", am_count=((SAM_RB, 1),),
        am_order=("Subject: [PATCH 1/3]", "Subject: [PATCH 2/3]", SAM_RB,
                  "Subject: [PATCH 3/3]"))], id="out-of-order"),
    pytest.param(["partial-3of3.eml", "partial-1of3.eml"], [V(
        1, 3, (1, 3), False, False, "20260308120000.777-1-priya@example.in")],
        id="partial-2-of-3"),
    pytest.param(V1V2, [
        V(1, 2, (1, 2), True, True, "20260304080000.3001-1-maria@example.net", key=WIPHY_KEY,
          am_count=(("LINUX_VERSION_IS_LESS(6,5,0)", 1), ("LINUX_VERSION_IS_LESS(6,6,0)", 0))),
        V(2, 2, (1, 2), True, True, "20260306080000.3377-1-maria@example.net", key=WIPHY_KEY,
          am_count=(("LINUX_VERSION_IS_LESS(6,6,0)", 1), ("LINUX_VERSION_IS_LESS(6,5,0)", 0),
                    ("[PATCH v2 1/2]", 1))),
    ], id="v1-and-v2-one-thread"),
    pytest.param(["trailer-carry-over-v1.eml", "trailer-carry-over-v1-reply.eml",
                  "trailer-carry-over-v2.eml"], [
        single(CO1, 1, am_count=((SAM_RB, 1),)),
        V(2, 1, (1,), True, False, "20260316090000.8181-1-ola@example.no", 1,
          am_count=((SAM_RB, 1),))], id="trailer-carried-to-unchanged-v2"),
    pytest.param(["patch-single.eml", "reply-reviewed-by.eml"], [single(
        PS, 1, am_count=((SAM_RB, 1),),
        am_order=("Signed-off-by: Jane Doe", SAM_RB, "---\n"))], id="reply-reviewed-by"),
    pytest.param(["reply-reviewed-by.eml", "patch-single.eml"], [single(
        PS, 1, am_count=((SAM_RB, 1),))], id="reply-before-patch"),
    pytest.param(["patch-single.eml", "reply-quoted-trailer.eml"], [single(
        PS, 0, am_count=(("Reviewed-by", 0), ("Someone Else", 0)))], id="quoted-trailer"),
    pytest.param(["patch-single.eml", "folded-message-id.eml"], [single(
        PS, 1, am_count=(("Tested-by: Sam Reviewer <sam@example.com>", 1),))],
        id="reply-with-folded-ids"),
    pytest.param(["patch-single.eml", "reply-reviewed-by.eml", "reply-quoted-trailer.eml",
                  "folded-message-id.eml"], [single(
                      PS, 2, am_count=((SAM_RB, 1), ("Tested-by: Sam", 1),
                                       ("Someone Else", 0)))], id="three-replies"),
    pytest.param([*COVER_SERIES, "reply-acked-by-cover.eml"], [V(
        1, 2, (1, 2), True, True, COVER, 1, key=COVER_KEY,
        base_commit="3f1c2a9b8e7d6c5b4a39281706f5e4d3c2b1a098",
        am_count=(("Acked-by: Hauke Example <hauke@example.de>", 2),))],
        id="ack-on-cover-goes-to-every-patch"),
    pytest.param(["body-base64.eml"], [single(
        "20260310080000.1500-1-jane@example.org",
        am_count=(("/* \u00fcber-simple */", 1),))], id="base64"),
    pytest.param(["body-quoted-printable.eml"], [single(
        "20260310090000.1600-1-ola@example.no",
        am_count=(("(w) == NL80211_CHAN_WIDTH_20 ? 20 : (w) == NL80211", 1), ("=3D", 0),
                  ("caf\u00e9", 1)))], id="quoted-printable"),
    pytest.param(["charset-latin1.eml"], [single(
        "20260311070000.1700-1-juergen@example.de",
        key="juergen@example.de|backport-include: add timer_shutdown() f\u00fcr 6.2",
        am_count=(("Signed-off-by: J\u00fcrgen M\u00fcller", 1), ("/* f\u00fcr 6.2 */", 1)))],
        id="latin1"),
    pytest.param(["header-raw-utf8.eml"], [single(
        "20260311090000.1900-1-juergen@example.de",
        key="juergen@example.de|backport-include: add timer_delete() f\u00fcr 6.15",
        am_count=(("From: J\u00fcrgen M\u00fcller <juergen@example.de>", 1),))],
        id="raw-utf8-headers"),
    pytest.param(["charset-unknown.eml"], [single("20260311080000.1800-1-jane@example.org")],
                 id="unknown-charset"),
    pytest.param(["nul-bytes.eml"], [single("20260312100000.9999-1-jane@example.org")],
                 id="nul-bytes"),
    pytest.param(["patch-diff-no-tag.eml"], [single(
        "20260314080000.31337-1-wei.chen@example.com",
        key="wei.chen@example.com|compat: fix build of backport-4.19.c on 32-bit")],
        id="diff-without-patch-tag"),
    pytest.param(["patch-attachment.eml"], [single(
        "d1e2f3a4-attach-xpatch@example.com", am_count=(("+MWIFIEX 4.19", 1),))],
        id="attachment-x-patch"),
    pytest.param(["patch-attachment-text-plain.eml"], [single(
        "d1e2f3a4-attach-plain@example.com", am_count=(("+MWIFIEX 4.19", 1),))],
        id="attachment-text-plain"),
    # b4 exits (SystemExit) on U+202E; the bot turns it into a problem, not a crash.
    pytest.param(["bidi-in-patch.eml"], [single(
        "20260313090000.6666-1-mallory@example.com", problem=BIDI)], id="bidi-problem"),
    pytest.param(["series-cover-0of2.eml", "series-cover-1of2.eml", "bidi-in-series-2of2.eml"],
                 [V(1, 2, (1, 2), True, True, COVER, key=COVER_KEY, problem=BIDI,
                    base_commit="3f1c2a9b8e7d6c5b4a39281706f5e4d3c2b1a098")],
                 id="bidi-in-series-keeps-cover"),
    pytest.param([*V1V2[:5], "bidi-in-v2-2of2.eml"], [
        V(1, 2, (1, 2), True, True, "20260304080000.3001-1-maria@example.net", key=WIPHY_KEY),
        V(2, 2, (1, 2), True, True, "20260306080000.3377-1-maria@example.net", key=WIPHY_KEY,
          problem=BIDI)], id="bidi-in-v2-keeps-cover"),
    pytest.param(["folded-message-id-inside.eml"], [single(
        "20260312090000.4242-1-wei.chen@example.com")], id="msgid-folded-inside"),
]


@pytest.mark.parametrize(("names", "want"), GROUPS)
def test_assemble_thread(names: list[str], want: list[V]):
    got = assemble(names)
    assert [v.revision for v in got] == [w.revision for w in want]
    for version, expected in zip(got, want, strict=True):
        expected.check(version)
        assert version.thread_root == ROOT


def test_v1_and_v2_are_one_series():
    v1, v2 = assemble(V1V2)
    assert v1.key == v2.key == WIPHY_KEY
    assert v1.fingerprint != v2.fingerprint


def summary(versions: list[series.Version]) -> list[tuple]:
    return [(v.key, v.revision, v.present, v.complete, v.has_cover, v.reply_to, v.trailers,
             v.fingerprint) for v in versions]


@pytest.mark.parametrize("names", [V1V2, OOO, [*COVER_SERIES, "reply-acked-by-cover.eml"]],
                         ids=["v1-and-v2", "out-of-order", "ack-on-cover"])
def test_without_am_mbox_the_versions_are_the_same(names: list[str]):
    lean = series.assemble_thread(raws(names), ROOT, with_am=False)
    assert summary(lean) == summary(assemble(names))
    assert [v.am_mbox for v in lean] == [None] * len(lean)


@pytest.mark.parametrize("revision", [1, 2])
def test_only_revision(revision: int):
    full = {v.revision: v for v in assemble(V1V2)}
    (got,) = series.assemble_thread(raws(V1V2), ROOT, only_revision=revision)
    assert summary([got]) == summary([full[revision]])
    assert got.am_mbox == full[revision].am_mbox


def test_bidi_is_found_when_the_am_mbox_is_made():
    names = ["series-cover-0of2.eml", "series-cover-1of2.eml", "bidi-in-series-2of2.eml"]
    (lean,) = series.assemble_thread(raws(names), ROOT, with_am=False)
    assert (lean.complete, lean.problem, lean.am_mbox) == (True, "", None)
    (full,) = series.assemble_thread(raws(names), ROOT, only_revision=1)
    assert BIDI in full.problem and full.am_mbox is None and full.has_cover


def test_v2_adding_a_cover_letter_is_the_same_series():
    v1, v2 = assemble([*NOCOVER, "v2-adds-cover-0of2.eml", "v2-adds-cover-1of2.eml",
                       "v2-adds-cover-2of2.eml"])
    assert (v1.revision, v2.revision, v2.has_cover) == (1, 2, True)
    assert v1.key == v2.key


@pytest.mark.parametrize("order", [
    OOO, sorted(OOO), sorted(OOO, reverse=True),
    ["out-of-order-reply-to-2of3.eml", *sorted(OOO)[:-1]],
], ids=["arrival", "sorted", "reversed", "reply-first"])
def test_arrival_order_does_not_matter(order: list[str]):
    reference = assemble(sorted(OOO))[0]
    got = assemble(order)[0]
    assert (got.present, got.trailers, got.am_mbox, got.fingerprint) == \
        (reference.present, reference.trailers, reference.am_mbox, reference.fingerprint)


@pytest.mark.parametrize("names", [
    ["patch-single.eml", "reply-reviewed-by.eml", "folded-message-id.eml"],
    [*COVER_SERIES, "reply-acked-by-cover.eml"],
    OOO,
], ids=["replies-to-patch", "ack-on-cover", "out-of-order"])
def test_second_call_gives_the_same_trailers(names: list[str]):
    data = raws(names)
    first = series.assemble_thread(data, ROOT)
    second = series.assemble_thread(data, ROOT)
    assert [(v.trailers, v.am_mbox) for v in first] == [(v.trailers, v.am_mbox) for v in second]
    assert all(v.trailers for v in first)


MISSING_KEY = "priya@example.in|compat: add missing include in backport-6.1.c"


@pytest.mark.parametrize("with_spool_id", [False, True], ids=["bytes", "msgid-and-bytes"])
def test_missing_message_id_gets_the_spooled_id(with_spool_id: bool):
    raw = (CORPUS / "missing-message-id.eml").read_bytes()
    made_up = classify(raw, BOT, BOT).msgid
    (version,) = series.assemble_thread([(made_up, raw) if with_spool_id else raw], ROOT)
    assert (version.msgids, version.reply_to, version.key) == ([made_up], made_up, MISSING_KEY)
    assert version.complete and version.am_mbox and not version.problem


def test_missing_message_id_does_not_stop_assembly(tmp_path: Path):
    rules = config.load(config.DEMO_RULES, base_dir=tmp_path)
    st = state.State(tmp_path / "state.sqlite")
    spool.spool(st, "test", raws(["missing-message-id.eml", "patch-single.eml"]),
                bot_address=BOT, loop_id=BOT)
    tracker.assemble(st, rules)
    spool.spool(st, "test", raws(NOCOVER), bot_address=BOT, loop_id=BOT)
    tracker.assemble(st, rules)
    keys = {r["key"] for r in st.query("SELECT key FROM series")}
    assert {MISSING_KEY, NC_KEY, "jane@example.org|backport-include: add timer_shutdown_sync()"} \
        <= keys
    assert st.query("SELECT msgid FROM messages WHERE assembled = 0") == []


# --- thread_roots -------------------------------------------------------------

def links(names: list[str]) -> dict[str, tuple[str, str, list[str]]]:
    out = {}
    for name in names:
        c = classify((CORPUS / name).read_bytes(), BOT, BOT)
        out[name] = (c.msgid, c.in_reply_to, list(c.references))
    return out


THREADS = [
    pytest.param(["patch-single.eml", *COVER_SERIES, "reply-reviewed-by.eml"],
                 [{"patch-single.eml", "reply-reviewed-by.eml"}, set(COVER_SERIES)],
                 id="two-threads-split"),
    pytest.param(OOO, [set(OOO)], id="out-of-order-reply-joins"),
    pytest.param(["out-of-order-reply-to-2of3.eml", "out-of-order-3of3.eml"],
                 [{"out-of-order-reply-to-2of3.eml", "out-of-order-3of3.eml"}],
                 id="lost-cover-still-joins"),
    pytest.param(V1V2, [set(V1V2)], id="v1-and-v2-one-thread"),
    pytest.param(["series-nocover-2of2.eml", "v2-adds-cover-2of2.eml", *NOCOVER[:1]],
                 [{"series-nocover-2of2.eml", "v2-adds-cover-2of2.eml",
                   "series-nocover-1of2.eml"}], id="v2-via-references"),
    pytest.param(["discussion-reply.eml", "patch-single.eml", "discussion.eml",
                  "partial-1of3.eml", "partial-3of3.eml"],
                 [{"discussion.eml", "discussion-reply.eml"}, {"patch-single.eml"},
                  {"partial-1of3.eml", "partial-3of3.eml"}], id="three-threads"),
    pytest.param([], [], id="nothing"),
]


@pytest.mark.parametrize(("names", "want"), THREADS)
def test_thread_roots(names: list[str], want: list[set[str]]):
    by_name = links(names)
    roots = series.thread_roots(list(by_name.values()))
    groups: dict[str, set[str]] = {}
    for name, (msgid, _, _) in by_name.items():
        groups.setdefault(roots[msgid], set()).add(name)
    assert sorted(map(sorted, groups.values())) == sorted(map(sorted, want))
    for root, members in groups.items():
        # the root is the smallest id of the set, parents never seen included
        ids = {i for n in members for i in [by_name[n][0], by_name[n][1], *by_name[n][2]] if i}
        assert root == min(ids)


def test_thread_roots_is_independent_of_order():
    forward = list(links(OOO + V1V2 + ["patch-single.eml"]).values())
    assert series.thread_roots(forward) == series.thread_roots(forward[::-1])

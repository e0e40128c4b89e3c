"""Thread roots kept in state (bot/series/threads.py) are the roots that
threading the whole window at once gives, whatever the batches mail arrives
in: no two unthreaded series merged, none split, merges of two threads seen."""

from __future__ import annotations

import dataclasses
import importlib.util
import random
import sys
from pathlib import Path

import pytest

from bot.config import rules as config
from bot.ingest import spool
from bot.series import assembly as series
from bot.series import threads, tracker
from bot.state import State

HERE = Path(__file__).resolve().parent
TRAFFIC = HERE / "data" / "traffic"
BOT = "bpbot@backports.example.org"
_spec = importlib.util.spec_from_file_location("mailgen", HERE.parent / "bench" / "mailgen.py")
mailgen = importlib.util.module_from_spec(_spec)
sys.modules["mailgen"] = mailgen  # its dataclasses look their module up
_spec.loader.exec_module(mailgen)


@pytest.fixture(scope="module", autouse=True)
def b4_configured():
    series.configure_b4("bpbot", BOT)


@pytest.fixture()
def bot(tmp_path: Path):
    rules = dataclasses.replace(config.load(config.DEMO_RULES, base_dir=tmp_path), grace_seconds=0)
    st = State(tmp_path / "state.sqlite")

    def feed(raws: list[bytes]) -> None:
        spool.spool(st, "test", raws, bot_address=BOT, loop_id=BOT)
        tracker.assemble(st, rules)
    return rules, st, feed


def whole_window(st: State) -> dict[str, str]:
    """msgid -> root as series.thread_roots() gives it over every series message."""
    rows = st.query("SELECT msgid, kind, in_reply_to, refs, subject, from_addr FROM messages"
                    f" WHERE kind IN ({threads.KINDS_SQL})")
    return series.thread_roots([(r["msgid"], "", threads.linked_ids(r)[1:]) for r in rows])


def stored(st: State) -> dict[str, str]:
    return {r["msgid"]: r["root"] for r in st.query(
        "SELECT t.msgid, t.root FROM thread_ids t JOIN messages m ON m.msgid = t.msgid"
        f" WHERE m.kind IN ({threads.KINDS_SQL})")}


def versions(st: State) -> list[tuple]:
    return sorted((r["key"], r["revision"], r["present"], r["state"]) for r in st.query(
        "SELECT s.key, v.revision, v.present, v.state FROM versions v JOIN series s"
        " ON s.id = v.series_id"))


@pytest.mark.parametrize("seed", [1, 2])
def test_roots_in_batches_are_the_whole_window_roots(bot, seed):
    rules, st, feed = bot
    mails = list(mailgen.stream(1200, seed))
    rng = random.Random(seed)
    i = 0
    while i < len(mails):
        step = rng.choice([1, 3, 17, 60, 200])
        feed(mails[i:i + step])
        i += step
    assert stored(st) == whole_window(st)


def test_batches_give_the_versions_of_one_pass(tmp_path: Path):
    mails = list(mailgen.stream(600, 3))
    rules = dataclasses.replace(config.load(config.DEMO_RULES, base_dir=tmp_path), grace_seconds=0)
    one, each = State(tmp_path / "one.sqlite"), State(tmp_path / "each.sqlite")
    spool.spool(one, "test", mails, bot_address=BOT, loop_id=BOT)
    tracker.assemble(one, rules)
    for start in range(0, len(mails), 50):
        spool.spool(each, "test", mails[start:start + 50], bot_address=BOT, loop_id=BOT)
        tracker.assemble(each, rules)
    # the states differ where a version was superseded pass by pass; the series do not
    assert [v[:3] for v in versions(one) if v[3] != "superseded"] == \
        [v[:3] for v in versions(each) if v[3] != "superseded"]


def test_unthreaded_series_neither_merged_nor_split(bot):
    rules, st, feed = bot
    names = ["unthreaded-3of3.eml", "two-v2-separate-a.eml", "unthreaded-1of3.eml",
             "two-v2-separate-b.eml", "unthreaded-2of3.eml"]
    for name in names:  # one pass each, in this order
        feed([(TRAFFIC / name).read_bytes()])
    roots = stored(st)
    assert roots == whole_window(st)
    grouped = threads.groups(st, set(roots.values()), 0)
    un = {grouped[roots[f"20260322080000.3{n}-jane@example.org"]] for n in (1, 2, 3)}
    assert un == {"unthreaded.v1.3.jane@example.org@bpbot.invalid"}
    v2 = {grouped[roots[f"20260326080000.70-{x}-jane@example.org"]] for x in "ab"}
    assert len(v2) == 2  # the two [PATCH v2] mails: one patch each, two series


def test_threaded_series_of_one_sender_stay_apart(bot):
    """The cover letters of two threaded 2-patch series have no threading headers;
    their patches answer them, so neither is taken for an unthreaded part."""
    rules, st, feed = bot
    for series_no in (1, 2):
        cover = f"c{series_no}@x"
        mails = [f"From: Jane <jane@x.org>\nSubject: [PATCH 0/2] series {series_no}\n"
                 f"Message-ID: <{cover}>\n\nTwo patches.\n".encode()]
        for n in (1, 2):
            mails.append((f"From: Jane <jane@x.org>\nSubject: [PATCH {n}/2] s{series_no} p{n}\n"
                          f"Message-ID: <p{series_no}{n}@x>\nIn-Reply-To: <{cover}>\n"
                          f"References: <{cover}>\n\nx\n---\ndiff --git a/f{n} b/f{n}\n"
                          f"--- a/f{n}\n+++ b/f{n}\n@@ -1 +1 @@\n-a\n+b{series_no}\n").encode())
        feed(mails[:1])  # the cover alone first: lone for a pass
        feed(mails[1:])
    got = versions(st)
    assert [(v[2], v[3]) for v in got] == [("[1, 2]", "ready"), ("[1, 2]", "ready")], got


def mail(msgid: str, parent: str = "", refs: str = "") -> bytes:
    head = f"From: Sam <sam@example.com>\nSubject: Re: [PATCH] x\nMessage-ID: <{msgid}>\n"
    if parent:
        head += f"In-Reply-To: <{parent}>\n"
    if refs:
        head += f"References: {refs}\n"
    return (head + "\nReviewed-by: Sam <sam@example.com>\n").encode()


def test_a_message_naming_two_threads_merges_them(bot):
    rules, st, feed = bot
    feed([mail("m1@x", "zz-lost@x")])
    feed([mail("m2@x", "yy-lost@x")])
    assert stored(st) == {"m1@x": "m1@x", "m2@x": "m2@x"}
    feed([mail("m3@x", "yy-lost@x", "<zz-lost@x> <yy-lost@x>")])
    assert set(stored(st).values()) == {"m1@x"}
    assert st.one("SELECT root FROM thread_ids WHERE msgid = 'yy-lost@x'")["root"] == "m1@x"


def test_mail_spooled_before_the_migration_is_threaded_once(bot):
    rules, st, feed = bot
    feed(list(mailgen.stream(300, 4)))
    want = stored(st)
    with st.tx() as db:  # as a state from before migration 007 looks
        db.conn.execute("DELETE FROM thread_ids")
        db.conn.execute("DELETE FROM meta WHERE key = ?", (threads.BUILT,))
    feed([mail("late@x", next(iter(want)))])
    got = stored(st)
    assert {m: got[m] for m in want} == want and got["late@x"] == want[next(iter(want))]

"""Patches mailed straight to the bot, not through the list (issue "A hostile
patch can stop the bot for good"): recorded, not tested (their report would
Cc the list about mail it never saw); and when a direct copy came first, the
list's copy (its List-Id) of the same Message-ID replaces it.
"""

from __future__ import annotations

import dataclasses
import mailbox

from bot import status
from bot.config import rules as config
from bot.demo import layout
from bot.ingest import sources, spool
from bot.series import tracker
from bot.state import State

BOT = "bpbot@backports.example.org"
SAMPLE = {p.name[:2]: p for p in layout.sample_list()}


def _local_source(tmp_path):
    rules = config.load(config.DEMO_RULES, base_dir=tmp_path)
    rules = dataclasses.replace(rules, source=dataclasses.replace(
        rules.source, kind="maildir", path=tmp_path / "Maildir"))
    state = State(tmp_path / "state.sqlite")
    box = mailbox.Maildir(tmp_path / "Maildir", create=True)
    return rules, state, box, sources.LocalSource(rules, state)


def test_a_patch_mailed_to_the_bot_is_recorded_not_tested(tmp_path):
    rules, state, box, source = _local_source(tmp_path)
    direct = SAMPLE["09"].read_bytes().replace(b"To: backports@vger.kernel.org",
                                               f"To: {BOT}".encode(), 1)
    box.add(direct)
    source.poll()
    tracker.assemble(state, rules)
    [row] = state.query("SELECT kind, reason FROM messages")
    assert row["kind"] == "direct" and "not through the list" in row["reason"]
    assert state.query("SELECT * FROM versions") == []
    assert status.summary(state)["messages"] == {"direct": 1}
    # The copy the list delivers later (its List-Id, other bytes) is the one used.
    box.add(b"List-Id: <backports.vger.kernel.org>\n" + SAMPLE["09"].read_bytes())
    source.poll()
    tracker.assemble(state, rules)
    kinds = sorted((r["kind"], "#conflict-" in r["msgid"])
                   for r in state.query("SELECT msgid, kind FROM messages"))
    assert kinds == [("patch", False), ("quarantine", True)]
    assert [v["state"] for v in state.query("SELECT state FROM versions")] == ["ready"]


def test_a_later_copy_with_a_list_id_cannot_swap_a_patch_seen_on_the_list(tmp_path):
    """A List-Id is easily forged: a copy of a list patch with other content
    and the list's List-Id stays in quarantine; the patch tested is the first."""
    rules, state, box, source = _local_source(tmp_path)
    first = SAMPLE["09"].read_bytes()  # To: the list
    forged = b"List-Id: Backports <backports.vger.kernel.org>\n" + \
        first.replace(b"return del_timer_sync", b"return evil(); del_timer_sync", 1)
    assert forged.count(b"evil") == 1
    for raw in (first, forged):
        box.add(raw)
        source.poll()
    [main] = state.query("SELECT raw, kind FROM messages WHERE msgid NOT LIKE '%#conflict-%'")
    assert bytes(main["raw"]) == first and main["kind"] == "patch"
    [aside] = state.query("SELECT raw, kind FROM messages WHERE msgid LIKE '%#conflict-%'")
    assert bytes(aside["raw"]) == forged and aside["kind"] == "quarantine"


def test_check_still_tests_local_patches_without_a_list(tmp_path):
    rules = config.load(config.DEMO_RULES, base_dir=tmp_path)
    state = State(tmp_path / "s.sqlite")
    raw = SAMPLE["09"].read_bytes().replace(b"To: backports@vger.kernel.org\n", b"", 1)
    spool.spool(state, "check", [raw], bot_address=rules.bot_address, loop_id=rules.loop_id)
    assert state.one("SELECT kind FROM messages")["kind"] == "patch"


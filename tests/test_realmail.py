"""Regressions found by running the ingest path over other projects' real
mail (bench/realmail.py). Each mail here is a minimal reproduction written
for this test.

With REALMAIL_REPOS set (bare git directories, ':'-separated), the last test
runs the harness over them: no crash, no mail missing from state.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bot.ingest import classify, sources, spool
from bot.state import State

BOT = "bpbot@backports.example.org"


def _mail(n: int) -> bytes:
    return (f"From: Jane Doe <jane@example.org>\n"
            f"Subject: [PATCH {n}/2] compat: add helper {n}\n"
            f"Message-ID: <ws-{n}@example.org>\n"
            "Date: Mon, 2 Mar 2026 09:00:00 +0000\n\n"
            "Signed-off-by: Jane Doe <jane@example.org>\n---\n"
            f"diff --git a/f{n} b/f{n}\n--- a/f{n}\n+++ b/f{n}\n@@ -1 +1 @@\n-a\n+b\n").encode()


def test_mbox_with_whitespace_lines_before_the_first_separator_is_split():
    """git mailsplit skips every leading isspace() byte, not only newlines: a
    file starting with a line of spaces and a tab was read as one mail (the
    other mails vanished into its body)."""
    sep = b"From 1234567890abcdef Mon Sep 17 00:00:00 2001\n"
    data = b"    \n\t\n  \n" + sep + _mail(1) + b"\n" + sep + _mail(2)
    mails = sources.read_mbox(data)
    assert len(mails) == 2
    assert mails[0].startswith(b"From: Jane Doe") and b"ws-2@" not in mails[0]


def test_every_mail_of_such_an_mbox_is_spooled_as_a_patch(tmp_path: Path):
    sep = b"From nobody Mon Sep 17 00:00:00 2001\n"
    mails = sources.read_mbox(b" \t\n" + sep + _mail(1) + sep + _mail(2))
    st = State(tmp_path / "state.sqlite")
    assert spool.spool(st, "check", mails, bot_address=BOT, loop_id=BOT).new == 2
    kinds = {r["msgid"]: r["kind"] for r in st.query("SELECT msgid, kind FROM messages")}
    assert kinds == {"ws-1@example.org": classify.PATCH, "ws-2@example.org": classify.PATCH}


@pytest.mark.skipif(not os.environ.get("REALMAIL_REPOS"), reason="REALMAIL_REPOS not set")
def test_real_mail_of_other_projects(tmp_path: Path, capsys):
    from bench import realmail
    out = tmp_path / "out.json"
    assert realmail.main(["--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "CRASH" not in text and "DROPPED" not in text and "QUARANTINE-NO-REASON" not in text


NUL_CHARSET = (b"From: Jane Doe <jane@example.org>\n"
               b"Subject: [PATCH 1/2] compat: add helper\n"
               b"Message-ID: <nul-charset@example.org>\n"
               b"Date: Mon, 2 Mar 2026 09:00:00 +0000\n"
               b"Content-Type: text/plain; charset=\"u\x00\x00d\"\n\n"
               b"Signed-off-by: Jane Doe <jane@example.org>\n---\n"
               b"diff --git a/f b/f\n--- a/f\n+++ b/f\n@@ -1 +1 @@\n-a\n+b\n")


def test_a_charset_name_holding_a_nul_is_an_unknown_charset():
    """Python raises ValueError, not LookupError, for such a name: the patch was
    quarantined as a "parser error" and b4 could not read it either."""
    c = classify.classify(NUL_CHARSET, BOT)
    assert (c.kind, c.reason) == (classify.PATCH, "[PATCH] subject with a diff")
    assert any("unknown charset" in n for n in c.notes)
    from bot.series import assembly
    assembly.configure_b4("bpbot", BOT)
    [v] = assembly.assemble_thread([NUL_CHARSET], "nul-charset@example.org")
    assert (v.revision, v.present, v.expected, v.problem) == (1, [1], 2, "")


def test_a_thread_whose_only_patch_b4_cannot_read_is_answered_not_dropped():
    from bot.series import assembly
    assembly.configure_b4("bpbot", BOT)
    bad_date = _mail(1).replace(b"Mon, 2 Mar 2026", b"Mon, 32 Mar 2026")
    [v] = assembly.assemble_thread([bad_date], "ws-1@example.org")
    assert v.problem.startswith("b4 cannot read the message <ws-1@example.org>")
    assert (v.revision, v.present, v.expected, v.author_addr) == (1, [1], 2, "jane@example.org")
    assert v.msgids == ["ws-1@example.org"] and not v.complete

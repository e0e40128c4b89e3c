"""The template files: every one compiles; the filters wrap prose to 72
columns and never touch code lines; the status page escapes what it shows
and has a place for quarantined mail."""

from __future__ import annotations

import pytest

from bot.reply import render
from bot.web import html as web_html

NOW = 1_700_000_000.0
HEALTH = dict(now=NOW, last_poll_at=NOW - 30, last_sent_at=None, last_ingest_at=None,
              oldest_pending_at=None, oldest_pending="", ok=True, problems=[])
QUEUE = dict(versions=[], outbox=[])


def test_every_template_compiles():
    mail = render.compile_all()
    pages = web_html.compile_all()
    assert {"report.txt", "incomplete.txt", "untestable.txt", "pull_request.txt",
            "command_reply.txt", "rate_notice.txt", "copy_note.txt", "cut_note.txt",
            "footer.txt"} <= set(mail)
    assert {"base.html", "index.html", "version.html", "message.html"} <= set(pages)


@pytest.mark.parametrize(("text", "kwargs", "want"), [
    ("short", {}, "short"),
    ("word " * 20, {}, ("word " * 14).strip() + "\n" + ("word " * 6).strip()),
    ("a-very-long-hyphenated-path/" + "x" * 80, {}, "a-very-long-hyphenated-path/" + "x" * 80),
    ("one two", {"indent": "  "}, "  one two"),
    ("why " * 20, {"indent": "    ", "first": "  6.1 "},
     "  6.1 " + ("why " * 16).strip() + "\n    " + ("why " * 4).strip()),
    ("first\n\nsecond", {}, "first\n\nsecond"),
    ("  verbatim " + "x " * 40, {}, "  verbatim " + "x " * 40),
    ("> quoted " + "x " * 40, {"indent": "  "}, "  > quoted " + "x " * 40),
    ("", {"indent": "  "}, ""),
    ("ends with a newline\n", {}, "ends with a newline\n"),
], ids=["short", "long", "no-break-in-words", "indent", "first-indent", "paragraphs",
        "verbatim-space", "verbatim-quote", "empty", "keeps-newline"])
def test_wrap(text, kwargs, want):
    assert render.wrap(text, **kwargs) == want
    if not text.startswith((" ", ">")):
        assert all(len(line) <= 72 or " " not in line.strip()
                   for line in render.wrap(text, **kwargs).split("\n"))


def test_code_lines_are_never_wrapped():
    line = "compat/main.c:41:9: error: implicit declaration of function " + "x" * 100 + "  "
    assert render.code(line) == "  " + line.rstrip()
    assert render.code(line, ">> ") == ">> " + line.rstrip()


def test_the_page_escapes_every_value():
    rows = [dict(id=1, subject="<script>alert(1)</script>", author='"Jane" <j@x>', revision=1,
                 state="done", state_reason="a & b", verdict="pass", steps=[])]
    page = web_html.index(rows, [], QUEUE, HEALTH, 1)
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "a &amp; b" in page


def test_quarantined_mail_has_a_section_only_when_there_is_some():
    assert "Quarantined" not in web_html.index([], [], QUEUE, HEALTH, 0)
    page = web_html.index([], [], QUEUE, HEALTH, 0, quarantined=[dict(
        msgid="bad<1>@example.org", subject="[PATCH] <b>x</b>",
        reason="Date header out of range", received_at=NOW - 120)])
    assert '<h2 id="quarantine">Quarantined mail</h2>' in page
    assert "bad&lt;1&gt;@example.org" in page and "&lt;b&gt;x&lt;/b&gt;" in page
    assert "Date header out of range" in page and "2m ago" in page


def test_a_message_page_escapes_its_text():
    page = web_html.message("Not found", "no page at /<x>", NOW)
    assert "<h1>Not found</h1><p>no page at /&lt;x&gt;</p>" in page

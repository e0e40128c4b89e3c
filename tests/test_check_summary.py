"""What ``bpbot check`` prints about the input mail: every file is listed (an
empty one too, with its reason), and text from mail is escaped for the terminal."""

from __future__ import annotations

import json

import pytest

from bot import cli
from bot.demo import layout
from bot.ingest.mailtext import for_terminal

SAMPLE = {p.name.split("-", 1)[0]: p for p in layout.sample_list()}
CONTROLS = "\x1b\r\x00\x07\x85\u202e\u2066"


@pytest.mark.parametrize("content", [b"", b"\n\n\n", b"  \n\t\n", b"\r\n \r\n"],
                         ids=["empty", "newlines", "blanks", "crlf"])
def test_an_empty_file_is_listed_with_its_reason(tmp_path, capsys, caplog, content):
    empty = tmp_path / "empty.eml"
    empty.write_bytes(content)
    assert cli.main(["check", str(empty), str(SAMPLE["08"])]) == 2
    err = capsys.readouterr().err
    assert "no patch series found" in err
    assert f"{empty}: empty file: not a mail" in caplog.text
    listed = [line for line in err.splitlines() if line.startswith("  ")]
    assert len(listed) == 2 and any("quarantine" in line and "empty" in line
                                    for line in listed), err


def test_an_empty_file_is_in_the_json_messages(tmp_path, capsys):
    empty = tmp_path / "empty.eml"
    empty.write_bytes(b"")
    assert cli.main(["check", "--json", str(empty), str(SAMPLE["08"])]) == 2
    data = json.loads(capsys.readouterr().out)
    kinds = sorted((m["kind"], m["reason"]) for m in data["messages"])
    assert len(kinds) == 2 and kinds[1][0] == "quarantine" and "empty" in kinds[1][1], kinds


def _hostile(tmp_path):
    """Two mails: one quarantined (ESC in the Subject), one kept (bidi, C1)."""
    path = tmp_path / "hostile.eml"
    path.write_bytes(
        b"From x Thu Jan  1 00:00:00 2026\n"
        b"From: Eve <eve@example.org>\nTo: list@example.org\n"
        b"Message-ID: <one@example.org>\n"
        b"Subject: hi\x1b[2J\x1b]0;owned\x07 there\r\x00\n\nbody\n\n"
        b"From x Thu Jan  1 00:00:01 2026\n"
        b"From: Eve <eve@example.org>\nTo: list@example.org\n"
        b"Message-ID: <two@example.org>\n"
        + "Subject: plain \u202eevil\u2066 \x85end\n\nbody\n".encode())
    return path


def test_the_summary_escapes_what_mail_wrote(tmp_path, capsys):
    assert cli.main(["check", str(_hostile(tmp_path))]) == 2
    out, err = capsys.readouterr()
    assert not any(c in out + err for c in CONTROLS), repr(err)
    assert "hi\\x1b[2J\\x1b]0;owned\\x07 there" in err, err
    assert "plain \\u202eevil\\u2066 end" in err, err  # (the parser reads U+0085 as a space)


@pytest.mark.parametrize(("text", "keep", "shown"), [
    ("plain [PATCH 1/2] text", "", "plain [PATCH 1/2] text"),
    ("caf\u00e9 \u00fcber \u4e2d\u6587 \U0001f600", "", "caf\u00e9 \u00fcber \u4e2d\u6587 \U0001f600"),
    ("a\x1b[31mb\rc\x00d\x7fe", "", "a\\x1b[31mb\\x0dc\\x00d\\x7fe"),
    ("c1 \x85 \x9b", "", "c1 \\x85 \\x9b"),
    ("bidi \u202e \u2066 \u200f zw \u200b sep \u2028", "",
     "bidi \\u202e \\u2066 \\u200f zw \\u200b sep \\u2028"),
    ("tag \U000e0041 lone \udcff", "", "tag \\U000e0041 lone \\udcff"),
    ("two\nlines\tand\x1b", "\n\t", "two\nlines\tand\\x1b"),
    ("one\nline", "", "one\\x0aline"),
])
def test_for_terminal_escapes_what_a_terminal_would_not_show(text, keep, shown):
    assert for_terminal(text, keep) == shown


def test_the_log_escapes_what_mail_wrote(tmp_path):
    """A quarantined mail's Message-ID, as the log names it on the terminal."""
    import subprocess
    import sys

    path = tmp_path / "hostile.eml"
    path.write_bytes("From: Eve <eve@example.org>\nMessage-ID: <\u202eevil@example.org>\n"
                     "Subject: a\x1b[2Jb\n\nbody\n".encode())
    done = subprocess.run([sys.executable, "-m", "bot.cli", "check", str(path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "quarantined \\u202eevil@example.org" in done.stderr, done.stderr
    assert not any(c in done.stderr for c in CONTROLS), repr(done.stderr)

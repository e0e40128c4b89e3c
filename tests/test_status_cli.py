"""``bpbot status`` only reads the state: it never creates it, and a state it
cannot read is one clear line naming the path and the problem (exit 2)."""

from __future__ import annotations

import json
import sqlite3

import pytest

from bot import cli
from bot.config import rules as config
from bot.state import State

ESC_SUBJECT = "[PATCH] fix\x1b[2J\x1b]0;owned\x07 it\r\x00 \u202eevil\x85"


@pytest.fixture
def rules_file(tmp_path):
    """The demo rules with the state in tmp_path/state."""
    path = tmp_path / "rules.toml"
    path.write_text(config.DEMO_RULES.read_text().replace(
        'state_dir = "state"', f'state_dir = "{tmp_path / "state"}"'))
    return path


def _status(rules_file, *extra: str) -> int:
    return cli.main(["status", "--config", str(rules_file), *extra])


def _tree(path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_a_state_dir_that_is_a_file_is_one_clear_error(rules_file, tmp_path, capsys, as_json):
    (tmp_path / "state").write_text("not a folder\n")
    assert _status(rules_file, *(["--json"] if as_json else [])) == 2
    out, err = capsys.readouterr()
    assert out == "" and "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    assert str(tmp_path / "state") in err and "not a directory" in err


@pytest.mark.parametrize("content", [b"garbage, not a database\n" * 100, b"\x00" * 4096],
                         ids=["text", "zeros"])
@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_a_database_that_is_garbage_is_one_clear_error(rules_file, tmp_path, capsys, as_json,
                                                      content):
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "bpbot.sqlite").write_bytes(content)
    assert _status(rules_file, *(["--json"] if as_json else [])) == 2
    out, err = capsys.readouterr()
    assert out == "" and "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    assert str(tmp_path / "state" / "bpbot.sqlite") in err
    assert "not a bpbot database" in err or "not an SQLite database" in err
    assert _tree(tmp_path / "state") == ["bpbot.sqlite"]


@pytest.mark.parametrize("make_dir", [False, True], ids=["no-dir", "empty-dir"])
def test_status_without_a_state_creates_nothing(rules_file, tmp_path, capsys, make_dir):
    if make_dir:
        (tmp_path / "state").mkdir()
    assert _status(rules_file) == 0
    database = tmp_path / "state" / "bpbot.sqlite"
    assert capsys.readouterr().out.strip() == f"no state yet at {database} (the bot has not run)"
    assert (tmp_path / "state").exists() == make_dir
    if make_dir:
        assert _tree(tmp_path / "state") == []


def test_status_json_without_a_state_says_so_and_creates_nothing(rules_file, tmp_path, capsys):
    assert _status(rules_file, "--json") == 0
    data = json.loads(capsys.readouterr().out)
    database = tmp_path / "state" / "bpbot.sqlite"
    assert data["no_state"] == f"no state yet at {database} (the bot has not run)"
    assert data["series"] == [] and data["quarantined"] == [] and data["messages"] == {}
    assert not (tmp_path / "state").exists()


def _state_with_quarantine(tmp_path) -> State:
    state = State(tmp_path / "state" / "bpbot.sqlite")
    with state.tx() as db:
        db.conn.execute(
            "INSERT INTO messages (msgid, raw, size, source, received_at, kind, reason, subject)"
            " VALUES (?, ?, 1, 'test', 0, 'quarantine', ?, ?)",
            ("evil\x1b[31m@example.org", b"x", "illegal character\x1b[8m in \u202eSubject",
             ESC_SUBJECT))
    state.close()
    return state


def test_status_reads_a_state_without_writing_to_it(rules_file, tmp_path, capsys):
    _state_with_quarantine(tmp_path)
    before = _tree(tmp_path / "state")
    stamp = (tmp_path / "state" / "bpbot.sqlite").stat().st_mtime_ns
    assert _status(rules_file, "--json") == 0
    assert json.loads(capsys.readouterr().out)["quarantined"][0]["subject"] == ESC_SUBJECT
    assert _tree(tmp_path / "state") == before
    assert (tmp_path / "state" / "bpbot.sqlite").stat().st_mtime_ns == stamp


def test_status_text_escapes_what_mail_wrote(rules_file, tmp_path, capsys):
    _state_with_quarantine(tmp_path)
    assert _status(rules_file) == 0
    out = capsys.readouterr().out
    assert not any(c in out for c in "\x1b\r\x00\x07\x85\u202e"), repr(out)
    assert "fix\\x1b[2J\\x1b]0;owned\\x07 it\\x0d\\x00 \\u202eevil\\x85" in out
    assert "<evil\\x1b[31m@example.org>" in out
    assert "illegal character\\x1b[8m in \\u202eSubject" in out


def test_status_reads_the_state_while_the_daemon_holds_it(rules_file, tmp_path, capsys):
    state = _state_with_quarantine(tmp_path)
    state.query("SELECT 1 FROM messages")  # an open connection: the -wal and -shm are there
    try:
        assert (tmp_path / "state" / "bpbot.sqlite-wal").exists()
        assert _status(rules_file) == 0
        assert "quarantined (1, newest first)" in capsys.readouterr().out
    finally:
        state.close()



@pytest.mark.parametrize(("bpbot_state", "sql", "expect"), [
    (False, "CREATE TABLE other (x)", "not a bpbot database"),
    (True, "DELETE FROM migrations WHERE name LIKE '007_%'",
     "made by an older bpbot (1 migration(s) not applied); `bpbot serve` migrates it"),
], ids=["another-program", "older-bpbot"])
def test_a_database_bpbot_cannot_read_is_one_clear_error(rules_file, tmp_path, capsys,
                                                        bpbot_state, sql, expect):
    if bpbot_state:
        _state_with_quarantine(tmp_path)
    else:
        (tmp_path / "state").mkdir()
    conn = sqlite3.connect(tmp_path / "state" / "bpbot.sqlite")
    conn.execute(sql)
    conn.commit()
    conn.close()
    assert _status(rules_file) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and expect in err, err


def test_the_page_refuses_a_garbage_database_at_start(rules_file, tmp_path, capsys):
    """`bpbot web` on a state it cannot read: one line, exit 2, no server."""
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "bpbot.sqlite").write_bytes(b"garbage, not a database\n" * 100)
    assert cli.main(["web", "--config", str(rules_file), "--port", "0"]) == 2
    out, err = capsys.readouterr()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert str(tmp_path / "state" / "bpbot.sqlite") in err


def test_serve_refuses_a_garbage_database_with_one_line(rules_file, tmp_path, capsys):
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "bpbot.sqlite").write_bytes(b"garbage, not a database\n" * 100)
    assert cli.main(["serve", "--config", str(rules_file)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert f"cannot open the state: {tmp_path / 'state' / 'bpbot.sqlite'}" in err


@pytest.mark.parametrize("broken", ["state-is-a-file", "lock-is-a-dir"])
def test_serve_on_an_unusable_state_dir_is_one_line(rules_file, tmp_path, capsys, broken):
    if broken == "state-is-a-file":
        (tmp_path / "state").write_text("not a folder\n")
    else:
        (tmp_path / "state" / "serve.lock").mkdir(parents=True)
    assert cli.main(["serve", "--config", str(rules_file)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert f"cannot take the serve lock {tmp_path / 'state' / 'serve.lock'}" in err

"""The test servers themselves work (tests/servers.py, fixtures in conftest.py)."""

from __future__ import annotations

import asyncio
import shutil
import socket
import textwrap
import time
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib
import pytest
import servers
from imapclient import IMAPClient
from imapclient.exceptions import LoginError
from servers import LeftoverMessagesError, SmtpServer, wait_port_closed

TESTS = Path(__file__).resolve().parent


def raw_message(n: int) -> bytes:
    return (
        f"From: Dev {n} <dev{n}@example.org>\r\n"
        f"To: backports@example.org\r\n"
        f"Subject: [PATCH 6.1.y] fix number {n}\r\n"
        f"Message-ID: <patch-{n}@example.org>\r\n"
        f"Date: Mon, 01 Jan 2024 00:00:0{n} +0000\r\n"
        "\r\n"
        f"body {n}\r\n"
        "--- a/f\r\n+++ b/f\r\n"
    ).encode()


def send(server: SmtpServer, subject: str = "hello", to: str = "list@example.org") -> None:
    msg = EmailMessage()
    msg["From"] = "bot@example.org"
    msg["To"] = to
    msg["Subject"] = subject
    msg.set_content("text\n")
    asyncio.run(aiosmtplib.send(msg, hostname=server.host, port=server.port, timeout=10))


# --- IMAP ------------------------------------------------------------------


def test_imap_append_search_fetch_keeps_unseen(imap_server):
    raws = [raw_message(1), raw_message(2)]
    uids = [imap_server.append(r) for r in raws]
    assert uids == [1, 2]

    with imap_server.connect() as c:
        info = c.select_folder(imap_server.folder)  # read-write on purpose
        assert info[b"EXISTS"] == 2
        assert c.search(["ALL"]) == uids  # imapclient uses UID SEARCH
        fetched = c.fetch(uids, ["BODY.PEEK[]", "FLAGS"])
        for uid, raw in zip(uids, raws, strict=True):
            assert fetched[uid][b"BODY[]"] == raw
            assert b"\\Seen" not in fetched[uid][b"FLAGS"]

    with imap_server.connect() as c:  # still unseen for a new session
        c.select_folder(imap_server.folder, readonly=True)
        assert c.search(["UNSEEN"]) == uids


def test_imap_password_file_folders_uidvalidity(imap_server):
    assert imap_server.password_file.read_text() == imap_server.password
    folder = "lists/backports"  # '/' is the hierarchy separator
    assert imap_server.append(raw_message(3), folder=folder) == 1
    with imap_server.connect() as c:
        assert c.namespace().personal[0][1] == "/"
        old = c.select_folder(folder)[b"UIDVALIDITY"]
    imap_server.set_uidvalidity(old + 1000, folder)
    with imap_server.connect() as c:
        assert c.select_folder(folder)[b"UIDVALIDITY"] == old + 1000


def test_imap_bad_password_rejected_quickly(imap_server):
    # dovecot normally delays failed logins and then every login from the
    # same IP by 2-15 s; the test config turns that off ("nodelay").
    t0 = time.monotonic()
    for _ in range(3):
        with (
            IMAPClient(imap_server.host, port=imap_server.port, ssl=False, timeout=5) as c,
            pytest.raises(LoginError),
        ):
            c.login(imap_server.user, "wrong")
    imap_server.connect().logout()
    assert time.monotonic() - t0 < 1.5
    assert "Password mismatch" in imap_server.log() or "auth failed" in imap_server.log()


# --- SMTP ------------------------------------------------------------------


def test_smtp_receives_and_take_marks_checked(smtp_server):
    send(smtp_server, "first")
    send(smtp_server, "second", to="other@example.org")
    assert len(smtp_server.wait_for(2, timeout=5)) == 2
    assert len(smtp_server.unchecked()) == 2  # wait_for() does not consume

    first, second = smtp_server.take(2)
    assert first.mail_from == "bot@example.org"
    assert first.rcpt_tos == ["list@example.org"]
    assert first.subject == "first" and first.message["Subject"] == "first"
    assert b"Subject: first" in first.raw
    assert second.rcpt_tos == ["other@example.org"]
    assert all(m.checked for m in smtp_server.messages)
    assert smtp_server.take() == []


def test_smtp_stop_start_same_port(smtp_server):
    port = smtp_server.port
    smtp_server.stop()
    wait_port_closed(smtp_server.host, port)
    with pytest.raises(aiosmtplib.SMTPConnectError):
        send(smtp_server, "during outage")
    smtp_server.start()
    assert smtp_server.port == port
    send(smtp_server, "after outage")
    [msg] = smtp_server.take(1)
    assert msg.subject == "after outage"


def test_smtp_failure_reply(smtp_server):
    smtp_server.failure = "451 4.3.0 Try again later"
    with pytest.raises(aiosmtplib.SMTPResponseException) as exc:
        send(smtp_server, "refused")
    assert exc.value.code == 451
    assert smtp_server.messages == []
    smtp_server.failure = None
    send(smtp_server, "accepted")
    assert [m.subject for m in smtp_server.take(1)] == ["accepted"]


def test_smtp_take_times_out_with_summary(smtp_server):
    send(smtp_server, "only one")
    with pytest.raises(AssertionError, match="only one"):
        smtp_server.take(2, timeout=0.2)
    smtp_server.take(1)


def test_leftover_check_function():
    with SmtpServer() as server:
        server.check_leftovers()  # nothing received: fine
        send(server, "forgotten")
        server.wait_for(1)
        with pytest.raises(LeftoverMessagesError, match="forgotten"):
            server.check_leftovers()
        server.take()
        server.check_leftovers()


@pytest.mark.smtp_leftovers_ok
def test_smtp_leftovers_ok_marker(smtp_server):
    send(smtp_server, "ignored")
    smtp_server.wait_for(1)
    assert smtp_server.allow_leftovers


def test_leftover_check_in_fixture_teardown(pytester: pytest.Pytester):
    """Run the real fixture in an inner pytest session and look at outcomes."""
    for name in ("conftest.py", "servers.py"):
        shutil.copy(TESTS / name, pytester.path / name)
    pytester.makepyfile(
        test_inner=textwrap.dedent("""
        import asyncio
        import aiosmtplib
        import pytest

        def send(s, subject):
            msg = f"From: a@x\\r\\nTo: b@x\\r\\nSubject: {subject}\\r\\n\\r\\nhi\\r\\n"
            asyncio.run(aiosmtplib.send(msg.encode(), sender="a@x", recipients=["b@x"],
                                        hostname=s.host, port=s.port))

        def test_leaves_one(smtp_server):
            send(smtp_server, "left behind")
            smtp_server.wait_for(1)

        def test_takes_it(smtp_server):
            send(smtp_server, "consumed")
            smtp_server.take(1)

        @pytest.mark.smtp_leftovers_ok
        def test_opted_out(smtp_server):
            send(smtp_server, "whatever")
            smtp_server.wait_for(1)

        def test_opted_out_by_attribute(smtp_server):
            smtp_server.allow_leftovers = True
            send(smtp_server, "whatever")
            smtp_server.wait_for(1)

        def test_fails_anyway(smtp_server):
            send(smtp_server, "not reported twice")
            smtp_server.wait_for(1)
            assert False
    """)
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-p", "no:hypothesispytest")
    # test_leaves_one passes its call but errors at teardown; a failing test
    # gets no extra leftover error on top of its own failure.
    result.assert_outcomes(passed=4, failed=1, errors=1)
    result.stdout.fnmatch_lines(["*ERROR at teardown of test_leaves_one*", "*left behind*"])
    assert "not reported twice" not in "\n".join(line for line in result.outlines if "never checked" in line)


def test_imap_fixture_fails_not_skips_without_dovecot(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
):
    for name in ("conftest.py", "servers.py"):
        shutil.copy(TESTS / name, pytester.path / name)
    pytester.makepyfile(test_inner="def test_needs_imap(imap_server):\n    pass\n")
    monkeypatch.setattr(servers, "dovecot_binary", lambda: None)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-p", "no:hypothesispytest")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*dovecot is not installed*deploy/setup.sh*"])


def test_free_port_is_bindable():
    from servers import free_port

    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))

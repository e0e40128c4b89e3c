"""Shared pytest fixtures: real IMAP (dovecot) and SMTP (aiosmtpd) servers.

``imap_server``  -> ``servers.ImapServer``
    A fresh dovecot per test (startup is ~0.07 s), listening on 127.0.0.1 on
    a free port, with one user and an empty INBOX.  Attributes: ``host``,
    ``port``, ``user``, ``password``, ``password_file`` (a file holding just
    the password), ``folder`` ("INBOX"); helpers ``connect()`` (a logged-in
    IMAPClient), ``append(raw, folder=None, flags=()) -> uid``,
    ``create_folder(name)``, ``set_uidvalidity(n, folder=None)``, ``log()``.
    If dovecot is not installed the test FAILS (it is not skipped) and says
    to run deploy/setup.sh: CI must not pass silently without a server.

``smtp_server``  -> ``servers.SmtpServer``
    aiosmtpd on 127.0.0.1 on a free port.  Attributes: ``host``, ``port``,
    ``messages`` (every ``ReceivedMessage``: ``mail_from``, ``rcpt_tos``,
    ``raw``, ``message`` (EmailMessage), ``subject``, ``checked``),
    ``wait_for(n, timeout)``, ``take(n=None, timeout)``, ``stop()``/``start()``
    (same port, to simulate an outage), ``failure`` (e.g. "451 ..." to refuse
    DATA).  Leftover check: a test that passes but did not ``take()`` every
    received message fails at teardown.  Opt out with
    ``@pytest.mark.smtp_leftovers_ok`` or ``smtp_server.allow_leftovers = True``.

Tests using either fixture are marked ``integration`` automatically, so
``pytest -m "not integration"`` runs only the fast unit tests.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

# `bpbot check` keeps a cache under $XDG_CACHE_HOME (bot/check_cache.py): each
# test run gets its own, so a user's cache (or another checkout's, with other
# migrations) never changes a result. Subprocesses inherit it.
# A child process that imports this file again (a process pool's worker) keeps
# the session's dir; only the session that made it removes it.
_OWNS_CACHE = "BPBOT_TEST_CACHE" not in os.environ
if _OWNS_CACHE:
    os.environ["BPBOT_TEST_CACHE"] = tempfile.mkdtemp(prefix="bpbot-test-cache-")
os.environ["XDG_CACHE_HOME"] = os.environ["BPBOT_TEST_CACHE"]


def pytest_sessionfinish(session, exitstatus):
    if _OWNS_CACHE:
        from bot.sandbox.cleanup import remove_tree  # also what a build left without write modes
        remove_tree(Path(os.environ["BPBOT_TEST_CACHE"]))

# Make tests/servers.py importable as `servers` whether or not tests/ is a
# package (with rootdir-relative or package imports alike).
sys.path.insert(0, str(Path(__file__).resolve().parent))

import servers  # noqa: E402
from servers import DovecotServer, LeftoverMessagesError, ServerStartError, SmtpServer  # noqa: E402

# pytester runs the fixtures' own tests in tests/test_servers.py.
pytest_plugins = ("pytester",)

SERVER_FIXTURES = {"imap_server", "smtp_server"}
_reports = pytest.StashKey[dict]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "smtp_leftovers_ok: the smtp_server fixture skips its check that every "
        "received message was consumed with take()",
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    # Remember each phase's report so fixtures can see whether the test passed.
    report = yield
    item.stash.setdefault(_reports, {})[report.when] = report
    return report


def _test_passed(node: pytest.Item) -> bool:
    call = node.stash.get(_reports, {}).get("call")
    return call is not None and call.passed


@pytest.fixture
def imap_server():
    """A throwaway dovecot IMAP server for one test (see module docstring)."""
    if servers.dovecot_binary() is None:
        pytest.fail(
            "dovecot is not installed: run deploy/setup.sh (as root) to install "
            "dovecot-imapd; IMAP tests are not skipped on purpose",
            pytrace=False,
        )
    dovecot = DovecotServer()
    try:
        server = dovecot.start()
    except ServerStartError as e:
        pytest.fail(f"could not start dovecot: {e}", pytrace=False)
    try:
        yield server
    finally:
        dovecot.stop()


@pytest.fixture
def smtp_server(request: pytest.FixtureRequest):
    """An aiosmtpd server recording messages; fails a passing test that leaves
    received messages unchecked (see module docstring)."""
    server = SmtpServer()
    server.start()
    if request.node.get_closest_marker("smtp_leftovers_ok"):
        server.allow_leftovers = True
    try:
        yield server
    finally:
        server.stop()
    if not server.allow_leftovers and _test_passed(request.node):
        try:
            server.check_leftovers()
        except LeftoverMessagesError as e:
            pytest.fail(str(e), pytrace=False)

"""Real mail servers for tests: a throwaway dovecot (IMAP) and an aiosmtpd (SMTP).

Both listen on 127.0.0.1 on a free port and touch nothing outside their own
temporary directory.  The pytest fixtures that wrap them live in
``tests/conftest.py`` (``imap_server`` and ``smtp_server``); this module holds
the plain-Python helpers so they can also be used from a script or a benchmark::

    with DovecotServer() as imap:            # -> ImapServer
        uid = imap.append(raw_message_bytes)
    with SmtpServer() as smtp:
        ...send to smtp.host:smtp.port...
        [msg] = smtp.take(1)                 # waits, returns, marks checked

Dovecot
    ``dovecot -F -c <conf>`` is started as a child in its own session with a
    generated config (see ``DOVECOT_CONF``): one passwd-file user whose mail is
    a maildir under the temp dir owned by uid/gid 65534, plaintext LOGIN over
    loopback, and base_dir/state_dir/log inside the temp dir.  Running as root
    is the supported case (it is what developers and CI do); as non-root the
    config drops every privilege change and chroot so it works too.  It is
    stopped with SIGKILL to its process group (a TERM takes dovecot seconds).
    ``deploy/setup.sh`` installs dovecot-imapd.

SMTP
    ``SmtpServer`` wraps ``aiosmtpd.controller.Controller`` with a handler that
    records every message.  Received messages must be consumed with
    ``take()``: like syzkaller's "leftover email" check, the ``smtp_server``
    fixture fails a passing test that left messages unchecked, so a bot that
    sends an unexpected extra reply cannot go unnoticed.
"""

from __future__ import annotations

import contextlib
import email.policy
import grp
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

from aiosmtpd.controller import Controller
from imapclient import IMAPClient

LOCALHOST = "127.0.0.1"
SETUP_HINT = "run deploy/setup.sh (as root) to install dovecot-imapd"


class ServerStartError(RuntimeError):
    """A test server did not come up; the message carries its log."""


def free_port(host: str = LOCALHOST) -> int:
    """Return a TCP port on ``host`` that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _short_tmpdir(prefix: str) -> Path:
    # Unix socket paths are limited to 107 bytes and dovecot puts its sockets
    # in base_dir (e.g. run/login/imap-urlauth), so keep the directory short
    # instead of using pytest's long per-test tmp_path.
    base = "/tmp" if os.path.isdir("/tmp") else None
    return Path(tempfile.mkdtemp(prefix=prefix, dir=base))


# --------------------------------------------------------------------------
# IMAP (dovecot)
# --------------------------------------------------------------------------


@dataclass
class ImapServer:
    """Where a running test IMAP server listens and how to log in.

    ``password_file`` holds just the password (no newline), for code that is
    configured with a password file rather than a password.
    """

    host: str
    port: int
    user: str
    password: str
    password_file: Path
    folder: str = "INBOX"
    workdir: Path | None = field(default=None, repr=False)
    config: Path | None = field(default=None, repr=False)
    log_file: Path | None = field(default=None, repr=False)

    def connect(self, timeout: float = 10.0) -> IMAPClient:
        """Return a logged-in ``IMAPClient``; the caller logs out."""
        client = IMAPClient(self.host, port=self.port, ssl=False, timeout=timeout)
        try:
            client.login(self.user, self.password)
        except BaseException:
            client.shutdown()
            raise
        return client

    def create_folder(self, folder: str) -> None:
        """Create ``folder`` (hierarchy separator ``/``) if it does not exist."""
        with self.connect() as c:
            if not c.folder_exists(folder):
                c.create_folder(folder)

    def append(
        self,
        raw: bytes,
        folder: str | None = None,
        flags: tuple[str, ...] = (),
        msg_time=None,
    ) -> int | None:
        """APPEND ``raw`` to ``folder`` (default ``self.folder``, created if
        missing) and return its UID from the APPENDUID response code."""
        folder = folder or self.folder
        with self.connect() as c:
            if not c.folder_exists(folder):
                c.create_folder(folder)
            resp = c.append(folder, raw, flags=flags, msg_time=msg_time)
        if isinstance(resp, bytes):
            resp = resp.decode("ascii", "replace")
        m = re.search(r"APPENDUID \d+ (\d+)", str(resp))
        return int(m.group(1)) if m else None

    def set_uidvalidity(self, value: int, folder: str | None = None) -> None:
        """Give ``folder`` a new UIDVALIDITY, as after a server-side rebuild.

        Uses ``doveadm mailbox update``; dovecot disconnects clients that
        have the folder selected.  UIDs are kept, only UIDVALIDITY changes.
        """
        if self.config is None:
            raise RuntimeError("set_uidvalidity needs a DovecotServer-managed server")
        folder = folder or self.folder
        subprocess.run(
            [
                _doveadm(),
                "-c",
                str(self.config),
                "mailbox",
                "update",
                "-u",
                self.user,
                "--uid-validity",
                str(value),
                folder,
            ],
            check=True,
            capture_output=True,
            timeout=30,
        )

    def log(self) -> str:
        """The dovecot log so far (handy in assertion messages)."""
        if self.log_file is None or not self.log_file.exists():
            return ""
        return self.log_file.read_text(errors="replace")


DOVECOT_CONF = """\
# Throwaway dovecot for bpbot tests; generated by tests/servers.py.
protocols = imap
listen = {host}
base_dir = {run}
state_dir = {state}
instance_name = bpbot-test-{port}
log_path = {log}
info_log_path = {log}
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
default_internal_user = {internal_user}
default_internal_group = {internal_group}
default_login_user = {login_user}
mail_uid = {mail_uid}
mail_gid = {mail_gid}
first_valid_uid = 0
first_valid_gid = 0
mail_location = maildir:{mail}/%u
mail_fsync = never
namespace inbox {{
  separator = /
  inbox = yes
}}
# Answer failed logins at once: the first passdb only adds "nodelay" (kept on
# failure, unlike fields from the passdb that fails), which skips both the
# auth failure delay and anvil's per-IP penalty (2-15 s on later logins).
passdb {{
  driver = static
  args = noauthenticate=y nodelay=y
  result_success = continue
}}
passdb {{
  driver = passwd-file
  args = {users}
}}
userdb {{
  driver = static
  args = uid={mail_uid} gid={mail_gid} home={mail}/%u
}}
service imap-login {{
  inet_listener imap {{
    address = {host}
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
"""

# Without root nothing may chroot or switch user.
DOVECOT_CONF_NONROOT = """\
service anvil {
  chroot =
}
service imap-login {
  chroot =
  user = $default_login_user
}
service auth {
  user = $default_internal_user
}
"""


def dovecot_binary() -> str | None:
    """Path of the dovecot master binary, or None when not installed."""
    return shutil.which("dovecot") or next((p for p in ("/usr/sbin/dovecot",) if os.access(p, os.X_OK)), None)


def _doveadm() -> str:
    return shutil.which("doveadm") or "/usr/bin/doveadm"


class DovecotServer:
    """Start/stop a throwaway dovecot; a context manager yielding ``ImapServer``.

    Startup (to a successful LOGIN) takes about 0.07 s and stop() 0.01 s,
    so the ``imap_server`` fixture starts a fresh one for every test.
    """

    def __init__(
        self,
        user: str = "bot",
        password: str | None = None,
        host: str = LOCALHOST,
        port: int | None = None,
        start_timeout: float = 10.0,
    ):
        self.user = user
        self.password = password or secrets.token_hex(12)
        self.host = host
        self.port = port
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen | None = None
        self.server: ImapServer | None = None
        self.workdir: Path | None = None
        self.startup_seconds: float | None = None

    def __enter__(self) -> ImapServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _write_config(self, workdir: Path, port: int) -> Path:
        if os.geteuid() == 0:
            for name in ("dovecot", "dovenull"):
                try:
                    pwd.getpwnam(name)
                except KeyError:
                    raise ServerStartError(
                        f"system user {name!r} missing (it comes with dovecot-core); " + SETUP_HINT
                    ) from None
            internal_user, internal_group, login_user = "dovecot", "dovecot", "dovenull"
            mail_uid = mail_gid = 65534  # nobody / nogroup
        else:
            internal_user = login_user = pwd.getpwuid(os.geteuid()).pw_name
            internal_group = grp.getgrgid(os.getegid()).gr_name
            mail_uid, mail_gid = os.geteuid(), os.getegid()

        # The temp dir must be traversable by the unprivileged dovecot
        # processes (auth reads the passwd-file, imap runs as mail_uid).
        workdir.chmod(0o711)
        mail = workdir / "mail"
        mail.mkdir()
        os.chown(mail, mail_uid, mail_gid)

        users = workdir / "users"  # dovecot's passwd-file
        users.write_text(f"{self.user}:{{PLAIN}}{self.password}::::::\n")
        users.chmod(0o600)
        if os.geteuid() == 0:
            os.chown(users, pwd.getpwnam(internal_user).pw_uid, 0)

        conf = DOVECOT_CONF.format(
            host=self.host,
            port=port,
            run=workdir / "run",
            state=workdir / "state",
            log=workdir / "dovecot.log",
            internal_user=internal_user,
            internal_group=internal_group,
            login_user=login_user,
            mail_uid=mail_uid,
            mail_gid=mail_gid,
            mail=mail,
            users=users,
        )
        if os.geteuid() != 0:
            conf += DOVECOT_CONF_NONROOT
        path = workdir / "dovecot.conf"
        path.write_text(conf)
        return path

    def start(self) -> ImapServer:
        binary = dovecot_binary()
        if binary is None:
            raise ServerStartError("dovecot is not installed; " + SETUP_HINT)
        t0 = time.monotonic()
        self.workdir = workdir = _short_tmpdir("bpbot-dovecot-")
        port = self.port or free_port(self.host)
        conf = self._write_config(workdir, port)
        password_file = workdir / "imap-password"
        password_file.write_text(self.password)
        password_file.chmod(0o600)
        self.server = ImapServer(
            host=self.host,
            port=port,
            user=self.user,
            password=self.password,
            password_file=password_file,
            workdir=workdir,
            config=conf,
            log_file=workdir / "dovecot.log",
        )
        cmd = [binary, "-F", "-c", str(conf)]
        # If this process dies without stop() (SIGKILL, CI timeout), take
        # dovecot down with it instead of leaving it running in its own session.
        # Note: the signal fires when the *thread* that started it exits.
        setpriv = shutil.which("setpriv")
        if setpriv and sys.platform.startswith("linux"):
            cmd = [setpriv, "--pdeathsig", "KILL", "--", *cmd]
        stderr = open(workdir / "dovecot.stderr", "wb")  # noqa: SIM115
        with stderr:
            self.proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=stderr,
                stderr=stderr,
                start_new_session=True,
            )
        try:
            self._wait_ready(t0)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - t0
        return self.server

    def _wait_ready(self, t0: float) -> None:
        assert self.proc is not None and self.server is not None
        deadline = t0 + self.start_timeout
        last: BaseException | None = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerStartError(self._failure(f"dovecot exited ({self.proc.returncode})"))
            try:
                client = self.server.connect(timeout=2)
                client.logout()
                return
            except Exception as e:  # refused until bound; login may race auth
                last = e
                time.sleep(0.02)
        raise ServerStartError(
            self._failure(f"dovecot not ready after {self.start_timeout:.0f} s (last error: {last!r})")
        )

    def _failure(self, what: str) -> str:
        assert self.workdir is not None
        parts = [what]
        for name in ("dovecot.stderr", "dovecot.log"):
            p = self.workdir / name
            text = p.read_text(errors="replace").strip() if p.exists() else ""
            parts.append(f"--- {name} ---\n{text or '(empty)'}")
        parts.append(f"--- dovecot.conf ---\n{(self.workdir / 'dovecot.conf').read_text()}")
        return "\n".join(parts)

    def stop(self) -> None:
        """SIGKILL dovecot's whole process group and remove the temp dir."""
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
            self.proc = None
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None


# --------------------------------------------------------------------------
# SMTP (aiosmtpd)
# --------------------------------------------------------------------------


@dataclass
class ReceivedMessage:
    """One message as the SMTP server received it."""

    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    message: EmailMessage
    checked: bool = False

    @property
    def subject(self) -> str:
        return str(self.message.get("Subject", ""))

    def summary(self) -> str:
        return f"from={self.mail_from} to={','.join(self.rcpt_tos)} subject={self.subject!r}"


class LeftoverMessagesError(AssertionError):
    """Messages were received but never consumed with ``take()``."""


class _RecordingHandler:
    def __init__(self, owner: SmtpServer):
        self.owner = owner

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd API)
        reply = self.owner.failure
        if reply:
            return reply
        raw = envelope.content
        if isinstance(raw, str):  # only when decode_data=True
            raw = raw.encode("utf-8", "surrogateescape")
        msg = BytesParser(policy=email.policy.default).parsebytes(raw)
        self.owner._record(
            ReceivedMessage(
                mail_from=envelope.mail_from,
                rcpt_tos=list(envelope.rcpt_tos),
                raw=raw,
                message=msg,
            )
        )
        return "250 2.0.0 Message accepted for delivery"


class SmtpServer:
    """An in-process SMTP server that records what it receives.

    - ``host``, ``port``: where it listens (the port survives ``stop()``/
      ``start()``, so a test can simulate an outage of the relay).
    - ``messages``: a snapshot list of every ``ReceivedMessage`` so far.
    - ``wait_for(n, timeout)``: wait until ``n`` messages arrived in total;
      returns them without marking them checked.
    - ``take(n=None, timeout)``: return the oldest ``n`` unchecked messages
      (waiting for them) or, with ``n=None``, all unchecked ones now; marks
      them checked.
    - ``unchecked()``, ``check_leftovers()``: the leftover check.
    - ``allow_leftovers = True``: opt out of the leftover check.
    - ``failure = "451 4.3.0 Try again later"``: answer DATA with that reply
      instead of accepting (``None`` accepts again); nothing is recorded.
    """

    def __init__(self, host: str = LOCALHOST, port: int | None = None):
        self.host = host
        self.port = port or free_port(host)
        self.failure: str | None = None
        self.allow_leftovers = False
        self._messages: list[ReceivedMessage] = []
        self._cond = threading.Condition()
        self._controller: Controller | None = None

    def __enter__(self) -> SmtpServer:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._controller is not None

    def start(self) -> None:
        if self._controller is not None:
            return
        # A Controller's loop is closed by stop(), so make a new one each time.
        controller = Controller(
            _RecordingHandler(self), hostname=self.host, port=self.port, ready_timeout=10.0
        )
        controller.start()
        self._controller = controller

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def _record(self, msg: ReceivedMessage) -> None:
        with self._cond:
            self._messages.append(msg)
            self._cond.notify_all()

    @property
    def messages(self) -> list[ReceivedMessage]:
        with self._cond:
            return list(self._messages)

    def wait_for(self, n: int, timeout: float = 5.0) -> list[ReceivedMessage]:
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._messages) >= n, timeout):
                raise AssertionError(
                    f"expected {n} message(s) within {timeout} s, got {len(self._messages)}:"
                    + "".join(f"\n  {m.summary()}" for m in self._messages)
                )
            return list(self._messages)

    def unchecked(self) -> list[ReceivedMessage]:
        with self._cond:
            return [m for m in self._messages if not m.checked]

    def take(self, n: int | None = None, timeout: float = 5.0) -> list[ReceivedMessage]:
        with self._cond:

            def pending() -> list[ReceivedMessage]:
                return [m for m in self._messages if not m.checked]

            if n is None:
                got = pending()
            else:
                if not self._cond.wait_for(lambda: len(pending()) >= n, timeout):
                    raise AssertionError(
                        f"expected {n} unchecked message(s) within {timeout} s, got "
                        f"{len(pending())}:" + "".join(f"\n  {m.summary()}" for m in pending())
                    )
                got = pending()[:n]
            for m in got:
                m.checked = True
            return got

    def check_leftovers(self) -> None:
        """Raise ``LeftoverMessagesError`` if a received message was not taken."""
        left = self.unchecked()
        if left:
            raise LeftoverMessagesError(
                f"{len(left)} received message(s) never checked with smtp_server.take() "
                "(use take(), or mark the test @pytest.mark.smtp_leftovers_ok):"
                + "".join(f"\n  {m.summary()}" for m in left)
            )


def wait_port_closed(host: str, port: int, timeout: float = 5.0) -> None:
    """Wait until nothing accepts connections on ``host:port``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                pass
        except OSError:
            return
        time.sleep(0.02)
    raise AssertionError(f"{host}:{port} still accepts connections")


__all__ = [
    "DovecotServer",
    "ImapServer",
    "LeftoverMessagesError",
    "ReceivedMessage",
    "ServerStartError",
    "SmtpServer",
    "dovecot_binary",
    "free_port",
    "wait_port_closed",
]

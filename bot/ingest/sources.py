"""Sources of list mail: IMAP (imapclient), Maildir and mbox.

Each ``poll()`` spools what is new through ``spool.spool`` and returns the
count. The IMAP cursor is (UIDVALIDITY, last UID); a changed UIDVALIDITY
means a rescan, deduplicated by Message-ID in the spool.
"""

from __future__ import annotations

import contextlib
import logging
import mailbox
import re
from pathlib import Path
from typing import TYPE_CHECKING

from bot.config.rules import Rules
from bot.errors import InfraError
from bot.ingest import spool, tags
from bot.ingest.lists import ListRule
from bot.state import State

if TYPE_CHECKING:
    from imapclient import IMAPClient

log = logging.getLogger(__name__)
MISSING_TRIES = 3  # polls before a UID listed without its body is given up
FETCH_CHUNK = 200


class LocalSource:
    """A Maildir or mbox file: every poll reads it and spools unseen messages."""

    def __init__(self, rules: Rules, state: State):
        self.rules, self.state = rules, state
        src = rules.source
        self.path = Path(src.path)
        self.name = f"{src.kind}:{self.path}"
        self._seen: set[str] = set()

    def _read(self) -> list[tuple[str, bytes]]:
        if not self.path.exists():
            raise SourceError(f"{self.path} does not exist")
        if self.rules.source.kind == "maildir":
            box = mailbox.Maildir(self.path, factory=None, create=False)
            return sorted(((key, box.get_bytes(key)) for key in box.iterkeys()),
                          key=lambda kv: _maildir_order(box, kv[0]))
        return [(str(i), raw) for i, raw in enumerate(read_mbox(self.path.read_bytes()))]

    def poll(self) -> int:
        items = [(k, raw) for k, raw in self._read() if k not in self._seen]
        if not items:
            return 0
        result = spool.spool(self.state, self.name, [raw for _, raw in items],
                             bot_address=self.rules.bot_address, loop_id=self.rules.loop_id,
                             max_bytes=self.rules.max_message_bytes,
                             lists=ListRule.of(self.rules), tree_tags=tags.allowed_tags(self.rules))
        self._seen.update(k for k, _ in items)
        return result.new

    def close(self) -> None:
        pass


# git mailsplit's is_from_line(): "From " then something ending in a time and
# a year (asctime: "From 1a2b... Mon Sep 17 00:00:00 2001"), so a body line
# such as "From the user's side..." does not start a new mail.
_FROM_LINE = re.compile(rb"^From \S.*\d:\d\d(:\d\d)? (.* )?\d{4}( [+-]\d{4})?\s*$")
_MBOXRD = re.compile(rb"^>(>*From )", re.M)


def read_mbox(data: bytes) -> list[bytes]:
    """Mails of an mbox, split as git mailsplit does: blank or whitespace lines before the
    first "From " line are skipped; only "From " lines that look like mbox
    separators split; mboxrd's ">From " escaping is undone when the file says
    it is mboxrd (b4 and public-inbox write "From mboxrd@z"); a file starting
    with a header line (no separator at all) is one mail."""
    data = data.lstrip(b" \t\r\n\v\f")  # git mailsplit skips leading isspace()
    if not data:
        return []
    if not data.startswith(b"From ") or not _FROM_LINE.match(data.split(b"\n", 1)[0]):
        return [data]
    mboxrd = data.startswith(b"From mboxrd@z")
    mails: list[bytes] = []
    current: list[bytes] = []
    for line in data.splitlines(keepends=True):
        if line.startswith(b"From ") and _FROM_LINE.match(line.rstrip(b"\r\n")):
            if current:
                mails.append(_finish(current, mboxrd))
            current = []
            continue
        current.append(line)
    mails.append(_finish(current, mboxrd))
    return [m for m in mails if m.strip()]


def _finish(lines: list[bytes], mboxrd: bool) -> bytes:
    raw = b"".join(lines)
    return _MBOXRD.sub(rb"\1", raw) if mboxrd else raw


def _maildir_order(box: mailbox.Maildir, key: str) -> tuple:
    # Delivery order: file names start with the delivery time.
    return (key.split(".", 1)[0], key)


class SourceError(InfraError, RuntimeError):
    """A mail source cannot be read now (the server, the network): polled again."""


class ImapSource:
    """IMAP with BODY.PEEK[] (never sets \\Seen), cursor saved with the mail."""

    def __init__(self, rules: Rules, state: State):
        self.rules, self.state = rules, state
        src = rules.source
        self.name = f"imap:{src.user}@{src.host}:{src.port}/{src.folder}"
        self.client: IMAPClient | None = None
        self.uidvalidity = 0
        self._missing: dict[int, int] = {}  # UID -> polls that brought it without a body

    def connect(self) -> IMAPClient:
        if self.client is not None:
            return self.client
        src = self.rules.source
        try:
            password = Path(src.password_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SourceError(f"cannot read IMAP password file {src.password_file}: {exc}") from exc
        # Here, not at module level: `bpbot check` reads mbox files from this
        # module and has no use for the IMAP client (nor its import time).
        from imapclient import IMAPClient
        client = IMAPClient(src.host, port=src.port, ssl=src.ssl, timeout=60)
        client.login(src.user, password)
        info = client.select_folder(src.folder, readonly=True)
        self.uidvalidity = int(info[b"UIDVALIDITY"])
        self.client = client
        log.info("IMAP connected to %s (UIDVALIDITY %d)", self.name, self.uidvalidity)
        return client

    def poll(self) -> int:
        client = self.connect()
        client.noop()  # refreshes the folder state in readonly mode
        cursor = spool.get_cursor(self.state, self.name)
        last = 0
        if cursor is not None and cursor.uidvalidity == self.uidvalidity:
            last = cursor.last_uid
        elif cursor is not None:
            log.warning("UIDVALIDITY of %s changed (%d -> %d): rescanning, deduplicated by "
                        "Message-ID", self.name, cursor.uidvalidity, self.uidvalidity)
        # "N:*" always returns the highest UID even when it is below N: filter here.
        uids = sorted(u for u in client.search(["UID", f"{last + 1}:*"]) if u > last)
        new = 0
        for i in range(0, len(uids), FETCH_CHUNK):
            chunk = uids[i:i + FETCH_CHUNK]
            data = client.fetch(chunk, ["BODY.PEEK[]"])
            chunk, held = self._fetched_prefix(chunk, data)
            raws = [data[u][b"BODY[]"] for u in chunk if u in data and b"BODY[]" in data[u]]
            if chunk:
                result = spool.spool(
                    self.state, self.name, raws, bot_address=self.rules.bot_address,
                    loop_id=self.rules.loop_id, max_bytes=self.rules.max_message_bytes,
                    cursor=spool.Cursor(self.name, self.uidvalidity, chunk[-1]),
                    lists=ListRule.of(self.rules), tree_tags=tags.allowed_tags(self.rules))
                new += result.new
            if held:
                break  # the cursor stays before the UID that came without its body
        return new

    def _fetched_prefix(self, chunk: list[int], data: dict) -> tuple[list[int], bool]:
        """The UIDs up to the first one the server listed but sent no body for
        (expunged meanwhile, or a server error): the cursor must not pass it, or
        the mail would be lost without a word. After MISSING_TRIES polls it is
        given up, with an error in the log naming it."""
        for n, uid in enumerate(chunk):
            if uid in data and b"BODY[]" in data[uid]:
                continue
            tries = self._missing[uid] = self._missing.get(uid, 0) + 1
            if tries < MISSING_TRIES:
                log.warning("IMAP %s: UID %d came without its body (try %d of %d); "
                            "reading it again at the next poll", self.name, uid, tries,
                            MISSING_TRIES)
                return chunk[:n], True
            log.error("IMAP %s: UID %d came without its body %d times: skipped (was it "
                      "expunged?)", self.name, uid, tries)
        return chunk, False

    def idle_wait(self, seconds: float) -> bool:
        """Block in IDLE up to ``seconds``; True when the server announced something."""
        client = self.connect()
        client.idle()
        try:
            responses = client.idle_check(timeout=seconds)
        finally:
            client.idle_done()
        return any(r[1] in (b"EXISTS", b"RECENT") for r in responses if len(r) > 1)

    def close(self) -> None:
        if self.client is not None:
            with contextlib.suppress(Exception):  # closing a dead connection
                self.client.logout()
            self.client = None


def open_source(rules: Rules, state: State) -> LocalSource | ImapSource:
    if rules.source.kind == "imap":
        return ImapSource(rules, state)
    return LocalSource(rules, state)

"""What mail commands do to state: confirmation tokens, status, retests.

Called by the command classes in ``bot/commands/parse.py`` inside the one
transaction in which ``bot/commands/runner.py`` answers a command mail.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

import sqlite_utils

from bot import status as status_table
from bot import store
from bot.commands import dkim as command_dkim
from bot.commands.data import DONE, IGNORED, ParsedMail, Result, msgid_argument
from bot.config.rules import Rules
from bot.model import VersionState
from bot.state import State, dumps, loads
from bot.store import views

log = logging.getLogger(__name__)
QUEUE_STATES = (VersionState.RUNNING, VersionState.READY, VersionState.WAITING)
MAX_SEARCH_SERIES = 5
# Unused, unexpired tokens one address may hold: a forged sender can make the
# bot mail a stranger a few confirmation requests, not a stream of them.
MAX_OUTSTANDING_TOKENS = 3


@dataclass
class Context:
    """Everything a command may use while one mail is answered."""

    db: sqlite_utils.Database  # inside the mail's transaction
    state: State
    rules: Rules
    mail: ParsedMail
    now: float
    dkim: command_dkim.Verdict = command_dkim.NOT_CHECKED  # for maintainers' retests
    pending: list[dict] = field(default_factory=list)  # actions waiting for a confirmation
    summaries: list[str] = field(default_factory=list)
    token: str = ""  # the token being confirmed, while confirming
    signature_used: bool = False  # this mail's DKIM signature has run a retest

    @property
    def sender(self) -> str:
        return self.mail.from_addr

    def ask_confirmation(self, command: str, args: list[str], summary: str, **extra) -> str:
        """'' when the action waits for this mail's token, else why no token is given."""
        if not self.pending:
            waiting = outstanding_tokens(self.db, self.sender, self.now)
            if len(waiting) >= MAX_OUTSTANDING_TOKENS:
                return (f"{len(waiting)} confirmations already wait for {self.sender}, the "
                        f"most there can be; answer one of them, or send the command again "
                        f"after {when(min(waiting))}, when the first expires. If you did not "
                        "ask for them, ignore them: nothing changes.")
        self.pending.append(dict(command=command, args=list(args), **extra))
        self.summaries.append(summary)
        return ""


class Confirmable(Protocol):
    """A command that waits for a token (bot/commands/parse.py: CONFIRMABLE)."""

    def confirmed(self, ctx: Context, action: dict) -> str:
        """Carry out an action of a confirmed token; one line saying what happened."""


def when(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(at))


# --- confirmation tokens ---------------------------------------------------


def outstanding_tokens(db: sqlite_utils.Database, address: str, at: float) -> list[float]:
    """The expiry times of the unused, unexpired tokens of ``address``."""
    return [r[0] for r in db.conn.execute(
        "SELECT expires_at FROM tokens WHERE address = ? AND used_at IS NULL AND expires_at > ?",
        (address, at))]


def issue_token(ctx: Context) -> tuple[str, float]:
    """One token for every action of this mail; returns (token, expiry)."""
    token = secrets.token_hex(10)
    expires = ctx.now + ctx.rules.commands.token_days * 86400
    ctx.db.conn.execute(
        "INSERT INTO tokens (token, address, actions, request_msgid, created_at, expires_at)"
        " VALUES (?,?,?,?,?,?)", (token, ctx.sender, dumps(ctx.pending), ctx.mail.msgid, ctx.now,
                                  expires))
    return token, expires


def confirm(ctx: Context, token: str, confirmable: Mapping[str, Confirmable]) -> Result:
    """Carry out the actions of ``token`` with the commands that stored them."""
    row = ctx.db.conn.execute("SELECT address, actions, expires_at, used_at FROM tokens"
                              " WHERE token = ?", (token,)).fetchone()
    if row is None:
        return Result(IGNORED, [f"No confirmation is waiting for token {token}. Check that you "
                                "copied the whole line, or send the command again for a new "
                                "token."])
    address, actions, expires_at, used_at = row
    if used_at is not None:
        return Result(IGNORED, [f"Token {token} was already used on {when(used_at)}; nothing "
                                "more to do."])
    if address != ctx.sender:
        return Result(IGNORED, [f"Token {token} was mailed to another address; confirm from "
                                "the address that received it."])
    if ctx.now > expires_at:
        return Result(IGNORED, [f"Token {token} expired on {when(expires_at)} (tokens last "
                                f"{ctx.rules.commands.token_days} days). Send the command "
                                "again for a new one."])
    ctx.db.conn.execute("UPDATE tokens SET used_at = ?, used_by = ? WHERE token = ?",
                        (ctx.now, ctx.mail.msgid, token))
    ctx.token = token
    done = [confirmable[a["command"]].confirmed(ctx, a) for a in loads(actions, [])]
    return Result(DONE, done or ["Nothing was waiting for this token."])


# --- finding series --------------------------------------------------------


def version_for(db: sqlite_utils.Database, msgid: str, depth: int = 1) -> dict | None:
    """The series version a Message-ID belongs to: one of its mails, our report
    on it, its thread root, or (one step up) the mail a reply answers."""
    row = views.version_for_msgid(db, msgid)
    if row is not None:
        return row
    if depth:
        msg = _one(db, "SELECT in_reply_to, refs FROM messages WHERE msgid = ?", (msgid,))
        if msg is not None:
            for parent in [msg["in_reply_to"], *reversed(loads(msg["refs"], []))]:
                if parent and (row := version_for(db, parent, depth - 1)) is not None:
                    return row
    return None


def _one(db: sqlite_utils.Database, sql: str, params: tuple) -> dict | None:
    rows = list(db.query(sql, params))
    return rows[0] if rows else None


def thread_version(ctx: Context) -> dict | None:
    """The version the command mail answers, if it is a reply in a series' thread."""
    for msgid in ctx.mail.thread:
        if (row := version_for(ctx.db, msgid)) is not None:
            return row
    return None


# --- status ----------------------------------------------------------------


def status(ctx: Context, args: tuple[str, ...]) -> Result:
    if len(args) == 1 and args[0].lower() == "queue":
        return Result(DONE, queue_lines(ctx))
    if len(args) == 1 and msgid_argument(args[0]):
        msgid = msgid_argument(args[0])
        version = version_for(ctx.db, msgid)
        if version is None:
            return Result(IGNORED, [f"No series with a mail <{msgid}> is known to the bot."])
        return Result(DONE, series_lines(ctx, [version["series_id"]]))
    if args:
        ids = search(ctx.db, args)
        if not ids:
            return Result(IGNORED, [f"No series subject contains all of: {' '.join(args)}."])
        return Result(DONE, series_lines(ctx, ids))
    version = thread_version(ctx)
    if version is not None:
        return Result(DONE, series_lines(ctx, [version["series_id"]]))
    return Result(DONE, queue_lines(ctx))


def search(db: sqlite_utils.Database, words: tuple[str, ...]) -> list[int]:
    return views.series_with_words(db, words, MAX_SEARCH_SERIES)


def series_lines(ctx: Context, series_ids: list[int]) -> list[str]:
    rows = {r["id"]: r for r in status_table.rows(ctx.state)}
    lines: list[str] = []
    for sid in series_ids:
        ser = _one(ctx.db, "SELECT * FROM series WHERE id = ?", (sid,))
        versions = [rows[i] for i in views.series_version_ids(ctx.db, sid) if i in rows]
        if ser is None or not versions:
            continue
        if lines:
            lines.append("")
        lines.append(f'"{versions[-1]["subject"]}" from {ser["author_addr"] or "unknown"}:')
        for r in versions:
            lines.append(f"  v{r['revision']:<3}{r['state']:<12}{r['verdict'] or '-':<13}"
                         f"{status_table._kernels(r['steps'])}".rstrip())
            if r["base_commit"]:
                lines.append(f"        base {r['base']} at {r['base_commit'][:12]}")
            if r["state_reason"]:
                lines.append(f"        {r['state_reason']}")
    return lines


def queue_lines(ctx: Context) -> list[str]:
    rows = store.queue_order(ctx.db)
    if not rows:
        return ["The queue is empty: every series seen so far has been answered."]
    counts = {s: sum(1 for r in rows if r["state"] == s) for s in QUEUE_STATES}
    lines = [f"Queue: {counts[VersionState.RUNNING]} running, {counts[VersionState.READY]} waiting"
             f" to be tested, {counts[VersionState.WAITING]} waiting for missing patches.", ""]
    for r in rows:
        subject = r["subject"] if len(r["subject"]) <= 50 else r["subject"][:47] + "..."
        reason = f" ({r['state_reason']})" if r["state"] == VersionState.WAITING and \
            r["state_reason"] else ""
        lines.append(f"  {r['state']:<9} v{r['revision']:<3}{subject}{reason}")
    return lines


# --- retest ----------------------------------------------------------------


def retest(ctx: Context, args: tuple[str, ...]) -> Result:
    full = any(a.lower() == "full" for a in args)
    ids = [msgid_argument(a) for a in args if a.lower() != "full"]
    if ctx.sender not in ctx.rules.commands.maintainers:
        return Result(IGNORED, [f"retest is for the maintainers named in the bot's rules, and "
                                f"{ctx.sender} is not one of them. To have a series tested "
                                "again, mail a new version of it."])
    version = version_for(ctx.db, ids[0]) if ids else thread_version(ctx)
    if version is None:
        what = f"with a mail <{ids[0]}>" if ids else "in the thread you answered"
        return Result(IGNORED, [f"No series {what} is known to the bot; give the Message-ID "
                                "of its cover letter or of one of its patches."])
    problem = retest_problem(version)
    if problem:
        return Result(IGNORED, [problem])
    name = _version_name(version, full)
    if ctx.rules.commands.require_dkim:
        return dkim_retest(ctx, version, full)
    problem = ctx.ask_confirmation("retest", list(args), f"retest {name}",
                                   version_id=version["id"], full=full)
    if problem:
        return Result(IGNORED, [problem])
    return Result(DONE, [f"Confirmation needed to retest {name} (see below)."])


def dkim_retest(ctx: Context, version: dict, full: bool) -> Result:
    """A retest vouched for by DKIM, once per signature."""
    if not ctx.dkim.passed:
        return Result(IGNORED, [f"retest needs a passing DKIM signature of your domain "
                                f"(rules: commands.require_dkim), and this mail has none: "
                                f"{ctx.dkim.why}."])
    used = ctx.db.conn.execute("SELECT msgid, used_at FROM dkim_used WHERE signature = ?",
                               (ctx.dkim.signature,)).fetchone()
    if used is not None and not ctx.signature_used:  # another line of this mail is fine
        log.warning("replayed DKIM signature in %s (first used by %s)", ctx.mail.msgid, used[0])
        return Result(IGNORED, [f"This DKIM signature already asked for a retest, in "
                                f"<{used[0]}> on {when(used[1])}; a signed mail works once."])
    ctx.db.conn.execute("INSERT OR IGNORE INTO dkim_used (signature, msgid, used_at)"
                        " VALUES (?,?,?)", (ctx.dkim.signature, ctx.mail.msgid, ctx.now))
    ctx.signature_used = True
    return Result(DONE, [queue_retest(ctx, version, full, "dkim")])


def retest_confirmed(ctx: Context, action: dict) -> str:
    if ctx.sender not in ctx.rules.commands.maintainers:
        return f"Not retested: {ctx.sender} is no longer a maintainer in the bot's rules."
    version = store.version(ctx.db, action["version_id"])
    if version is None:
        return "Not retested: the series is no longer known to the bot."
    problem = retest_problem(version)
    return f"Not retested: {problem}" if problem else \
        queue_retest(ctx, version, bool(action.get("full")), "confirmed")


def retest_problem(version: dict) -> str:
    name = f"v{version['revision']} \"{version['subject']}\""
    if version["state"] == VersionState.RUNNING:
        return f"{name} is being tested right now; its report is on the way."
    if version["state"] == VersionState.UNTESTABLE:
        return f"{name} cannot be tested: {version['state_reason']}."
    if not version["complete"]:
        got = ", ".join(str(n) for n in loads(version["present"], [])) or "none"
        return (f"{name} is incomplete (got {got} of {version['expected']}); there is nothing "
                "to test until every patch has arrived.")
    return ""


def queue_retest(ctx: Context, version: dict, full: bool, auth: str) -> str:
    store.queue_retest(ctx.db, version["id"], f"retest asked by {ctx.sender}", full, ctx.now)
    ctx.db.conn.execute(
        "INSERT INTO retests (version_id, requested_by, full_matrix, msgid, auth, created_at)"
        " VALUES (?,?,?,?,?,?)", (version["id"], ctx.sender, int(full), ctx.mail.msgid, auth,
                                  ctx.now))
    log.info("retest of version %d asked by %s (full=%s, %s)", version["id"], ctx.sender, full,
             auth)
    return (f"Queued a retest of {_version_name(version, full)}; the report goes to its "
            "thread as usual.")


def _version_name(version: dict, full: bool) -> str:
    name = f"v{version['revision']} \"{version['subject']}\""
    return name + (" on every kernel" if full else "")

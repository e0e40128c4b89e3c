"""Answer spooled command mails: one reply each, exactly once.

For every command mail not handled yet (classified ``command``, or sent to a
``bot+command@`` sub-address when the rules allow them): parse it (pure,
``bot/commands/parse.py``), stay silent when it must never be answered, apply the
rate limits, run each command line, and queue one reply with Done / Ignored
/ Unknown sections. The reply, the record of the mail and every change the
commands make are written in one transaction, and the outbox key is
``command:<message-id>``, so a restart never answers a mail twice.

Rate limits (rules ``[commands]``), so that forged senders can neither
delay a maintainer nor make the bot mail strangers: maintainers' mail is
answered first, then subscribers', then the rest, each in arrival order. A
sender past ``per_sender_per_hour`` replies gets one notice, then silence
until the hour has passed; past ``overall_per_hour`` replies in all, mail
from maintainers and subscribers waits for the next pass and mail from
anyone else is dropped (recorded with the reason). Every argument a reply
repeats is cut to 200 characters and a reply to 16 KiB.
"""

from __future__ import annotations

import logging
import textwrap
import time
from collections.abc import Callable
from email.message import EmailMessage

from bot.commands import actions as command_actions
from bot.commands import dkim as command_dkim
from bot.commands import parse as commands
from bot.commands.actions import Context, when
from bot.commands.dkim import DnsFunc
from bot.commands.parse import DONE, IGNORED, CommandLine, ParsedMail, Result
from bot.config.rules import Rules
from bot.ingest.lists import ListRule
from bot.reply import outbox, report
from bot.state import State

log = logging.getLogger(__name__)
WIDTH = 72
WINDOW = 3600
MAX_REPLY_BYTES = 16 * 1024
# Commands that change who gets mail: never from mail that came through a list.
NOT_FROM_LISTS = ("subscribe", "unsubscribe", "confirm")


def process_pending(state: State, rules: Rules, clock: Callable[[], float] | None = None,
                    dnsfunc: DnsFunc | None = None) -> int:
    """Handle every command mail not handled yet; returns how many replies were queued."""
    clock = clock or time.time
    replies = 0
    known = known_senders(state, rules)
    start = clock()
    for row in by_priority(pending(state, rules), rules, known):
        at = clock()
        try:
            replies += handle(state, rules, row, at, dnsfunc, known)
        except Exception as exc:  # noqa: BLE001 - one bad mail must not stop the others
            log.exception("command mail %s could not be handled", row["msgid"])
            with state.tx() as db:
                _record(db, row["msgid"], row["from_addr"], "error",
                        f"{type(exc).__name__}: {exc}", at)
    _log_over_limit(state, rules, start, clock())
    return replies


def _log_over_limit(state: State, rules: Rules, start: float, at: float) -> None:
    """One line a pass (not one a mail: a flood would flood the log too)."""
    if replies_in_window(state.db, at) < rules.commands.overall_per_hour:
        return
    dropped = state.one("SELECT COUNT(*) AS n FROM command_mails WHERE outcome = 'dropped'"
                        " AND processed_at >= ?", (start,))["n"]
    waiting = len(pending(state, rules))
    if dropped or waiting:
        log.warning("command replies: the overall limit of %d an hour is reached: %d mail(s) "
                    "from strangers dropped, %d from maintainers and subscribers wait",
                    rules.commands.overall_per_hour, dropped, waiting)


def pending(state: State, rules: Rules) -> list[dict]:
    sub = ""
    params: list = []
    if rules.commands.subaddress:
        # bot+help@ is not the bot's address, so classify() files it as other/reply.
        sub = " OR (m.kind IN ('other', 'reply') AND instr(m.raw, ?) > 0)"
        params.append((rules.bot_address.split("@")[0] + "+").encode())
    return state.query(
        "SELECT m.msgid, m.raw, m.from_addr, m.kind FROM messages m WHERE (m.kind = 'command'"
        f"{sub}) AND NOT EXISTS (SELECT 1 FROM command_mails c WHERE c.msgid = m.msgid)"
        " ORDER BY m.received_at, m.msgid", params)


def known_senders(state: State, rules: Rules) -> set[str]:
    """Maintainers and subscribers: their mail waits out the overall limit."""
    subscribers = {r["address"] for r in state.query("SELECT DISTINCT address FROM subscriptions")}
    return set(rules.commands.maintainers) | subscribers


def by_priority(rows: list[dict], rules: Rules, known: set[str]) -> list[dict]:
    """Maintainers first, then the other known senders, then the rest; each in arrival order."""
    def rank(row: dict) -> int:
        sender = (row["from_addr"] or "").lower()
        return 0 if sender in rules.commands.maintainers else 1 if sender in known else 2
    return sorted(rows, key=rank)


def replies_in_window(db, at: float) -> int:
    row = db.conn.execute("SELECT COUNT(*) FROM command_mails WHERE replied = 1 AND"
                          " processed_at > ?", (at - WINDOW,)).fetchone()
    return row[0] if row else 0


def handle(state: State, rules: Rules, row: dict, at: float, dnsfunc: DnsFunc | None = None,
           known: frozenset[str] | set[str] = frozenset()) -> int:
    """Answer one command mail, or record why not; returns 1 when a reply was queued."""
    raw, msgid = bytes(row["raw"]), row["msgid"]
    conf = rules.commands
    parsed = commands.parse(raw, rules.bot_address, rules.loop_id, conf.max_lines,
                            conf.subaddress, ListRule.of(rules))
    sender = parsed.from_addr or row["from_addr"]
    silent = parsed.silent
    if not silent and not parsed.lines and not parsed.over_limit and \
            (parsed.is_reply or row["kind"] != "command"):
        silent = "no command lines (a reply in a thread, or only prose)"
    if silent:
        log.info("command mail %s from %s: not answered: %s", msgid, sender, silent)
        with state.tx() as db:
            _record(db, msgid, sender, "silent", silent, at)
        return 0
    verdict = command_dkim.NOT_CHECKED
    if conf.require_dkim and sender in conf.maintainers and \
            any(line.name == "retest" for line in parsed.lines):
        # DNS: before the write lock
        verdict = command_dkim.verdict(raw, sender, at, conf.token_days * 86400, dnsfunc)
    with state.tx() as db:
        if db.conn.execute("SELECT 1 FROM command_mails WHERE msgid = ?", (msgid,)).fetchone():
            return 0
        limit, until = sender_limit(db, rules, sender, at)
        if limit == "silent":
            _record(db, msgid, sender, "rate-limited", f"over the limit until {when(until)}", at)
            return 0
        if replies_in_window(db, at) >= conf.overall_per_hour:
            return over_overall_limit(db, rules, msgid, sender, at, known)
        if limit == "notice":
            msg, rcpts = compose(rules, parsed, notice_lines(rules, until), f"command:{msgid}")
            outbox.queue(db, f"command:{msgid}", "command", msg, rcpts)
            _record(db, msgid, sender, "notice", f"over the limit until {when(until)}", at,
                    replied=1)
            return 1
        ctx = Context(db, state, rules, parsed, at, dkim=verdict)
        results, unknown = run_lines(ctx)
        token, expires = command_actions.issue_token(ctx) if ctx.pending else ("", 0.0)
        body = render(rules, parsed, results, unknown, ctx.summaries, token, expires)
        counts = (sum(r.status == DONE for _, r in results),
                  sum(r.status == IGNORED for _, r in results), len(unknown))
        msg, rcpts = compose(rules, parsed, body, f"command:{msgid}", token=token, counts=counts)
        outbox.queue(db, f"command:{msgid}", "command", msg, rcpts)
        _record(db, msgid, sender, "answered", f"done {counts[0]}, ignored {counts[1]}, "
                f"unknown {counts[2]}", at, replied=1, counts=counts)
    log.info("command mail %s from %s answered (done %d, ignored %d, unknown %d)", msgid,
             sender, *counts)
    return 1


def over_overall_limit(db, rules: Rules, msgid: str, sender: str, at: float,
                       known: frozenset[str] | set[str]) -> int:
    """Past the overall limit: a known sender's mail waits, anyone else's is dropped."""
    n = rules.commands.overall_per_hour
    if sender in known:
        log.debug("command mail %s from %s waits for the next hour", msgid, sender)
        return 0
    _record(db, msgid, sender, "dropped", f"the overall limit of {n} replies an hour was "
            "reached; mail from senders who are not maintainers or subscribers is not kept "
            "for later", at)
    log.debug("command mail %s from %s dropped", msgid, sender)
    return 0


def _record(db, msgid: str, sender: str, outcome: str, reason: str, at: float, replied: int = 0,
            counts: tuple[int, int, int] = (0, 0, 0)) -> None:
    db.conn.execute(
        "INSERT OR REPLACE INTO command_mails (msgid, sender, outcome, reason, replied, done,"
        " ignored, unknown, processed_at) VALUES (?,?,?,?,?,?,?,?,?)",
        (msgid, sender, outcome, reason, replied, *counts, at))


def sender_limit(db, rules: Rules, sender: str, at: float) -> tuple[str, float]:
    """('ok' | 'notice' | 'silent', when the sender is under the limit again)."""
    times = [r[0] for r in db.conn.execute(
        "SELECT processed_at FROM command_mails WHERE sender = ? AND outcome = 'answered'"
        " AND processed_at > ? ORDER BY processed_at", (sender, at - WINDOW))]
    limit = rules.commands.per_sender_per_hour
    if len(times) < limit:
        return "ok", at
    until = times[len(times) - limit] + WINDOW
    noticed = db.conn.execute("SELECT 1 FROM command_mails WHERE sender = ? AND outcome ="
                              " 'notice' AND processed_at > ?", (sender, at - WINDOW)).fetchone()
    return ("silent" if noticed else "notice"), until


def run_lines(ctx: Context) -> tuple[list[tuple[CommandLine, Result]], list[CommandLine]]:
    results: list[tuple[CommandLine, Result]] = []
    unknown: list[CommandLine] = []
    for line in ctx.mail.lines:
        if not line.name:
            unknown.append(line)
            continue
        cmd = commands.BY_NAME[line.name]
        problem = cmd.check(line.args)
        if line.name in NOT_FROM_LISTS and ctx.mail.via_list:
            results.append((line, Result(IGNORED, [
                f"{line.name} is not read in mail that came through a mailing list (this one "
                f"carries {' and '.join(ctx.mail.via_list)}): a list can never subscribe. "
                f"Mail {ctx.rules.bot_address} directly, from your own address."])))
        elif problem:
            results.append((line, Result(IGNORED, [f"{problem}; for example: {cmd.example}"])))
        else:
            results.append((line, cmd.process(ctx, line)))
    for line in ctx.mail.over_limit:
        results.append((line, Result(IGNORED, [
            f"Not read: at most {ctx.rules.commands.max_lines} command lines are read per mail "
            "(the Subject counts as one)."])))
    return results, unknown


# --- the reply -------------------------------------------------------------


def _wrap(text: str, indent: str = "") -> list[str]:
    """A paragraph wrapped to 72 columns; lines starting with a space are kept as
    they are (commands, tables), and so is a blank line."""
    if not text or text[0] in " >":
        return [indent + text if text else ""]
    return textwrap.wrap(text, WIDTH, initial_indent=indent, subsequent_indent=indent,
                         break_long_words=False, break_on_hyphens=False)


def defuse(lines: list[str]) -> list[str]:
    """Indent any line that would read as a command at the start of a line, so a
    reply quoted without '>' (Outlook) never sends commands back to the bot."""
    return [f"  {line}" if line and line[0] not in " >" and commands.read_line(line, "body")
            else line for line in lines]


def render(rules: Rules, parsed: ParsedMail, results: list[tuple[CommandLine, Result]],
           unknown: list[CommandLine], summaries: list[str], token: str,
           expires: float) -> list[str]:
    first = parsed.from_name.split()[0] if parsed.from_name.split() else ""
    lines = [f"Hi {first}," if first else "Hi,", ""]
    n = len(results) + len(unknown)
    if n:
        lines += _wrap(f"{rules.bot_name} read {n} command line{'s' if n != 1 else ''} in "
                       "your mail.")
    else:
        lines += _wrap(f"{rules.bot_name} found no command in your mail. Commands go one "
                       "per line, at the start of the line:")
        lines += [""] + commands.help_lines(rules.bot_address, rules.commands.max_lines)[2:]
    for title, status in (("Done", DONE), ("Ignored", IGNORED)):
        chosen = [(line, r) for line, r in results if r.status == status]
        if chosen:
            lines += ["", f"{title}:"]
            for line, result in chosen:
                lines += ["", f"> {line.text}"]
                for text in result.lines:
                    lines += _wrap(text, "  ")
    if unknown:
        lines += ["", "Unknown:"]
        for line in unknown:
            lines += ["", f"> {line.text}"]
            lines += _wrap(f"Unknown command \"{line.word}\"; did you mean \"{line.hint}\"?",
                           "  ")
    if token:
        lines += ["", "Confirmation needed:", ""]
        lines += _wrap(f"To go ahead and {_join(summaries)}, reply to this mail quoting it "
                       f"(your reply must carry the token below), or mail "
                       f"{rules.bot_address} the line")
        lines += ["", f"    confirm {token}", ""]
        lines += _wrap(f"The token works once, only from {parsed.from_addr}, until "
                       f"{when(expires)}. If you did not ask for this, ignore this mail: "
                       "nothing changes.")
    if not any(line.name == "help" for line, _ in results):
        lines += [""] + _wrap(f"Mail \"help\" to {rules.bot_address} for the list of commands.")
    return defuse(lines)


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def notice_lines(rules: Rules, until: float) -> list[str]:
    n = rules.commands.per_sender_per_hour
    return ["Hi,", ""] + _wrap(
        f"{rules.bot_name} answers at most {n} command mails an hour from one address, and "
        f"yours reached that. Mail you send before {when(until)} is not read and not "
        "answered; this is the only notice.")


def compose(rules: Rules, parsed: ParsedMail, body: list[str], key: str, token: str = "",
            counts: tuple[int, int, int] | None = None) -> tuple[EmailMessage, list[str]]:
    """The reply to the sender only (never the list), threaded to the command mail."""
    msg = EmailMessage()
    subject = parsed.subject or f"your mail to {rules.bot_name}"
    # Never the token: a Subject shows in list archives and summaries; the body has it.
    msg["Subject"] = subject if subject.lower().startswith("re:") else f"Re: {subject}"
    msg["From"] = report.address_header(rules.bot_name, rules.bot_address)
    to = report.address_header(parsed.from_name, parsed.from_addr)
    if to is None:  # the handler records this mail as an error, answered never
        raise ValueError(f"sender address {parsed.from_addr!r} needs SMTPUTF8; not answered")
    msg["To"] = to
    local, _, domain = rules.bot_address.partition("@")
    if token and rules.commands.subaddress:
        msg["Reply-To"] = f"{local}+confirm+{token}@{domain}"
    report.thread_headers(msg, rules, key, parsed.msgid, list(parsed.references))
    msg["Auto-Submitted"] = "auto-replied"
    if counts is not None:
        msg["X-bpbot-Commands"] = "done={}, ignored={}, unknown={}".format(*counts)
    footer = ["", "-- ", f"{rules.bot_name}, the backports patch bot"]
    msg.set_content(capped("\n".join(body)) + "\n".join(footer) + "\n")
    return msg, [parsed.from_addr]


def capped(text: str, limit: int = MAX_REPLY_BYTES) -> str:
    """The reply text, cut at a line end to fit ``limit`` bytes, saying so."""
    size = len(text.encode("utf-8", "replace"))
    if size <= limit:
        return text + "\n"
    head = text.encode("utf-8", "replace")[:limit - 400].decode("utf-8", "ignore")
    head = head[:head.rfind("\n") + 1] if "\n" in head else head + "\n"
    note = (f"[This reply was cut: it would have been {size} bytes, and a reply is at most "
            f"{limit // 1024} KiB. Ask for less at a time, e.g. status <message-id>.]")
    return head + "\n" + "\n".join(_wrap(note)) + "\n"

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
from bot.reply import compose, outbox
from bot.reply import render as render_mail
from bot.state import State

log = logging.getLogger(__name__)
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
    if not silent:
        _, why = compose.mailbox(parsed.from_name, parsed.from_addr)
        silent = f"the sender's {why}" if why else ""
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
            msg, rcpts = reply(rules, parsed, notice_text(rules, until), f"command:{msgid}")
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
        msg, rcpts = reply(rules, parsed, body, f"command:{msgid}", token=token, counts=counts)
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


def defuse(lines: list[str]) -> list[str]:
    """Indent any line that would read as a command at the start of a line, so a
    reply quoted without '>' (Outlook) never sends commands back to the bot."""
    return [f"  {line}" if line and line[0] not in " >" and commands.read_line(line, "body")
            else line for line in lines]


def render(rules: Rules, parsed: ParsedMail, results: list[tuple[CommandLine, Result]],
           unknown: list[CommandLine], summaries: list[str], token: str,
           expires: float) -> str:
    """The reply's text (templates/mail/command_reply.txt), defused."""
    sections = [(title, [(line.text, result.lines) for line, result in results
                         if result.status == status])
                for title, status in (("Done", DONE), ("Ignored", IGNORED))]
    sections.append(("Unknown", [(line.text, [f"Unknown command \"{line.word}\"; did you mean "
                                              f"\"{line.hint}\"?"]) for line in unknown]))
    text = render_mail.render(
        "command_reply.txt", first_name=render_mail.first_name(parsed.from_name),
        bot_name=rules.bot_name, bot_address=rules.bot_address,
        count=len(results) + len(unknown),
        help=commands.help_lines(rules.bot_address, rules.commands.max_lines)[2:],
        sections=[(title, chosen) for title, chosen in sections if chosen],
        token=token, summary=_join(summaries) if summaries else "", sender=parsed.from_addr,
        expires=when(expires) if token else "",
        answered_help=any(line.name == "help" for line, _ in results))
    return "\n".join(defuse(text.split("\n")))


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def notice_text(rules: Rules, until: float) -> str:
    return render_mail.render("rate_notice.txt", bot_name=rules.bot_name,
                              limit=rules.commands.per_sender_per_hour, until=when(until))


def reply(rules: Rules, parsed: ParsedMail, body: str, key: str, token: str = "",
          counts: tuple[int, int, int] | None = None) -> tuple[EmailMessage, list[str]]:
    """The reply to the sender only (never the list), threaded to the command mail."""
    to, why = compose.mailbox(parsed.from_name, parsed.from_addr)
    if to is None:  # handle() stays silent first; the caller records this as an error
        raise ValueError(f"sender {why}; not answered")
    local, _, domain = rules.bot_address.partition("@")
    headers = {}
    if counts is not None:
        headers["X-bpbot-Commands"] = "done={}, ignored={}, unknown={}".format(*counts)
    footer = render_mail.render("footer.txt", bot_name=rules.bot_name, best_effort=False)
    return compose.compose(rules, compose.Reply(
        # Never the token in the Subject: a Subject shows in list archives and summaries.
        subject=parsed.subject or f"your mail to {rules.bot_name}", parent=parsed.msgid,
        references=list(parsed.references), to=[to], body=capped(body), key=key, footer=footer,
        auto="auto-replied", headers=headers,
        reply_to=f"{local}+confirm+{token}@{domain}" if token and rules.commands.subaddress
        else ""))


def capped(text: str, limit: int = MAX_REPLY_BYTES) -> str:
    """The reply text, cut at a line end to fit ``limit`` bytes, saying so."""
    size = len(text.encode("utf-8", "replace"))
    if size <= limit:
        return text
    head = text.encode("utf-8", "replace")[:limit - 400].decode("utf-8", "ignore")
    head = head[:head.rfind("\n") + 1] if "\n" in head else head + "\n"
    return head + "\n" + render_mail.render("cut_note.txt", size=size, limit_kib=limit // 1024)

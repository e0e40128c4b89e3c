"""Answer spooled command mails: one reply each, exactly once.

For every command mail not handled yet (classified ``command``, or sent to a
``bot+command@`` sub-address when the rules allow them): parse it (pure,
``bot/commands.py``), stay silent when it must never be answered, apply the
rate limits, run each command line, and queue one reply with Done / Ignored
/ Unknown sections. The reply, the record of the mail and every change the
commands make are written in one transaction, and the outbox key is
``command:<message-id>``, so a restart never answers a mail twice.

Rate limits (rules ``[commands]``): a sender past ``per_sender_per_hour``
replies gets one notice, then silence until the hour has passed; past
``overall_per_hour`` replies in all, mail waits for the next pass.
"""

from __future__ import annotations

import logging
import textwrap
import time
from collections.abc import Callable
from email.message import EmailMessage

import dkim

from . import command_actions, commands, mail, outbox, report
from .command_actions import Context, when
from .commands import DONE, IGNORED, CommandLine, ParsedMail, Result
from .config import Rules
from .state import State

log = logging.getLogger(__name__)
WIDTH = 72
WINDOW = 3600
DnsFunc = Callable[..., bytes | None]


def process_pending(state: State, rules: Rules, clock: Callable[[], float] | None = None,
                    dnsfunc: DnsFunc | None = None) -> int:
    """Handle every command mail not handled yet; returns how many replies were queued."""
    clock = clock or time.time
    replies = 0
    for row in pending(state, rules):
        at = clock()
        if replies_in_window(state, at) >= rules.commands.overall_per_hour:
            log.warning("command replies: the overall limit of %d an hour is reached; the "
                        "rest waits", rules.commands.overall_per_hour)
            break
        try:
            replies += handle(state, rules, row, at, dnsfunc)
        except Exception as exc:  # noqa: BLE001 - one bad mail must not stop the others
            log.exception("command mail %s could not be handled", row["msgid"])
            with state.tx() as db:
                _record(db, row["msgid"], row["from_addr"], "error",
                        f"{type(exc).__name__}: {exc}", at)
    return replies


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


def replies_in_window(state: State, at: float) -> int:
    row = state.one("SELECT COUNT(*) AS n FROM command_mails WHERE replied = 1 AND"
                    " processed_at > ?", (at - WINDOW,))
    return row["n"] if row else 0


def handle(state: State, rules: Rules, row: dict, at: float, dnsfunc: DnsFunc | None = None) -> int:
    """Answer one command mail, or record why not; returns 1 when a reply was queued."""
    raw, msgid = bytes(row["raw"]), row["msgid"]
    conf = rules.commands
    parsed = commands.parse(raw, rules.bot_address, rules.loop_id, conf.max_lines,
                            conf.subaddress, rules.list_address)
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
    verdict = (False, "not checked")
    if conf.require_dkim and sender in conf.maintainers and \
            any(line.name == "retest" for line in parsed.lines):
        verdict = dkim_verdict(raw, sender, dnsfunc)  # DNS: before the write lock
    with state.tx() as db:
        if db.conn.execute("SELECT 1 FROM command_mails WHERE msgid = ?", (msgid,)).fetchone():
            return 0
        limit, until = sender_limit(db, rules, sender, at)
        if limit == "silent":
            _record(db, msgid, sender, "rate-limited", f"over the limit until {when(until)}", at)
            return 0
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
        if problem:
            results.append((line, Result(IGNORED, [f"{problem}; for example: {cmd.example}"])))
        else:
            results.append((line, cmd.process(ctx, line)))
    for line in ctx.mail.over_limit:
        results.append((line, Result(IGNORED, [
            f"Not read: at most {ctx.rules.commands.max_lines} command lines are read per mail "
            "(the Subject counts as one)."])))
    return results, unknown


# --- DKIM ------------------------------------------------------------------


def dkim_verdict(raw: bytes, sender: str, dnsfunc: DnsFunc | None = None) -> tuple[bool, str]:
    """(True, why) when a DKIM signature of the From domain (or a parent) verifies."""
    domain = sender.rpartition("@")[2].lower()
    count = len(mail.parse_bytes(raw).get_all("DKIM-Signature") or [])
    if not count:
        return False, "no DKIM-Signature header"
    problems = []
    for idx in range(count):
        checker = dkim.DKIM(raw)
        why = ""
        try:
            ok = checker.verify(idx=idx, dnsfunc=dnsfunc or dkim.get_txt)
        except dkim.DKIMException as exc:  # the details (hashes) mean nothing to a person
            ok, why = False, ": " + str(exc).split(" (")[0]
        signer = (checker.domain or b"").decode("ascii", "replace").lower()
        if ok and (domain == signer or domain.endswith("." + signer)):
            return True, f"DKIM signature of {signer} verified"
        problems.append(f"signature {idx + 1} (d={signer}) "
                        + ("is not of the From domain" if ok else f"does not verify{why}"))
    return False, "; ".join(problems)


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
        lines += _wrap(f"To go ahead and {_join(summaries)}, reply to this mail keeping its "
                       f"subject, or mail {rules.bot_address} the line")
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
    if token:
        # A plain reply then carries "Re: confirm <token>", which the Subject rule reads.
        msg["Subject"] = f"confirm {token}"
    else:
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
    msg.set_content("\n".join(body + footer) + "\n")
    return msg, [parsed.from_addr]

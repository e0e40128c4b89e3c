"""Mail commands: parsing (pure) and the small command classes.

``parse(raw, ...)`` reads a mail addressed to the bot and says which lines
are commands, or why the bot must stay silent; a pure function of the bytes.
A command counts only at the very start of a line (column 0) of the first
text part or in the Subject; quoted lines (``>``) never count (except, in a
reply, the quoted token line of a confirmation request), nor anything below
a signature or a quoted original. Other lines are prose and are skipped,
except a close misspelling of a command (answered with a did-you-mean
hint). At most ``max_lines`` command lines are read; each is cut to
``MAX_ECHO`` characters.

The commands themselves are small classes (Mailman's ``commands/``): a
``name``, an ``argument_description``, a one-line ``description``, an
``example``, ``check(args)`` (pure) and ``process(ctx, line)``. ``REGISTRY``
is an explicit tuple; its order is the order of ``help``. Acting is done by
``bot/commands/runner.py`` (one reply per mail) with the helpers in
``bot/commands/actions.py``; the data both use is in ``bot/commands/data.py``.
"""

from __future__ import annotations

import difflib
import itertools
import re
import textwrap
from typing import Protocol

from bot.commands import actions as command_actions
from bot.commands.actions import Confirmable, Context
from bot.commands.data import DONE, IGNORED, CommandLine, ParsedMail, Result, msgid_argument
from bot.ingest import mail, mailtext, silence
from bot.ingest.lists import ListRule, list_headers
from bot.reply import subscriptions

_REPLY_PREFIX = re.compile(r"^\s*((re|aw|sv|fwd?|wg|tr)\s*(\[\d+\])?\s*:\s*)+", re.I)
# Where the mail's own text ends: a signature, or an original quoted without ">".
_CUT = re.compile(r"^(-- ?|--|-----\s*Original Message\s*-----.*|_{10,}|Begin forwarded message:)$",
                  re.I)
_TOKEN = re.compile(r"^[0-9a-f]{8,64}$")
_GLOB = re.compile(r"^[\w.*?\[\]/+,{}!-]{1,200}$")
MAX_SUBJECT_WORDS_FOR_HINT = 3
MAX_ECHO = 200  # a reply must never be a bigger copy of what a forged sender mailed
MAX_BODY_LINES = 1000  # lines of the body read for commands
# A request's token line as a reply quotes it; one class, no nested repeats (ReDoS).
_QUOTED_CONFIRM = re.compile(r"^[ \t>|]+confirm[ \t]+([0-9a-f]{20})[ \t\r]*$", re.M)


class Command(Protocol):
    name: str
    argument_description: str
    description: str
    example: str

    def check(self, args: tuple[str, ...]) -> str:
        """'' when the arguments are acceptable, else what is wrong (pure)."""

    def process(self, ctx: Context, line: CommandLine) -> Result: ...


# --- parsing ---------------------------------------------------------------


def parse(raw: bytes, bot_address: str, loop_id: str = "", max_lines: int = 5,
          subaddress: bool = False, lists: ListRule | None = None) -> ParsedMail:
    """Read the command lines of ``raw``. Never raises: unreadable mail is silent."""
    try:
        return _parse(raw, bot_address.lower(), loop_id.lower(), max_lines, subaddress, lists)
    except Exception as exc:  # noqa: BLE001 - the contract is "never raises"
        return ParsedMail("", "", "", "", silent=f"unreadable mail: {type(exc).__name__}: {exc}")


def _parse(raw: bytes, bot: str, loop_id: str, max_lines: int, subaddress: bool,
           lists: ListRule | None) -> ParsedMail:
    msg = mail.parse_bytes(raw)
    msgid, _ = mail.message_id(msg, raw)
    from_name, from_addr = mail.address(msg, "From")
    subject = clip(mail.header(msg, "Subject"))
    base = dict(msgid=msgid, subject=subject, from_name=clip(from_name), from_addr=from_addr,
                in_reply_to=mail.normalise_msgid(mail.header(msg, "In-Reply-To")),
                references=tuple(mail.msgid_list(mail.header(msg, "References"))),
                via_list=tuple(list_headers(msg)))
    silent = silence.silence_reason(msg, from_addr, bot, loop_id, lists)
    if silent:
        return ParsedMail(**base, silent=silent)
    text, note = mailtext.body_text(msg)
    found: list[CommandLine] = []
    if subaddress:
        found += address_commands(mail.all_addresses(msg, "To", "Cc"), bot)
    line = subject_command(subject)
    if line is not None:
        found.append(line)
    found += body_commands(text)
    if (base["in_reply_to"] or base["references"]) and not any(c.name == "confirm" for c in found):
        found += quoted_confirm(text)
    first: dict[str, CommandLine] = {}  # the Subject and the body may say the same thing
    for c in found:
        first.setdefault(" ".join(c.text.lower().split()), c)
    unique = list(first.values())
    return ParsedMail(**base, lines=tuple(unique[:max_lines]),
                      over_limit=tuple(unique[max_lines:]), notes=(note,) if note else ())


def clip(text: str, limit: int = MAX_ECHO) -> str:
    """``text`` cut to ``limit`` characters, saying so."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... [cut: {len(text)} characters]"


def quoted_confirm(text: str) -> list[CommandLine]:
    """In a reply, the quoted token line of a confirmation request (not in its Subject)."""
    match = _QUOTED_CONFIRM.search(text)
    if match is None:
        return []
    return [CommandLine(f"confirm {match.group(1)}", "confirm", (match.group(1),), "quoted")]


def subject_command(subject: str) -> CommandLine | None:
    """The Subject as a command line. Behind 'Re:'/'Fwd:' only ``confirm`` counts
    (answering a confirmation keeps its subject); 'Re: help' is not asked again."""
    text = _REPLY_PREFIX.sub("", subject).strip()
    line = read_line(text, "subject")
    if line is None or (not line.name and len(text.split()) > MAX_SUBJECT_WORDS_FOR_HINT):
        return None
    if text != subject.strip() and line.name != "confirm":
        return None
    return line


def address_commands(addresses: list[str], bot: str) -> list[CommandLine]:
    """``bot+subscribe@`` and ``bot+confirm+TOKEN@`` sub-addresses."""
    bot_local, _, bot_domain = bot.partition("@")
    out = []
    for addr in addresses:
        local, _, domain = addr.partition("@")
        head, plus, rest = local.partition("+")
        if plus and head == bot_local and domain == bot_domain and rest:
            line = read_line(" ".join(p for p in rest.split("+") if p), "address")
            if line is not None:
                out.append(line)
    return out


def body_commands(text: str) -> list[CommandLine]:
    out = []
    # Commands sit at the top; every line of 10 MB (a did-you-mean each) takes minutes.
    for raw_line in itertools.islice(text.splitlines(), MAX_BODY_LINES):
        line = raw_line.rstrip()
        if _CUT.match(line):
            break
        if not line or line[0] in "> \t|":  # quoted or indented: never a command
            continue
        cmd = read_line(line, "body")
        if cmd is not None:
            out.append(cmd)
    return out


def read_line(text: str, source: str) -> CommandLine | None:
    """A command line, an unknown one with a hint, or None for prose."""
    words = text[:MAX_ECHO].split()  # the arguments, like the echo, come from the cut line
    if not words:
        return None
    word = words[0].lower().rstrip(":.,!")
    if word in BY_NAME:
        return CommandLine(clip(text.strip()), word, tuple(words[1:]), source)
    hint = did_you_mean(word)
    if hint and len(text.split(maxsplit=4)) <= 4:
        return CommandLine(clip(text.strip()), "", tuple(words[1:]), source, hint)
    return None


def did_you_mean(word: str) -> str:
    close = difflib.get_close_matches(word.lower(), list(BY_NAME), n=1, cutoff=0.75)
    return close[0] if close else ""


# --- the commands ----------------------------------------------------------


class Help:
    name = "help"
    argument_description = ""
    description = "this list of commands"
    example = "help"

    def check(self, args: tuple[str, ...]) -> str:
        return ""

    def process(self, ctx: Context, line: CommandLine) -> Result:
        return Result(DONE, help_lines(ctx.rules.bot_address, ctx.rules.commands.max_lines))


class Subscribe:
    name = "subscribe"
    argument_description = "[path-glob]"
    description = ("a copy of every report on series touching paths that match the glob "
                   "(default: all); starts once you confirm by mail")
    example = "subscribe backport-include/*"

    def check(self, args: tuple[str, ...]) -> str:
        if len(args) > 1:
            return "subscribe takes one path glob (or none for everything)"
        if args and not _GLOB.match(args[0]):
            return f"'{args[0]}' is not a path glob (like compat/* or backport-include/linux/*.h)"
        return ""

    def process(self, ctx: Context, line: CommandLine) -> Result:
        glob = line.args[0] if line.args else "*"
        if subscriptions.has(ctx.db, ctx.sender, glob):
            return Result(IGNORED, [f"{ctx.sender} is already subscribed to {_what(glob)}."])
        problem = ctx.ask_confirmation(self.name, [glob],
                                       f"subscribe {ctx.sender} to {_what(glob)}")
        if problem:
            return Result(IGNORED, [problem])
        return Result(DONE, [f"Confirmation needed to subscribe {ctx.sender} to "
                             f"{_what(glob)} (see below)."])

    def confirmed(self, ctx: Context, action: dict) -> str:
        glob = action["args"][0]
        if not subscriptions.add(ctx.db, ctx.sender, glob, ctx.now, ctx.token):
            return f"{ctx.sender} was already subscribed to {_what(glob)}."
        return f"Subscribed {ctx.sender} to {_what(glob)}."


class Unsubscribe:
    name = "unsubscribe"
    argument_description = "[path-glob | all]"
    description = "stop the copies (default: all of them); confirmed by mail too"
    example = "unsubscribe all"

    def check(self, args: tuple[str, ...]) -> str:
        if len(args) > 1:
            return "unsubscribe takes one path glob, or 'all'"
        return ""

    def process(self, ctx: Context, line: CommandLine) -> Result:
        glob = line.args[0] if line.args else "all"
        current = subscriptions.globs(ctx.db, ctx.sender)
        if not current or (glob != "all" and glob not in current):
            have = ", ".join(current) or "nothing"
            return Result(IGNORED, [f"{ctx.sender} is not subscribed to {_what(glob)} "
                                    f"(subscribed to: {have})."])
        problem = ctx.ask_confirmation(self.name, [glob],
                                       f"unsubscribe {ctx.sender} from {_what(glob)}")
        if problem:
            return Result(IGNORED, [problem])
        return Result(DONE, [f"Confirmation needed to unsubscribe {ctx.sender} from "
                             f"{_what(glob)} (see below)."])

    def confirmed(self, ctx: Context, action: dict) -> str:
        glob = action["args"][0]
        removed = subscriptions.remove(ctx.db, ctx.sender, glob)
        if not removed:
            return f"{ctx.sender} was no longer subscribed to {_what(glob)}."
        return f"Unsubscribed {ctx.sender} from {', '.join(_what(g) for g in removed)}."


class Confirm:
    name = "confirm"
    argument_description = "<token>"
    description = "go ahead with a subscribe, unsubscribe or retest (the token comes by mail)"
    example = "confirm 3f0c9a1e5b7d2c4e6a8b"

    def check(self, args: tuple[str, ...]) -> str:
        if len(args) != 1:
            return "confirm takes exactly one token, as mailed to you"
        if not _TOKEN.match(args[0].lower()):
            return f"'{args[0]}' is not a token; copy the whole line from the mail you got"
        return ""

    def process(self, ctx: Context, line: CommandLine) -> Result:
        return command_actions.confirm(ctx, line.args[0].lower(), CONFIRMABLE)


class Status:
    name = "status"
    argument_description = "[message-id | subject words | queue]"
    description = ("the state and verdict of a series (every version), or the queue; in a "
                   "reply to a series, that series")
    example = "status <20260112081402.4127-1-asa.lindqvist@example.org>"

    def check(self, args: tuple[str, ...]) -> str:
        return ""

    def process(self, ctx: Context, line: CommandLine) -> Result:
        return command_actions.status(ctx, line.args)


class Retest:
    name = "retest"
    argument_description = "<message-id> [full]"
    description = ("maintainers only: test the series again ('full': on every kernel); in "
                   "a reply to a series the message-id may be left out")
    example = "retest <20260114100233.9174-1-tomasz.wierzba@example.com> full"

    def check(self, args: tuple[str, ...]) -> str:
        rest = [a for a in args if a.lower() != "full"]
        if len(rest) > 1 or (rest and not msgid_argument(rest[0])):
            return "retest takes a Message-ID and optionally 'full'"
        return ""

    def process(self, ctx: Context, line: CommandLine) -> Result:
        return command_actions.retest(ctx, line.args)

    def confirmed(self, ctx: Context, action: dict) -> str:
        return command_actions.retest_confirmed(ctx, action)




_SUBSCRIBE, _UNSUBSCRIBE, _RETEST = Subscribe(), Unsubscribe(), Retest()
REGISTRY: tuple[Command, ...] = (Help(), _SUBSCRIBE, _UNSUBSCRIBE, Confirm(), Status(), _RETEST)
BY_NAME: dict[str, Command] = {c.name: c for c in REGISTRY}
# Commands that wait for a confirmation token, by the name stored in the token.
CONFIRMABLE: dict[str, Confirmable] = {c.name: c for c in (_SUBSCRIBE, _UNSUBSCRIBE, _RETEST)}


def _what(glob: str) -> str:
    if glob in ("*", "all"):
        return "every report" if glob == "*" else "all reports"
    return f"reports on series touching {glob}"


def help_lines(bot_address: str, max_lines: int) -> list[str]:
    """The help text: one paragraph (wrapped by the reply), then verbatim lines."""
    lines = [f"Mail {bot_address} with one command per line, at the start of the line; "
             f"quoted lines ('>') are never read, and at most {max_lines} command lines "
             "per mail (the Subject counts as one). One reply lists what was done.", ""]
    for c in REGISTRY:
        lines.append(f"  {c.name} {c.argument_description}".rstrip())
        lines += textwrap.wrap(c.description, 72, initial_indent=" " * 6,
                               subsequent_indent=" " * 6, break_on_hyphens=False)
        lines.append(f"      e.g. {c.example}")
    return lines

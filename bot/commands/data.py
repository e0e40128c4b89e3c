"""The data of mail commands, below both parsing and acting: a command line,
a parsed mail, a command's result. Pure; imports nothing of the bot but mail."""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.ingest import mail

DONE, IGNORED = "done", "ignored"


@dataclass(frozen=True)
class CommandLine:
    """One line read as a command. ``name`` is '' for an unknown command."""

    text: str
    name: str
    args: tuple[str, ...]
    source: str  # subject, body, address, quoted
    hint: str = ""  # for unknown lines: the command it probably meant

    @property
    def word(self) -> str:
        return self.text.split()[0] if self.text.split() else ""


@dataclass(frozen=True)
class ParsedMail:
    msgid: str
    subject: str
    from_name: str
    from_addr: str
    in_reply_to: str = ""
    references: tuple[str, ...] = ()
    silent: str = ""  # why the bot must not answer; '' when it may
    via_list: tuple[str, ...] = ()  # the list headers it carries (List-Id, List-Post)
    lines: tuple[CommandLine, ...] = ()  # known and unknown command lines, in order
    over_limit: tuple[CommandLine, ...] = ()  # command lines past max_lines
    notes: tuple[str, ...] = ()

    @property
    def is_reply(self) -> bool:
        return bool(self.in_reply_to or self.references)

    @property
    def thread(self) -> list[str]:
        """The messages this mail answers, nearest first."""
        out = [self.in_reply_to] if self.in_reply_to else []
        return out + [r for r in reversed(self.references) if r not in out]


@dataclass
class Result:
    status: str  # DONE or IGNORED
    lines: list[str] = field(default_factory=list)


def msgid_argument(value: str) -> str:
    """'<a@b>', 'a@b' or a lore link -> 'a@b'; '' when it is not a Message-ID."""
    value = value.strip()
    if value.startswith(("http://", "https://")):
        parts = [p for p in value.split("/") if "@" in p]
        value = parts[-1] if parts else ""
    value = mail.normalise_msgid(value)
    return value if "@" in value else ""

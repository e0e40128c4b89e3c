"""Which addresses are mailing lists, and which mail came through the list.

Pure predicates over parsed mail, shared by the spool (a patch mailed
straight to the bot is not tested: its report would Cc the list about mail
the list never saw) and the mail commands (a list never gets a reply, a
token or a subscription: its archive is public).
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from email.message import Message

from bot.config.rules import Rules
from bot.ingest import mail

DIRECT = "direct"  # the kind of a patch mailed to the bot, not through the list
LIST_HEADERS = ("List-Id", "List-Post")


@dataclass(frozen=True)
class ListRule:
    """The list the bot reads (its address and List-Id) and the address patterns
    of mailing lists in general ([commands] list_addresses)."""

    address: str = ""
    list_id: str = ""  # without <>; by convention the address with '@' -> '.'
    patterns: tuple[str, ...] = ()

    @classmethod
    def of(cls, rules: Rules) -> ListRule:
        address = rules.list_address.lower()
        return cls(address, address.replace("@", "."), tuple(rules.commands.list_addresses))

    def is_list_address(self, address: str) -> bool:
        address = address.lower()
        return bool(address) and (address == self.address or any(
            fnmatch.fnmatchcase(address, p.lower()) for p in self.patterns))

    def carries_our_list_id(self, msg: Message) -> bool:
        return bool(self.list_id) and any(
            mail.normalise_msgid(str(v)).lower() == self.list_id
            for v in (msg.get_all("List-Id") or []))

    def came_through_list(self, msg: Message) -> bool:
        """The list's List-Id, or the list's address in To/Cc. True when no list is set."""
        if not self.address:
            return True
        return self.carries_our_list_id(msg) or \
            self.address in mail.all_addresses(msg, "To", "Cc")


def list_headers(msg: Message) -> list[str]:
    """The list headers a mail carries (it went through some mailing list)."""
    return [name for name in LIST_HEADERS if msg.get(name) is not None]

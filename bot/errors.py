"""Whose fault a failure is, said by its type.

- ``PatchError``: the patch's. The contributor is answered with the reason.
- ``ConfigError``: the configuration's (the rules file, or a tree that does
  not match it). At start the bot refuses to start; during a run the version
  is answered NOT TESTED with the reason, at once and never retried.
- ``InfraError``: the bot's (a host, a tool, a disk). The run is retried and
  the operator sees it on the status page and in the log; it is never mailed
  to a contributor as their fault.

An exception of none of these types raised in a run counts as the bot's.
"""

from __future__ import annotations


class BotError(Exception):
    """The base of the three kinds below."""


class PatchError(BotError):
    """The series is at fault; the message is written for its author."""


class ConfigError(BotError, ValueError):
    """The configuration is unusable; the message names file and key."""

    def __init__(self, file: str, key: str, problem: str):
        super().__init__(f"{file}: {key}: {problem}")
        self.file, self.key, self.problem = file, key, problem


class InfraError(BotError):
    """The bot or its host failed; trying again may work."""

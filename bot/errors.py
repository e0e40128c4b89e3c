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

from collections.abc import Sequence
from typing import NamedTuple


class BotError(Exception):
    """The base of the three kinds below."""


class PatchError(BotError):
    """The series is at fault; the message is written for its author."""


class Problem(NamedTuple):
    """One thing wrong in a rules file."""

    key: str       # "build.jobs", "kernels[2].path", "(syntax)", "(file)"
    problem: str   # "must be positive, not 0"


class ConfigError(BotError, ValueError):
    """The configuration is unusable; the message names file and key of each
    problem, one line each: ``rules/mine.toml: build.jobs: must be positive, not 0``.

    ``key`` and ``problem`` are those of the first problem; ``problems`` lists
    them all, in the order of the schema's tables."""

    def __init__(self, file: str, key: str, problem: str, more: Sequence[Problem] = ()):
        self.problems = [Problem(key, problem), *more]
        super().__init__("\n".join(f"{file}: {p.key}: {p.problem}" for p in self.problems))
        self.file, self.key, self.problem = file, key, problem

    @classmethod
    def of(cls, file: str, problems: Sequence[Problem]) -> ConfigError:
        first, *more = problems
        return cls(file, first.key, first.problem, more)


class InfraError(BotError):
    """The bot or its host failed; trying again may work."""

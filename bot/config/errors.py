"""ConfigError: a rules file is unusable. It carries every problem found in
the file (key and what is wrong), and reads as one line per problem:
``rules/mine.toml: build.jobs: must be positive, not 0``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple


class Problem(NamedTuple):
    key: str       # "build.jobs", "kernels[2].path", "(syntax)", "(file)"
    problem: str   # "must be positive, not 0"


class ConfigError(ValueError):
    """A rules file is unusable; the message names file and key of each problem.

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

"""ConfigError and Problem, for the config package's modules: their home is
bot/errors.py (whose fault a failure is)."""

from bot.errors import ConfigError, Problem

__all__ = ["ConfigError", "Problem"]

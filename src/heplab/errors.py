"""Errors that heplab reports to users as one clear line.

Every problem a user can cause (a missing path, a corrupt file, a wrong schema, an
impossible setting) raises a subclass of :class:`HeplabError`; the CLI prints its message
and exits non-zero without a traceback (``--debug`` shows it).
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DataError",
    "HeplabError",
    "OutputExistsError",
]


class HeplabError(Exception):
    """Base class of the errors heplab explains to its users."""


class ConfigError(HeplabError, ValueError):
    """An impossible or unknown setting (negative events, R <= 0, unknown process, ...)."""


class DataError(HeplabError):
    """Input data that cannot be used: missing, corrupt, truncated, wrong schema, NaNs."""


class OutputExistsError(HeplabError):
    """An output location already holds something that must not be overwritten."""

"""Errors a user can fix, at the lowest layer so that both ``db`` and ``services`` raise the same
classes (``db`` imports nothing from ``services``): ``ServiceError`` is the family pages and the
CLI catch and show as one line; ``DatabaseUnavailable`` is the one database-unavailable error."""
from __future__ import annotations


class ServiceError(Exception):
    """Base class for problems the user can fix (settings, connectivity, bad input)."""


class DatabaseUnavailable(ServiceError):
    """The database cannot be reached or used. The message names the setting to fix."""

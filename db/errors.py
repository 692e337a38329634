"""Errors of the database layer. ``db`` imports nothing from ``services``; the service layer's
``services.errors.DatabaseUnavailable`` subclasses this one, and ``services.database`` converts,
so pages and the CLI catch one ``ServiceError`` family."""
from __future__ import annotations


class DatabaseUnavailable(Exception):
    """The database cannot be reached or used. The message names the setting to fix."""

"""Errors of the service layer (database, storage, search). One-line messages naming the
problem and the fix; pages show them with ``st.error`` and the CLI prints them."""
from __future__ import annotations

from db.errors import DatabaseUnavailable, ServiceError

__all__ = ["ServiceError", "DatabaseUnavailable", "StorageError", "InvalidName", "QueryError",
           "JobConflict", "user_errors", "USER_ERRORS"]


class StorageError(ServiceError):
    pass


class InvalidName(StorageError):
    pass


class QueryError(ServiceError):
    pass


class JobConflict(ServiceError):
    """A run of this video is already in progress."""


def user_errors() -> tuple[type[BaseException], ...]:
    """Problems the analyst can fix: pages show ``str(e)`` in ``st.error``, never a trace."""
    from pipeline.errors import PipelineError
    from settings import SettingsError

    return (ServiceError, PipelineError, SettingsError)


USER_ERRORS = user_errors()

"""Which database errors are the infrastructure's: those are waited out, the rest are the data's.

SQLAlchemy wraps every driver error in a DBAPI class (PEP 249): ``OperationalError`` and
``InterfaceError`` are the database being unreachable, restarting, out of resources or timing out,
and a connection that is gone is flagged ``connection_invalidated``. PostgreSQL's SQLSTATE then tells
the few ``OperationalError`` cases apart that a retry cannot cure, and the few other classes that a
retry does cure (serialization failures, deadlocks: class 40); SQLite's result code does the same for
SQLite. A missing table counts as the infrastructure's: the schema is not there yet. Everything else (``DataError``,
``IntegrityError``, ``ProgrammingError``, a Python error while building a statement) is raised by the
same batch again on every try: a fault of the data.
"""

from __future__ import annotations

from sqlalchemy import exc as sa

from streams.domain.errors import InfrastructureFault

# SQLSTATE classes and codes that a later try can succeed on
_TRANSIENT_CLASSES = ("08", "40", "53", "57", "58")  # connection, rollback, resources, operator, system
_TRANSIENT_CODES = frozenset({"55P03", "55006", "25P03", "HV000"})  # lock not available, object in use, idle
_PERMANENT_OPERATIONAL = ("22", "23", "42")  # data exception, constraint, syntax: a driver may raise them here
# the schema is missing: every batch fails alike until `lifecycle db upgrade` runs, so it is waited out
_MISSING_SCHEMA_CODES = frozenset({"42P01", "42703"})  # undefined table, undefined column
# SQLite's primary result codes a later try can succeed on: busy, locked, out of memory, I/O, full, can't open
_SQLITE_TRANSIENT = frozenset({5, 6, 7, 10, 13, 14, 15})


def _sqlstate(error: BaseException) -> str | None:
    original = getattr(error, "orig", None)
    code = getattr(original, "sqlstate", None) or getattr(original, "pgcode", None)
    return code if isinstance(code, str) else None


def is_infrastructure_fault(error: BaseException) -> bool:
    """True when the database, not the batch, is at fault: the same batch is to be tried again."""
    if isinstance(error, InfrastructureFault | MemoryError):
        return True
    if isinstance(error, sa.DBAPIError) and error.connection_invalidated:
        return True
    if isinstance(error, sa.TimeoutError | sa.DisconnectionError):  # pool exhausted; connection lost
        return True
    if not isinstance(error, sa.DBAPIError):
        return isinstance(error, OSError)  # the machine's: a socket, a file, the disk
    original = getattr(error, "orig", None)
    sqlite_code = getattr(original, "sqlite_errorcode", None)
    if isinstance(sqlite_code, int):
        message = str(original)
        return (sqlite_code & 0xFF) in _SQLITE_TRANSIENT or message.startswith(("no such table", "no such column"))
    state = _sqlstate(error)
    if state in _MISSING_SCHEMA_CODES:
        return True
    if state is not None:
        if state.startswith(_PERMANENT_OPERATIONAL):
            return False
        if state.startswith(_TRANSIENT_CLASSES) or state in _TRANSIENT_CODES:
            return True
    return isinstance(error, sa.OperationalError | sa.InterfaceError)

"""Every error the product raises, in one tree, and the dead-letter error classes.

Who must act decides the branch::

    LifecycleError
    ├── DataFault               the message's own fault: dead-lettered with its ErrorClass, never retried
    │   ├── InvalidEvent        the contract refuses it (bytes, JSON, schema, key, topic)
    │   │   └── UnmappablePayload  a vendor's webhook the gateway cannot turn into contract events
    │   └── ConflictingEvent    valid, but contradicts what is stored (an id owned by another customer)
    ├── InfrastructureFault     a dependency is down or busy: waited out with back-off, forever
    │   └── PipelineProcessDied the batch's process ended mid-call; the batch runs again in a new one
    ├── ConfigurationError      the operator's to fix (a bad quota file, no Java for the local broker):
    │   └── BrokerError         fatal at start, neither retried nor dead-lettered
    └── InvalidRequest          an API client's request that cannot be answered (a bad page): a 400
        └── RefusedRequest      a request the gateway refuses before reading it (auth, size, type): its status

Exceptions of the libraries underneath are sorted into the first two branches by the adapter that
knows them: the database's by :func:`streams.db.faults.is_infrastructure_fault`.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorClass(StrEnum):
    """Why a message went to the dead-letter topic: the ``lifecycle.errors.class`` header, a stable code."""

    EMPTY_MESSAGE = "empty_message"
    TOO_LARGE = "too_large"
    NOT_JSON = "not_json"
    NOT_AN_OBJECT = "not_an_object"
    UNSUPPORTED_SCHEMA_VERSION = "unsupported_schema_version"
    UNKNOWN_TYPE = "unknown_type"
    INVALID_FIELD = "invalid_field"
    WRONG_TOPIC = "wrong_topic"
    KEY_MISMATCH = "key_mismatch"
    CONFLICT = "conflict"
    REJECTED = "rejected"  # valid by the contract, yet applying or writing it fails: the reason names the error
    UNMAPPABLE = "unmappable"  # a vendor's webhook that maps to no contract event it could be (streams.gateway)


class LifecycleError(Exception):
    """The root: ``except LifecycleError`` catches everything the product raises on purpose."""


class DataFault(LifecycleError):
    """The message is at fault: retrying it cannot succeed, so it is dead-lettered with ``error_class``."""

    error_class: ErrorClass

    def __init__(self, error_class: ErrorClass, reason: str) -> None:
        super().__init__(reason)
        self.error_class = error_class
        self.reason = reason


class InvalidEvent(DataFault):
    """The contract refuses the message."""


class UnmappablePayload(InvalidEvent):
    """A vendor payload of a type the gateway maps, lacking what the mapping needs (its customer, an id)."""

    def __init__(self, reason: str) -> None:
        super().__init__(ErrorClass.UNMAPPABLE, reason)


class ConflictingEvent(DataFault):
    """A valid event that contradicts stored state."""

    def __init__(self, reason: str) -> None:
        super().__init__(ErrorClass.CONFLICT, reason)


class InfrastructureFault(LifecycleError):
    """A dependency failed, not the data: the same work succeeds once it is back."""


class PipelineProcessDied(InfrastructureFault):
    """The pipeline's own process ended mid-call (killed, out of memory): its batch rolled back."""


class ConfigurationError(LifecycleError):
    """What the operator configured or installed cannot work: the command stops with this message."""


class BrokerError(ConfigurationError):
    """The local Kafka broker could not be fetched or started."""


class InvalidRequest(LifecycleError, ValueError):
    """A client asked the HTTP API for what it cannot answer (a bad ``limit`` or cursor): a 400, never a query."""


class RefusedRequest(InvalidRequest):
    """The gateway refuses a request as a whole: unsigned or badly signed (401), a disabled source (404),
    too large (413), of a content type it does not read (415). Nothing of it is published."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason

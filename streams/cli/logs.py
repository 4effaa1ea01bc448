"""Secrets never reach a log line, whoever writes it.

Our own code logs redacted URLs and never a password, but client libraries at debug level log what
they send: aiokafka logs the SASL handshake, whose bytes hold the password in clear. So every log
record of the process is checked for the configured secret values and masked before any handler
sees it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

MASK = "***"


def _forms(secret: str) -> set[str]:
    """The secret as text and as it appears inside a logged ``bytes`` repr (either quote style)."""
    inside_repr = repr(secret.encode())[2:-1]
    return {secret, inside_repr, inside_repr.replace("'", "\\'")}


def mask_secrets_in_logs(secrets: Iterable[str]) -> None:
    """From now on, every log record of the process has these values replaced by ``***``."""
    values = sorted({form for secret in secrets if secret for form in _forms(secret)}, key=len, reverse=True)
    if not values:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        message = record.getMessage()
        if any(value in message for value in values):
            for value in values:
                message = message.replace(value, MASK)
            record.msg, record.args = message, None
        return record

    logging.setLogRecordFactory(factory)

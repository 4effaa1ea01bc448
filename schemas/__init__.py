"""The event contract as JSON Schema files: the single source of truth.

Upstream teams in any language validate against ``schemas/v1/*.json``; the pipeline loads the very
same files through :func:`load_schemas`.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

SCHEMA_DIR = Path(__file__).parent / "v1"
SCHEMA_BASE_URI = "https://customer-lifecycle.invalid/schemas/v1/"
ENVELOPE = "envelope"


@cache
def load_schemas() -> dict[str, dict[str, Any]]:
    """All schema documents of contract v1, keyed by event type (and ``envelope``)."""
    return {path.name.removesuffix(".json"): json.loads(path.read_text()) for path in sorted(SCHEMA_DIR.glob("*.json"))}


def event_types() -> dict[str, str]:
    """Event type -> default topic name it is published to."""
    return {name: doc["x-topic"] for name, doc in load_schemas().items() if name != ENVELOPE}

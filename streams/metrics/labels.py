"""Label values that come from input are bounded: a Prometheus series per distinct value must not grow without end."""

from __future__ import annotations

import threading

OTHER_OWNER = "other"


class BoundedLabel:
    """Keeps a label's cardinality bounded: the first ``limit`` values pass, later ones fold into 'other'."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._known: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, value: str) -> str:
        if value in self._known:
            return value
        with self._lock:
            if len(self._known) < self.limit:
                self._known.add(value)
                return value
        return OTHER_OWNER

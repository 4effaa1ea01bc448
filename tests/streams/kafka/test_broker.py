from __future__ import annotations

import uuid

import pytest

from streams.kafka.broker import new_cluster_id


def test_cluster_ids_never_start_with_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    # 0xf8 encodes to "-" as the first urlsafe base64 character: the storage tool would read an option
    ids = iter([uuid.UUID(bytes=b"\xf8" + bytes(15)), uuid.UUID(bytes=b"\x01" * 16)])
    monkeypatch.setattr(uuid, "uuid4", lambda: next(ids))
    assert new_cluster_id() == "AQEBAQEBAQEBAQEBAQEBAQ"

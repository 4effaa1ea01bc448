"""Helpers shared by the tests: events, waiting on conditions, worker processes."""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
_ids = itertools.count()

LIFECYCLE = str(Path(sys.executable).with_name("lifecycle"))


def event(
    event_type: str, customer_id: str = "c-1", *, at: str = "2026-03-01T10:00:00Z", **fields: Any
) -> dict[str, Any]:
    """A valid event of ``event_type``; ``fields`` override or add to the defaults."""
    defaults: dict[str, dict[str, Any]] = {
        "lead.created": {"lead_id": "l-1", "channel": "web"},
        "lead.qualified": {"lead_id": "l-1"},
        "lead.disqualified": {"lead_id": "l-1"},
        "deal.opened": {"deal_id": "d-1", "amount": 1000, "currency": "EUR", "owner": "ana"},
        "deal.stage_changed": {"deal_id": "d-1", "stage": "demo"},
        "deal.won": {"deal_id": "d-1", "amount": 1000, "currency": "EUR", "owner": "ana"},
        "deal.lost": {"deal_id": "d-1"},
        "ticket.opened": {"ticket_id": "t-1", "channel": "email", "priority": "normal"},
        "ticket.responded": {"ticket_id": "t-1"},
        "ticket.resolved": {"ticket_id": "t-1", "handling_seconds": 600, "contacts": 1},
        "ticket.reopened": {"ticket_id": "t-1"},
        "csat.submitted": {"ticket_id": "t-1", "score": 5},
    }
    return {
        "event_id": f"ev-{next(_ids)}",
        "type": event_type,
        "customer_id": customer_id,
        "occurred_at": at,
        "schema_version": 1,
        **defaults[event_type],
        **fields,
    }


def wait_for(condition: Callable[[], T], *, timeout: float = 60.0, what: str = "condition") -> T:
    """Poll ``condition`` until it returns something truthy; fail with ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    last: T = condition()
    while not last:
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last value: {last!r})")
        time.sleep(0.1)
        last = condition()
    return last


def wait_for_value(
    fetch: Callable[[], T], accept: Callable[[T], bool], *, timeout: float = 60.0, what: str = "value"
) -> T:
    """Fetch until ``accept(value)``; returns the accepted value."""
    box: list[T] = []

    def accepted() -> bool:
        box[:] = [fetch()]
        return accept(box[0])

    wait_for(accepted, timeout=timeout, what=what)
    return box[0]


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


class WorkerProcess:
    """`lifecycle worker` in its own process group, as a user starts it."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env, self.log_path = env, log_path
        self.port = int(env["LIFECYCLE_WEB_PORT"])
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 90.0) -> WorkerProcess:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [LIFECYCLE, "worker"], env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

        def ready() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"worker exited with {self.process.returncode}:\n{self.log()[-4000:]}")
            try:
                return http_get(self.url + "/healthz", timeout=1)[0] == 200
            except OSError:
                return False

        wait_for(ready, timeout=timeout, what="the worker's /healthz")
        return self

    def metrics(self) -> str:
        return http_get(self.url + "/metrics")[1].decode()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def signal(self, signum: int) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signum)

    def stop(self, timeout: float = 60.0) -> int | None:
        if self.process is None:
            return None
        self.signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            return self.process.wait()


@contextmanager
def running_worker(env: dict[str, str], log_path: Path) -> Iterator[WorkerProcess]:
    worker = WorkerProcess(env, log_path).start()
    try:
        yield worker
    finally:
        worker.stop()


def metric_value(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels`` in a /metrics text."""
    from prometheus_client.parser import text_string_to_metric_families

    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def row_count(database_url: str, model: Any, *conditions: Any) -> int:
    """Rows of ``model`` matching ``conditions``; -1 while the database is unreachable or not created yet."""
    from sqlalchemy import func, select
    from sqlalchemy.orm import Session

    from streams.db.engine import make_engine

    engine = make_engine(database_url)
    try:
        with Session(engine) as session:
            return int(session.scalar(select(func.count()).select_from(model).where(*conditions)) or 0)
    except Exception:
        return -1
    finally:
        engine.dispose()


def process_tree(pid: int) -> list[int]:
    """``pid`` and its children (the worker and its pipeline process), from /proc."""
    found = [pid]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
    return found


def memory_mib(pid: int, field: str = "VmRSS") -> float:
    """VmRSS (now) or VmHWM (peak) of a live process, in MiB."""
    line = next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith(field))
    return int(line.split()[1]) / 1024


def tree_memory_mib(pid: int, field: str = "VmRSS") -> float:
    """Sum over the process tree: for VmHWM an upper bound of the tree's peak."""
    total = 0.0
    for member in process_tree(pid):
        with contextlib.suppress(OSError, StopIteration):
            total += memory_mib(member, field)
    return total


class Recorder:
    """A Publish (streams.batches) that records what it was given and delivers at once."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def __call__(self, records: Sequence[tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]]) -> None:
        self.sent.extend({"key": key, "value": value, "headers": dict(headers)} for key, value, headers in records)

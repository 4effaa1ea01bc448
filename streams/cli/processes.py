"""`lifecycle worker` run as its own process, as a user starts it, and watched from outside: its
/healthz and /metrics, its processes in /proc. One way of doing this for the tests and the benchmarks,
so both measure the worker users run."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Self, TypeVar

from streams.metrics.scraped import http_get

T = TypeVar("T")

# the console script installed beside this interpreter, the one a user runs
LIFECYCLE = str(Path(sys.executable).with_name("lifecycle"))


def wait_for(condition: Callable[[], T], *, timeout: float = 60.0, what: str = "condition") -> T:
    """Poll ``condition`` until it returns something truthy; fail with ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    last: T = condition()
    while not last:
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what} (last value: {last!r})")
        time.sleep(0.1)
        last = condition()
    return last


class WorkerProcess:
    """`lifecycle worker` in its own process group (with its pipeline process), as a user starts it.

    ``env`` must set ``LIFECYCLE_WEB_PORT``; the output goes to ``log_path``, or nowhere without one."""

    def __init__(self, env: Mapping[str, str], log_path: Path | None = None) -> None:
        self.env, self.log_path = dict(env), log_path
        self.port = int(self.env["LIFECYCLE_WEB_PORT"])
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        if self.process is None:
            raise RuntimeError("the worker has not been launched")
        return self.process.pid

    def launch(self) -> Self:
        """Start the process without waiting for it: several workers start side by side."""
        with contextlib.ExitStack() as stack:
            log: IO[bytes] | int = (
                stack.enter_context(self.log_path.open("ab")) if self.log_path else subprocess.DEVNULL
            )
            self.process = subprocess.Popen(
                [LIFECYCLE, "worker"], env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        return self

    def wait_healthy(self, timeout: float = 90.0) -> Self:
        """Until /healthz answers 200; fails at once if the worker exits meanwhile."""

        def ready() -> bool:
            if self.process is None:
                raise RuntimeError("the worker has not been launched")
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited with {self.process.returncode}:\n{self.log()[-4000:]}")
            try:
                return http_get(self.url + "/healthz", timeout=1)[0] == 200
            except OSError:
                return False

        wait_for(ready, timeout=timeout, what="the worker's /healthz")
        return self

    def start(self, timeout: float = 90.0) -> Self:
        return self.launch().wait_healthy(timeout)

    def metrics(self, *names: str) -> str:
        """The /metrics text; with ``names``, those metric families alone (cheaper to render and parse)."""
        query = "?" + "&".join(f"name[]={name}" for name in names) if names else ""
        return http_get(self.url + "/metrics" + query)[1].decode()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""

    def signal(self, signum: int) -> None:
        """To the whole process group: the worker and its pipeline process."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signum)

    def wait(self, timeout: float = 60.0) -> int | None:
        """Its exit status; killed if it has not exited within ``timeout``."""
        if self.process is None:
            return None
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            return self.process.wait()

    def stop(self, timeout: float = 60.0) -> int | None:
        self.signal(signal.SIGTERM)
        return self.wait(timeout)


@contextmanager
def running_worker(env: Mapping[str, str], log_path: Path | None = None) -> Iterator[WorkerProcess]:
    """A started (healthy) worker for the duration, stopped at the end."""
    worker = WorkerProcess(env, log_path).start()
    try:
        yield worker
    finally:
        worker.stop()


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

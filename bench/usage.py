"""CPU and memory accounting of processes and process trees, from /proc: what a measured run cost."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from streams.cli.processes import memory_mib, process_tree


def proc_usage(pid: int) -> tuple[float, float]:
    """(CPU seconds, peak RSS MiB) of a live process."""
    ticks = os.sysconf("SC_CLK_TCK")
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / ticks, memory_mib(pid, "VmHWM")


def self_usage() -> tuple[float, float]:
    return proc_usage(os.getpid())


def machine_busy() -> float:
    """CPU seconds the whole machine has been busy (all cores; /proc/stat: everything but idle and iowait)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


class TreeUsage:
    """CPU seconds and peak RSS of a process and its children (the worker's pipeline process), sampled
    while they live: a child's figures are gone once it exits."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.latest: dict[int, tuple[float, float]] = {}

    def sample(self) -> None:
        for pid in process_tree(self.pid):
            with contextlib.suppress(FileNotFoundError, ProcessLookupError, StopIteration):  # exited meanwhile
                self.latest[pid] = proc_usage(pid)

    @property
    def cpu(self) -> float:
        return sum(cpu for cpu, _ in self.latest.values())

    @property
    def root_cpu(self) -> float:
        """The process's own share of :attr:`cpu` (the worker's main process, without its pipeline process)."""
        return self.latest.get(self.pid, (0.0, 0.0))[0]

    @property
    def rss(self) -> float:
        """Sum of each process's peak: an upper bound of the tree's peak."""
        return sum(rss for _, rss in self.latest.values())

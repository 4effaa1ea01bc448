"""The project's own Apache Kafka: jars from Maven Central, KRaft combined mode, no Docker.

Used by `lifecycle broker`, `lifecycle demo` and the test suite. Readiness is read from the broker's
log ("Kafka Server started"), the process runs in its own process group so that a stop takes the
whole JVM down, and the log dirs live under the data folder so a restart keeps the topics.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from string import Template

from streams.domain.errors import BrokerError

log = logging.getLogger(__name__)

KAFKA_DEPLOY_DIR = Path(__file__).resolve().parents[2] / "deploy" / "kafka"
READY_LINE = "Kafka Server started"


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "customer-lifecycle"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fetch_kafka(deploy_dir: Path = KAFKA_DEPLOY_DIR) -> Path:
    """Copy Kafka and its runtime dependencies from Maven Central into the cache, once per pom.xml."""
    pom = deploy_dir / "pom.xml"
    digest = hashlib.sha256(pom.read_bytes()).hexdigest()[:16]
    libs = cache_root() / f"kafka-{digest}" / "libs"
    if (libs / ".complete").exists():
        return libs
    if shutil.which("mvn") is None:
        raise BrokerError("Maven (mvn) is needed to fetch Apache Kafka from Maven Central")
    staging = libs.with_name("libs.partial")
    shutil.rmtree(staging, ignore_errors=True)
    log.info("fetching Apache Kafka jars with Maven into %s", libs)
    command = [
        "mvn", "-B", "-q", "-f", str(pom), "dependency:copy-dependencies",
        "-DincludeScope=runtime", f"-DoutputDirectory={staging}",
    ]  # fmt: skip
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise BrokerError(f"mvn failed ({completed.returncode}):\n{completed.stdout[-4000:]}{completed.stderr[-4000:]}")
    (staging / ".complete").write_text(digest)
    shutil.rmtree(libs, ignore_errors=True)
    staging.rename(libs)
    return libs


def new_cluster_id() -> str:
    """A KRaft cluster id; never one starting with "-", which the storage tool reads as an option (Kafka's
    own ``Uuid.randomUuid()`` rejects those too)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):
            return cluster_id


def _java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    candidate = Path(java_home) / "bin" / "java" if java_home else None
    if candidate and candidate.exists():
        return str(candidate)
    found = shutil.which("java")
    if found is None:
        raise BrokerError("Java 17+ is needed to run Apache Kafka")
    return found


class LocalKafka:
    """One KRaft node (broker + controller) on 127.0.0.1."""

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int = 0,
        controller_port: int = 0,
        partitions: int = 4,
        heap: str = "768m",
        deploy_dir: Path = KAFKA_DEPLOY_DIR,
        extra_properties: Mapping[str, str] | None = None,
        scram_users: Sequence[tuple[str, str, str]] = (),
    ) -> None:
        """``extra_properties`` are appended to server.properties (a repeated key overrides the template's,
        e.g. ``listeners``); ``scram_users`` are (mechanism, name, password) credentials created at format
        time, as KRaft requires before the first start."""
        self.data_dir = data_dir.resolve()
        self._auto_ports = not port and not controller_port
        self.port = port or free_port()
        self.controller_port = controller_port or free_port()
        self.partitions = partitions
        self.heap = heap
        self.deploy_dir = deploy_dir
        self.extra_properties = dict(extra_properties or {})
        self.scram_users = list(scram_users)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "server.log"

    def _classpath(self) -> str:
        return f"{fetch_kafka(self.deploy_dir)}/*"

    def _java_command(self, main: str, *args: str) -> list[str]:
        return [
            _java(),
            f"-Xmx{self.heap}",
            # the whole heap from the start, as kafka-server-start.sh sets it: growing from 128 MiB, G1 runs
            # concurrent marking cycles all along under load (7 % of a core)
            f"-Xms{self.heap}",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.deploy_dir / 'log4j2.properties'}",
            "-cp",
            self._classpath(),
            main,
            *args,
        ]

    def _write_config(self) -> Path:
        template = Template((self.deploy_dir / "server.properties.template").read_text())
        config = self.data_dir / "server.properties"
        config.write_text(
            template.substitute(
                port=self.port,
                controller_port=self.controller_port,
                log_dir=self.data_dir / "logs",
                partitions=self.partitions,
            )
            + "".join(f"{key}={value}\n" for key, value in self.extra_properties.items())
        )
        return config

    def _format(self, config: Path) -> None:
        if (self.data_dir / "logs" / "meta.properties").exists():
            return
        cluster_id = new_cluster_id()
        scram = [
            arg for mechanism, name, password in self.scram_users
            for arg in ("--add-scram", f"{mechanism}=[name={name},password={password}]")
        ]  # fmt: skip
        command = self._java_command(
            "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(config), "--standalone", *scram
        )
        completed = subprocess.run(command, capture_output=True, text=True, check=False)
        if completed.returncode != 0:
            raise BrokerError(f"kafka storage format failed:\n{completed.stdout[-3000:]}{completed.stderr[-3000:]}")

    def start(self, timeout: float = 120.0) -> LocalKafka:
        """Start and wait for readiness. Auto-chosen ports that another process took meanwhile are re-chosen."""
        for attempt in range(3):
            try:
                return self._start_once(timeout)
            except BrokerError as exc:
                if not (self._auto_ports and "Address already in use" in str(exc)) or attempt == 2:
                    raise
                self.port, self.controller_port = free_port(), free_port()
        raise AssertionError("unreachable")

    def _start_once(self, timeout: float) -> LocalKafka:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self._write_config()
        self._format(config)
        offset = self.log_file.stat().st_size if self.log_file.exists() else 0
        with self.log_file.open("ab") as sink:
            self.process = subprocess.Popen(
                self._java_command("kafka.Kafka", str(config)),
                stdout=sink,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BrokerError(
                    f"Kafka exited with {self.process.returncode}; see {self.log_file}:\n{self._log_tail()}"
                )
            with self.log_file.open("rb") as source:
                source.seek(offset)
                if READY_LINE.encode() in source.read():
                    log.info("Kafka is ready on %s", self.bootstrap_servers)
                    return self
            time.sleep(0.2)
        self.stop()
        raise BrokerError(f"Kafka did not start within {timeout:.0f}s; see {self.log_file}:\n{self._log_tail()}")

    def _log_tail(self) -> str:
        return self.log_file.read_text(errors="replace")[-3000:] if self.log_file.exists() else ""

    def kill(self) -> None:
        """SIGKILL the whole process group: a crash, for fault tests."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self, timeout: float = 30.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def __enter__(self) -> LocalKafka:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

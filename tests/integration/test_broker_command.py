"""`lifecycle broker`: starts the project's own Kafka, says where it listens, stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from kafka import KafkaAdminClient

from streams.cli.processes import LIFECYCLE
from streams.kafka.broker import free_port
from tests.support import wait_for


def test_broker_command_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    port, controller = free_port(), free_port()
    env = {**os.environ, "LIFECYCLE_DATA_DIR": str(tmp_path)}
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    out = tmp_path / "broker.out"
    with out.open("wb") as sink:
        broker = subprocess.Popen(
            [LIFECYCLE, "broker", "--port", str(port), "--controller-port", str(controller)],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for(lambda: f"Kafka listening on 127.0.0.1:{port}" in out.read_text(), timeout=120, what="the banner")
        admin = KafkaAdminClient(bootstrap_servers=f"127.0.0.1:{port}")
        assert admin.list_topics() is not None
        admin.close()
        assert (tmp_path / "kafka" / "logs" / "meta.properties").exists()
        broker.send_signal(signal.SIGTERM)
        assert broker.wait(60) == 0
        assert "Kafka stopped" in out.read_text()
        java = subprocess.run(["pgrep", "-f", f"{tmp_path}/kafka/server.properties"], capture_output=True, check=False)
        assert java.stdout == b"", "the JVM must be gone"
    finally:
        if broker.poll() is None:
            os.killpg(broker.pid, signal.SIGKILL)

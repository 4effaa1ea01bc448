"""TLS and SASL (PLAIN, SCRAM) against a real broker with secured listeners, configured only by settings.

One broker for the module listens on PLAINTEXT (inter-broker), SASL_PLAINTEXT (PLAIN), SSL and SASL_SSL
(SCRAM-SHA-256) with a certificate from a throw-away CA. Each case runs the whole path through the
secured listener: kafka-python creates the topics and publishes, the real worker (aiokafka under Faust)
consumes and commits, and the password is nowhere in the worker's debug log; the gateway's producer
(aiokafka) publishes through each listener too.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kafka import KafkaProducer
from kafka.errors import KafkaError

from streams.cli.processes import running_worker
from streams.kafka.admin import ensure_topics
from streams.kafka.async_publisher import AsyncEventPublisher, acknowledgement
from streams.kafka.broker import LocalKafka, free_port
from streams.kafka.publisher import EventPublisher
from streams.kafka.reading import read_to_end
from streams.kafka.security import KafkaSecurity
from tests.conftest import IN_CI, settings_from
from tests.integration.test_faults import committed_events
from tests.support import event, wait_for

PLAIN_PASSWORD = "plain-pw-5d81c2"
SCRAM_PASSWORD = "scram-pw-9e04aa"


@dataclass(frozen=True)
class SecuredKafka:
    ports: dict[str, int]
    ca_file: Path
    log_file: Path  # the broker's own log


def make_certificates(directory: Path) -> tuple[Path, Path]:
    """A CA and a broker certificate for 127.0.0.1, signed by it: (CA cert, broker key+chain PEM)."""
    if shutil.which("openssl") is None:
        message = "openssl is needed to make the test certificates"
        pytest.fail(message) if IN_CI else pytest.skip(message)

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
            "-days", "2", "-subj", "/CN=customer-lifecycle test CA")  # fmt: skip
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "broker.key", "-out", "broker.csr",
            "-subj", "/CN=127.0.0.1")  # fmt: skip
    (directory / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "broker.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "broker.crt", "-days", "2", "-extfile", "san.ext")  # fmt: skip
    keystore = directory / "broker.pem"
    keystore.write_text((directory / "broker.key").read_text() + (directory / "broker.crt").read_text())
    return directory / "ca.crt", keystore


@pytest.fixture(scope="module")
def secured_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredKafka]:
    directory = tmp_path_factory.mktemp("secured-kafka")
    ca_file, keystore = make_certificates(directory)
    broker = LocalKafka(directory / "kafka", partitions=4)
    ports = {"SASL_PLAINTEXT": free_port(), "SSL": free_port(), "SASL_SSL": free_port()}
    plain = "org.apache.kafka.common.security.plain.PlainLoginModule required"
    scram = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
    broker.extra_properties = {
        "listeners": f"PLAINTEXT://127.0.0.1:{broker.port},CONTROLLER://127.0.0.1:{broker.controller_port},"
        + ",".join(f"{name}://127.0.0.1:{port}" for name, port in ports.items()),
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{broker.port},"
        + ",".join(f"{name}://127.0.0.1:{port}" for name, port in ports.items()),
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,"
        "SASL_PLAINTEXT:SASL_PLAINTEXT,SSL:SSL,SASL_SSL:SASL_SSL",
        "listener.name.sasl_plaintext.sasl.enabled.mechanisms": "PLAIN",
        "listener.name.sasl_plaintext.plain.sasl.jaas.config": f'{plain} user_alice="{PLAIN_PASSWORD}";',
        "listener.name.sasl_ssl.sasl.enabled.mechanisms": "SCRAM-SHA-256",
        "listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config": scram,
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(keystore),
    }
    broker.scram_users = [("SCRAM-SHA-256", "bob", SCRAM_PASSWORD)]
    try:
        broker.start()
    except Exception as exc:
        message = f"could not start the secured Kafka broker: {exc}"
        pytest.fail(message) if IN_CI else pytest.skip(message)
    try:
        yield SecuredKafka(ports, ca_file, broker.log_file)
    finally:
        broker.stop()


def client_env(kafka: SecuredKafka, protocol: str) -> dict[str, str]:
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{kafka.ports[protocol]}",
        "LIFECYCLE_KAFKA_SECURITY_PROTOCOL": protocol,
    }
    if protocol.endswith("SSL"):
        env["LIFECYCLE_KAFKA_SSL_CAFILE"] = str(kafka.ca_file)
    if protocol == "SASL_PLAINTEXT":
        env.update(LIFECYCLE_KAFKA_SASL_MECHANISM="PLAIN", LIFECYCLE_KAFKA_SASL_USERNAME="alice")
        env["LIFECYCLE_KAFKA_SASL_PASSWORD"] = PLAIN_PASSWORD
    if protocol == "SASL_SSL":
        env.update(LIFECYCLE_KAFKA_SASL_MECHANISM="SCRAM-SHA-256", LIFECYCLE_KAFKA_SASL_USERNAME="bob")
        env["LIFECYCLE_KAFKA_SASL_PASSWORD"] = SCRAM_PASSWORD
    return env


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("protocol", ["SASL_PLAINTEXT", "SSL", "SASL_SSL"])
def test_worker_and_clients_through_a_secured_listener(
    secured_kafka: SecuredKafka, protocol: str, worker_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**worker_env, **client_env(secured_kafka, protocol), "LIFECYCLE_LOG_LEVEL": "debug"}
    settings = settings_from(env)
    ensure_topics(settings)
    log = tmp_path / "worker.log"
    with running_worker(env, log), EventPublisher(settings) as publisher:
        publisher.publish(event("lead.created", customer_id="c-secure"))
        publisher.send_raw(settings.topic_leads, b"c-secure", b"not json")
        publisher.flush()
        wait_for(lambda: committed_events(settings) == 1, timeout=90, what=f"the event through {protocol}")
        wait_for(
            lambda: "dead-lettered" in log.read_text(), timeout=60, what="the dead letter, sent back through TLS/SASL"
        )
    text = log.read_text()
    assert PLAIN_PASSWORD not in text and SCRAM_PASSWORD not in text


def refusal(env: dict[str, str], caplog: pytest.LogCaptureFixture) -> str:
    """Connects a kafka-python client with ``env``'s settings; returns the logged reason it was refused."""
    settings = settings_from(env)
    with pytest.raises(KafkaError):
        KafkaProducer(
            bootstrap_servers=settings.bootstrap_servers,
            bootstrap_timeout_ms=5000,
            **KafkaSecurity.from_settings(settings).kafka_python(),
        ).close()
    return caplog.text


@pytest.mark.parametrize("protocol", ["SASL_PLAINTEXT", "SASL_SSL"])
def test_a_wrong_password_is_refused(
    secured_kafka: SecuredKafka, protocol: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Proves the listeners really authenticate: the test above is not passing through an open door.

    The broker's log says why it refused; the client says so too unless the broker's close of the
    connection overtakes its answer (then the client only sees the socket disconnected)."""
    env = {**client_env(secured_kafka, protocol), "LIFECYCLE_KAFKA_SASL_PASSWORD": "wrong"}
    port = f"127.0.0.1:{secured_kafka.ports[protocol]}"

    def failed_authentications() -> int:
        return sum(
            "Failed authentication" in line and port in line
            for line in secured_kafka.log_file.read_text(errors="replace").splitlines()
        )

    before = failed_authentications()
    text = refusal(env, caplog)
    assert "SaslAuthenticationFailedError" in text or "socket disconnected" in text
    wait_for(lambda: failed_authentications() > before, timeout=30, what="the broker's failed authentication")


def test_tls_refuses_a_broker_it_does_not_trust(secured_kafka: SecuredKafka, caplog: pytest.LogCaptureFixture) -> None:
    """Without the CA the broker's certificate is not trusted: the client fails, it does not fall back."""
    env = client_env(secured_kafka, "SSL")
    del env["LIFECYCLE_KAFKA_SSL_CAFILE"]
    assert "CERTIFICATE_VERIFY_FAILED" in refusal(env, caplog)


@pytest.mark.parametrize("protocol", ["SASL_PLAINTEXT", "SSL", "SASL_SSL"])
def test_the_gateway_s_producer_publishes_through_a_secured_listener(
    secured_kafka: SecuredKafka, protocol: str, topic_names: dict[str, str]
) -> None:
    """The gateway's aiokafka producer takes the same security settings as the other clients."""
    settings = settings_from({**topic_names, **client_env(secured_kafka, protocol)})
    ensure_topics(settings)

    async def publish() -> None:
        publisher = AsyncEventPublisher(settings, timeout_seconds=30)
        await publisher.start()
        try:
            await acknowledgement([await publisher.publish(event("lead.created", customer_id="c-gateway"))])
        finally:
            await publisher.stop()

    asyncio.run(publish())
    assert [record.key for batch in read_to_end(settings, [settings.topic_leads]) for record in batch] == [b"c-gateway"]

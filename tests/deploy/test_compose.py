"""docker-compose.yml, checked statically (no Docker engine on the development machines)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from tests.support import ROOT

COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]


def test_the_full_stack_is_there() -> None:
    assert set(SERVICES) == {
        "kafka",
        "postgres",
        "worker",
        "gateway",
        "simulator",
        "prometheus",
        "alertmanager",
        "grafana",
    }
    assert SERVICES["kafka"]["image"].startswith("apache/kafka:4.")
    assert SERVICES["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert SERVICES["simulator"]["profiles"] == ["simulator"]


def test_images_are_pinned() -> None:
    for name, service in SERVICES.items():
        image = service["image"]
        assert re.fullmatch(r"[\w./-]+:v?\d[\w.-]*", image), f"{name}: {image} is not pinned to a version"
        assert not image.endswith(":latest")


def test_every_mounted_file_exists() -> None:
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name}: {source} does not exist"


def test_dependencies_wait_for_healthchecks() -> None:
    for name, service in SERVICES.items():
        for dependency, condition in service.get("depends_on", {}).items():
            assert condition["condition"] == "service_healthy"
            assert "healthcheck" in SERVICES[dependency], f"{name} waits for {dependency}, which has no healthcheck"


def test_worker_image_builds_from_files_that_exist() -> None:
    build = SERVICES["worker"]["build"]
    dockerfile = ROOT / build["context"] / build["dockerfile"]
    for line in dockerfile.read_text().splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), f"Dockerfile copies missing {source}"
    assert SERVICES["worker"]["environment"]["LIFECYCLE_WEB_HOST"] == "0.0.0.0"


def test_prometheus_scrapes_the_worker_and_mounts_its_rules() -> None:
    config = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    targets = config["scrape_configs"][0]["static_configs"][0]["targets"]
    assert targets == ["worker:6066"]
    mounted = {Path(v.split(":")[1]).name for v in SERVICES["prometheus"]["volumes"] if v.startswith(".")}
    assert set(config["rule_files"]) <= mounted


def test_the_gateway_runs_from_the_worker_image_once_kafka_is_healthy() -> None:
    gateway = SERVICES["gateway"]
    assert gateway["image"] == SERVICES["worker"]["image"] and gateway["command"] == ["gateway"]
    environment = gateway["environment"]
    assert environment["LIFECYCLE_GATEWAY_HOST"] == "0.0.0.0"
    assert environment["KAFKA_BOOTSTRAP_SERVERS"] == SERVICES["worker"]["environment"]["KAFKA_BOOTSTRAP_SERVERS"]
    # secrets pass through from the shell or .env: no value here, so an unset one stays unset (source off)
    secrets = [name for name in environment if name.endswith(("_SECRET", "_USERNAME", "_PASSWORD", "_TOKEN"))]
    assert len(secrets) == 5 and all(environment[name] is None for name in secrets)
    assert gateway["depends_on"] == {"kafka": {"condition": "service_healthy"}}
    assert "127.0.0.1:6068/health" in " ".join(gateway["healthcheck"]["test"])
    assert gateway["ports"] == ["127.0.0.1:6068:6068"]
    config = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    jobs = {job["job_name"]: job["static_configs"][0]["targets"] for job in config["scrape_configs"]}
    assert jobs["lifecycle-gateway"] == ["gateway:6068"]


def test_published_ports_are_documented_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    for name, service in SERVICES.items():
        for port in service.get("ports", []):
            host_port = port.split(":")[-2]
            assert f"| {host_port} |" in readme, f"{name}: port {host_port} not in the README's port table"

"""A real worker scraped by Debian's real Prometheus: rules, dashboard queries and the CSAT alert.

The rule files are the repository's own; only their ``for:`` durations are shortened to one second
here, so the alert can reach "firing" within the test (promtool's unit tests check the real ones).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from streams.cli.processes import LIFECYCLE, running_worker
from streams.cli.simulator import simulate
from streams.kafka.admin import ensure_topics
from streams.kafka.broker import free_port
from streams.kafka.publisher import EventPublisher
from streams.metrics.scraped import http_get, metric_value
from tests.conftest import IN_CI, settings_from
from tests.support import ROOT, wait_for, wait_for_value

sys.path.insert(0, str(ROOT / "deploy" / "grafana"))
import dashboards

pytestmark = pytest.mark.prometheus


class Prometheus:
    def __init__(self, directory: Path, target: str, gateway_target: str) -> None:
        self.port = free_port()
        self.directory = directory
        for name in ("recording_rules.yml", "alerting_rules.yml"):
            text = (ROOT / "deploy" / "prometheus" / name).read_text()
            (directory / name).write_text(re.sub(r"for: \d+m", "for: 1s", text))
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": ["recording_rules.yml", "alerting_rules.yml"],
            "scrape_configs": [
                {"job_name": "lifecycle-worker", "static_configs": [{"targets": [target]}]},
                {"job_name": "lifecycle-gateway", "static_configs": [{"targets": [gateway_target]}]},
            ],
        }
        (directory / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Prometheus:
        binary = shutil.which("prometheus")
        if binary is None:
            message = "Debian's prometheus is not installed"
            pytest.fail(message) if IN_CI else pytest.skip(message)
        assert binary is not None
        with (self.directory / "prometheus.log").open("wb") as log:
            self.process = subprocess.Popen(
                [
                    binary,
                    f"--config.file={self.directory / 'prometheus.yml'}",
                    f"--storage.tsdb.path={self.directory / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_for(self.ready, timeout=60, what="Prometheus /-/ready")
        return self

    def ready(self) -> bool:
        try:
            return http_get(f"http://127.0.0.1:{self.port}/-/ready", timeout=1)[0] == 200
        except OSError:
            return False

    def query(self, expr: str) -> list[dict[str, Any]]:
        url = f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        status, body = http_get(url)
        document = json.loads(body)
        assert status == 200 and document["status"] == "success", (expr, document)
        result: list[dict[str, Any]] = document["data"]["result"]
        return result

    def scalar(self, expr: str) -> float | None:
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(30)


@pytest.fixture
def quota_file(tmp_path: Path) -> Path:
    path = tmp_path / "quotas.json"
    path.write_text(
        json.dumps({"period": "year", "currency": "EUR", "quotas": {f"rep-{i:03d}": 250000 for i in range(12)}})
    )
    return path


@pytest.fixture
def prometheus_for(tmp_path: Path) -> Iterator[Any]:
    started: list[Prometheus] = []

    def start(target: str, gateway_target: str) -> Prometheus:
        directory = tmp_path / "prometheus"
        directory.mkdir()
        started.append(Prometheus(directory, target, gateway_target).start())
        return started[-1]

    yield start
    for prometheus in started:
        prometheus.stop()


GATEWAY_TOKEN = "e2e-token"


class GatewayProcess:
    def __init__(self, port: int, process: subprocess.Popen[bytes]) -> None:
        self.port, self.process = port, process


@contextlib.contextmanager
def running_gateway(env: dict[str, str], tmp_path: Path) -> Iterator[GatewayProcess]:
    """`lifecycle gateway` on a free port, its bearer token set, until the block ends."""
    port = free_port()
    gateway_env = {**env, "LIFECYCLE_GATEWAY_PORT": str(port), "LIFECYCLE_GATEWAY_TOKEN": GATEWAY_TOKEN}
    with (tmp_path / "gateway.log").open("wb") as log:
        process = subprocess.Popen(
            [LIFECYCLE, "gateway"], env=gateway_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def healthy() -> bool:
        try:
            return http_get(f"http://127.0.0.1:{port}/health", timeout=1)[0] == 200
        except OSError:
            return False

    try:
        wait_for(healthy, timeout=60, what="the gateway's /health")
        yield GatewayProcess(port, process)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)


def http_post(url: str, body: bytes, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as refused:
        return int(refused.code)


def close(actual: float | None, expected: float | None) -> bool:
    return actual is not None and expected is not None and math.isclose(actual, expected, rel_tol=1e-9)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_rules_dashboards_and_csat_alert_on_real_prometheus(
    worker_env: dict[str, str], quota_file: Path, prometheus_for: Any, tmp_path: Path
) -> None:
    env = {
        **worker_env,
        "LIFECYCLE_QUOTA_FILE": str(quota_file),
        "LIFECYCLE_RETENTION_PERIOD": "year",
        "LIFECYCLE_RETENTION_REFRESH_SECONDS": "0",
    }
    settings = settings_from(env)
    ensure_topics(settings)
    # journeys from October of last year on: last year's first wins, this year's renewals and churns,
    # so that the retention period's gauges have a period before and customers at its start
    simulation = simulate(2500, seed=31, csat_dip=1.0, start=datetime(datetime.now(UTC).year - 1, 10, 1))
    expected = simulation.expected.as_dict()
    with running_worker(env, tmp_path / "worker.log") as worker, running_gateway(env, tmp_path) as gateway:
        prometheus = prometheus_for(f"127.0.0.1:{worker.port}", f"127.0.0.1:{gateway.port}")
        # every series exists at 0 in a first scrape before any event: rates then have no start bias
        wait_for(lambda: prometheus.scalar("count(lifecycle_events_total)"), timeout=60, what="a first scrape")
        wait_for(
            lambda: prometheus.scalar("count(lifecycle_gateway_requests_total)"), timeout=60, what="a gateway scrape"
        )
        # a request through the gateway, refused (the stream's counts stay the simulator's): its panels
        # show traffic, not only the series at 0
        token = {"Authorization": "Bearer not-the-token", "Content-Type": "application/json"}
        assert http_post(f"http://127.0.0.1:{gateway.port}/events", orjson.dumps(simulation.events[0]), token) == 401
        with EventPublisher(settings) as publisher:
            for document in simulation.events:
                publisher.publish(document)
        total = len(simulation.events)
        wait_for_value(
            worker.metrics,
            lambda text: metric_value(text, "lifecycle_events_total") >= total,
            timeout=300,
            what="the worker to process the stream",
        )
        figures = {
            ":lifecycle_csat_satisfied:ratio_rate1h": expected["csat_share"],
            ":lifecycle_csat_score:avg_rate1h": expected["csat_average"],
            ":lifecycle_lead_conversion:ratio_rate1h": expected["conversion_rate"],
            ":lifecycle_deal_win:ratio_rate1h": expected["win_rate"],
            ":lifecycle_first_contact_resolution:ratio_rate1h": expected["first_contact_resolution_rate"],
            ":lifecycle_ticket_handling_seconds:avg_rate1h": expected["average_handling_seconds"],
        }

        def recorded() -> dict[str, float | None]:
            return {record: prometheus.scalar(record) for record in figures}

        # rule groups evaluate independently: wait until each one has run on the final scrape
        wait_for_value(
            recorded,
            lambda got: (
                prometheus.scalar("sum(lifecycle_events_total)") == total
                and all(close(got[record], value) for record, value in figures.items())
            ),
            timeout=120,
            what=f"the recorded figures to equal the simulator's {figures}",
        )
        # increase() extrapolates past the last sample by up to ~1 scrape interval, a share that
        # shrinks as the sampled span grows: the recorded value converges on the true count from above
        answers = sum(simulation.expected.csat_by_score.values())
        wait_for_value(
            lambda: prometheus.scalar(":lifecycle_csat_responses:increase1h"),
            lambda got: got is not None and answers <= got <= answers * 1.03,
            timeout=120,
            what=f"the recorded 1h CSAT response increase to converge on {answers}",
        )

        # the rules and panels subtract the *_retracted twins: the worker exposes each from start-up
        for twin in (
            "lifecycle_deals_lost_retracted_total",
            "lifecycle_sales_cycle_retracted_seconds_bucket",
            "lifecycle_csat_responses_retracted_total",
            "lifecycle_csat_score_points_retracted_total",
            "lifecycle_ticket_first_response_retracted_seconds_bucket",
            "lifecycle_churns_retracted_total",
        ):
            assert prometheus.query(twin), f"{twin} was not scraped"
        recording = yaml.safe_load((ROOT / "deploy/prometheus/recording_rules.yml").read_text())["groups"]
        for rule in (r for g in recording for r in g["rules"]):
            assert prometheus.query(rule["record"]), f"recording rule {rule['record']} returned no data"
        for panel in [p for uid in dashboards.DASHBOARDS for p in dashboards.dashboard_json(uid)["panels"]]:
            for target in panel.get("targets", []):  # a row has none
                expr = target["expr"].replace("$__rate_interval", "1m")
                assert prometheus.query(expr), f"panel {panel['title']!r}: {expr} returned no data"

        firing = wait_for_value(
            lambda: prometheus.query('ALERTS{alertname="LifecycleCSATLow", alertstate="firing"}'),
            bool,
            timeout=60,
            what="LifecycleCSATLow to fire",
        )
        assert firing[0]["metric"]["team"] == "service"

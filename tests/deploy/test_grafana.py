"""Grafana dashboards: generated from code, committed as JSON, checked panel by panel."""

from __future__ import annotations

import json
import re
import sys
from typing import Any

import yaml

from tests.support import ROOT

sys.path.insert(0, str(ROOT / "deploy" / "grafana"))
import dashboards


def all_panels() -> list[tuple[str, dict[str, Any]]]:
    return [
        (path.name, panel)
        for path in sorted((ROOT / "deploy" / "grafana" / "dashboards").glob("*.json"))
        for panel in json.loads(path.read_text())["panels"]
    ]


def dashboard_expressions() -> list[str]:
    return [target["expr"] for _, panel in all_panels() for target in panel["targets"]]


def test_committed_json_is_what_the_generator_writes() -> None:
    committed = {p.name: p.read_text() for p in (ROOT / "deploy" / "grafana" / "dashboards").glob("*.json")}
    assert committed == dashboards.render(), "run: python deploy/grafana/dashboards.py"


def test_three_dashboards_cover_sales_service_and_pipeline() -> None:
    titles = {json.loads(p.read_text())["title"] for p in (ROOT / "deploy" / "grafana" / "dashboards").glob("*.json")}
    assert titles == {
        "Customer lifecycle: Sales",
        "Customer lifecycle: Service",
        "Customer lifecycle: Lifecycle & pipeline",
    }


def test_every_panel_has_title_description_unit_and_the_provisioned_datasource() -> None:
    provisioned = yaml.safe_load((ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text())
    uid = provisioned["datasources"][0]["uid"]
    panels = all_panels()
    assert len(panels) >= 20
    for name, panel in panels:
        where = f"{name}: {panel.get('title')!r}"
        assert panel["title"] and panel["description"], where
        assert panel["fieldConfig"]["defaults"]["unit"], where
        assert panel["datasource"]["uid"] == uid, where
        assert panel["targets"] and all(t["datasource"]["uid"] == uid for t in panel["targets"]), where


def test_rates_use_rate_interval() -> None:
    for expr in dashboard_expressions():
        for window in re.findall(r"\b(?:rate|increase)\([^\[]*\[([^\]]+)\]", expr):
            assert window == "$__rate_interval", expr


def test_csat_panels_draw_the_alert_threshold() -> None:
    alert_rules = (ROOT / "deploy/prometheus/alerting_rules.yml").read_text()
    assert f":lifecycle_csat_satisfied:ratio_rate1h < {dashboards.CSAT_ALERT_THRESHOLD:.2f}" in alert_rules
    csat = [
        panel for _, panel in all_panels() if panel["title"].startswith("CSAT") and "responses" not in panel["title"]
    ]
    assert len(csat) == 2
    for panel in csat:
        steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
        assert steps[-1]["value"] == dashboards.CSAT_ALERT_THRESHOLD
        assert panel["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"]["mode"] == "line"

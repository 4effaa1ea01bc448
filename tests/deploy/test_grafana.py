"""Grafana dashboards: generated from code, committed as JSON, checked panel by panel."""

from __future__ import annotations

import itertools
import json
import re
import sys
from typing import Any

import yaml

from tests.support import ROOT

sys.path.insert(0, str(ROOT / "deploy" / "grafana"))
import dashboards

DASHBOARDS = ROOT / "deploy" / "grafana" / "dashboards"
# a figure with a *_retracted twin is read net of it (docs/metrics.md, "Order-freedom")
TWINS = {
    "lifecycle_deals_won_total": "lifecycle_deals_won_retracted_total",
    "lifecycle_revenue_won_total": "lifecycle_revenue_won_retracted_total",
    "lifecycle_deals_lost_total": "lifecycle_deals_lost_retracted_total",
    "lifecycle_csat_responses_total": "lifecycle_csat_responses_retracted_total",
    "lifecycle_csat_score_points_total": "lifecycle_csat_score_points_retracted_total",
    "lifecycle_churns_total": "lifecycle_churns_retracted_total",
    "lifecycle_sales_cycle_seconds_bucket": "lifecycle_sales_cycle_retracted_seconds_bucket",
    "lifecycle_ticket_first_response_seconds_bucket": "lifecycle_ticket_first_response_retracted_seconds_bucket",
}


def all_panels_and_rows() -> list[tuple[str, dict[str, Any]]]:
    return [
        (path.name, panel)
        for path in sorted(DASHBOARDS.glob("*.json"))
        for panel in json.loads(path.read_text())["panels"]
    ]


def all_panels() -> list[tuple[str, dict[str, Any]]]:
    """The panels that show data (not the row headers)."""
    return [(name, panel) for name, panel in all_panels_and_rows() if panel["type"] != "row"]


def dashboard_expressions() -> list[str]:
    return [target["expr"] for _, panel in all_panels() for target in panel["targets"]]


def test_committed_json_is_what_the_generator_writes() -> None:
    committed = {p.name: p.read_text() for p in (ROOT / "deploy" / "grafana" / "dashboards").glob("*.json")}
    assert committed == dashboards.render(), "run: python deploy/grafana/dashboards.py"


def test_four_dashboards_cover_sales_service_pipeline_and_the_comparison() -> None:
    dashboards_by_file = {p.name: json.loads(p.read_text()) for p in DASHBOARDS.glob("*.json")}
    assert {name: d["title"] for name, d in dashboards_by_file.items()} == {
        "lifecycle-sales.json": "Customer lifecycle: Sales",
        "lifecycle-service.json": "Customer lifecycle: Service",
        "lifecycle-pipeline.json": "Customer lifecycle: Lifecycle & pipeline",
        "lifecycle-sales-vs-service.json": "Customer lifecycle: Sales vs Service",
    }
    assert all(d["uid"] == name.removesuffix(".json") for name, d in dashboards_by_file.items())


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
        panel
        for _, panel in all_panels()
        if panel["title"].removeprefix("Service: ").startswith("CSAT") and "responses" not in panel["title"]
    ]
    assert len(csat) == 3
    for panel in csat:
        steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
        assert steps[-1]["value"] == dashboards.CSAT_ALERT_THRESHOLD
        assert panel["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"]["mode"] == "line"


def test_figures_with_a_retracted_twin_are_read_net_of_it() -> None:
    for expr in dashboard_expressions():
        for metric, twin in TWINS.items():
            if re.search(rf"\b{metric}\b", expr):
                assert twin in expr, f"{expr}: reads {metric} without subtracting {twin}"


def test_read_model_gauges_are_aggregated_with_max() -> None:
    gauges = [
        "lifecycle_customers",
        "lifecycle_customers_by_tenure",
        "lifecycle_referred_customers",
        "lifecycle_nps_customers",
        "lifecycle_period_logo_churn_ratio",
        "lifecycle_period_revenue_retention_ratio",
        "lifecycle_tickets_open",
        "lifecycle_quota_attainment_ratio",
    ]
    for expr in dashboard_expressions():
        for gauge in gauges:
            for found in re.finditer(rf"(?<![:\w]){gauge}\b", expr):
                assert re.search(r"max(?: by \([^)]*\))? \($", expr[: found.start()]), f"{expr}: {gauge} without max"


def test_sales_vs_service_is_the_comparison_table_sales_left_service_right() -> None:
    panels = json.loads((DASHBOARDS / "lifecycle-sales-vs-service.json").read_text())["panels"]
    rows = [panel for panel in panels if panel["type"] == "row"]
    assert [row["title"].split(":")[0] for row in rows] == [
        "Main goal",
        "Focus",
        "Metrics",
        "Impact on the business",
        "Service's effect on revenue",
    ]
    assert panels[0]["type"] == "row"
    ids = [panel["id"] for panel in panels]
    assert ids == list(range(1, len(panels) + 1))
    occupied: set[tuple[int, int]] = set()
    current: dict[str, Any] = {}
    sides: dict[str, set[str]] = {}
    for panel in panels:
        grid = panel["gridPos"]
        cells = {
            (x, y) for x in range(grid["x"], grid["x"] + grid["w"]) for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not cells & occupied, f"{panel['title']!r} overlaps another panel"
        occupied |= cells
        if panel["type"] == "row":
            assert grid == {"h": 1, "w": 24, "x": 0, "y": grid["y"]} and not panel["collapsed"]
            current = panel
            continue
        assert grid["y"] > current["gridPos"]["y"], f"{panel['title']!r} is above its row"
        side, _ = panel["title"].split(": ", 1)
        assert side in ("Sales", "Service"), panel["title"]
        if side == "Sales":
            assert grid["x"] + grid["w"] <= 12, f"{panel['title']!r} is not in the left half"
        else:
            assert grid["x"] >= 12, f"{panel['title']!r} is not in the right half"
        sides.setdefault(current["title"], set()).add(side)
    assert all(found == {"Sales", "Service"} for found in sides.values()) and len(sides) == len(rows)
    # the next row starts below everything of the previous one
    for previous, row in itertools.pairwise(rows):
        below = [p for p in panels if p["type"] != "row" and previous["id"] < p["id"] < row["id"]]
        assert all(p["gridPos"]["y"] + p["gridPos"]["h"] <= row["gridPos"]["y"] for p in below)

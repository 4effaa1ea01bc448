# ruff: noqa: E501  (panel tables read best one panel per line)
"""Grafana dashboards as code: `python deploy/grafana/dashboards.py` writes deploy/grafana/dashboards/*.json.

The JSON files are committed (Grafana's provisioning reads them); tests check that they match this
generator, that every panel has a title, description, unit and the provisioned datasource, that
rates use ``$__rate_interval``, and (against a real Prometheus) that every expression returns data.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OUT = Path(__file__).parent / "dashboards"
DATASOURCE = {"type": "prometheus", "uid": "prometheus"}
CSAT_ALERT_THRESHOLD = 0.70  # LifecycleCSATLow in deploy/prometheus/alerting_rules.yml


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = ""


@dataclass(frozen=True)
class Panel:
    title: str
    description: str
    unit: str
    queries: tuple[Query, ...]
    kind: str = "timeseries"
    threshold: float | None = None
    width: int = 12
    extra: dict[str, Any] = field(default_factory=dict)


def rate(metric: str, by: str = "", selector: str = "") -> str:
    grouping = f"sum by ({by}) " if by else "sum "
    return f"{grouping}(rate({metric}{selector}[$__rate_interval]))"


def net_rate(metric: str, retracted: str, by: str = "") -> str:
    """A figure that later-arriving events change: the metric minus its ``*_retracted`` twin (the values
    taken back; docs/metrics.md), like the recording rules."""
    return f"{rate(metric, by)} - {rate(retracted, by)}"


SALES = [
    Panel("Leads by channel", "New leads per second, by acquisition channel.", "cps",
          (Query(rate("lifecycle_leads_total", "channel"), "{{channel}}"),)),
    Panel("Qualification decisions", "Leads qualified and disqualified per second.", "cps",
          (Query(rate("lifecycle_leads_qualified_total"), "qualified"),
           Query(rate("lifecycle_leads_disqualified_total"), "disqualified"))),
    Panel("Lead-to-customer conversion rate",
          "Conversions (first won deal of a customer) / leads created, over 1h and 7d.", "percentunit",
          (Query(":lifecycle_lead_conversion:ratio_rate1h", "1h"), Query(":lifecycle_lead_conversion:ratio_rate7d", "7d"))),
    Panel("Conversions", "Customers moved from acquisition into service, per second.", "cps",
          (Query(rate("lifecycle_conversions_total"), "conversions"),)),
    Panel("Win rate", "Won / (won + lost) deals; open deals are not in the denominator, a loss the deal's win overrode counts as won.", "percentunit",
          (Query(":lifecycle_deal_win:ratio_rate1h", "1h"), Query(":lifecycle_deal_win:ratio_rate7d", "7d"))),
    Panel("Revenue won (last hour)", "Sum of won deal amounts over the last hour, per currency.", "short",
          (Query("currency:lifecycle_revenue_won:increase1h", "{{currency}}"),)),
    Panel("Quota attainment by rep", "Won revenue in the current quota period / the rep's quota.", "percentunit",
          (Query("owner:lifecycle_quota_attainment:ratio", "{{owner}}"),), kind="bargauge"),
    Panel("Sales cycle (median)", "First lead.created to first deal.won, median over 7 days.", "s",
          (Query(":lifecycle_sales_cycle_seconds:p50_rate7d", "p50"),)),
]  # fmt: skip

SERVICE = [
    Panel("Tickets opened", "Tickets opened per second, by channel and priority.", "cps",
          (Query(rate("lifecycle_tickets_opened_total", "channel, priority"), "{{channel}} {{priority}}"),)),
    Panel("Ticket backlog", "Tickets open now, by channel (read from the read model).", "short",
          (Query("max by (channel) (lifecycle_tickets_open)", "{{channel}}"), Query(":lifecycle_tickets_open:max", "all"))),
    Panel("First response time (p90)", "90th percentile of opened to first agent response, last hour.", "s",
          (Query(":lifecycle_ticket_first_response_seconds:p90_rate1h", "p90"),)),
    Panel("Resolution time (p90)", "90th percentile of opened to resolved, last hour, by channel.", "s",
          (Query("channel:lifecycle_ticket_resolution_seconds:p90_rate1h", "{{channel}}"),
           Query(":lifecycle_ticket_resolution_seconds:p90_rate1h", "all"))),
    Panel("First-contact resolution", "Resolutions with one contact / all resolutions, last hour.", "percentunit",
          (Query("channel:lifecycle_first_contact_resolution:ratio_rate1h", "{{channel}}"),
           Query(":lifecycle_first_contact_resolution:ratio_rate1h", "all"))),
    Panel("Average handling time", "Agent handling seconds per resolution, last hour.", "s",
          (Query(":lifecycle_ticket_handling_seconds:avg_rate1h", "all"),
           Query("channel:lifecycle_ticket_handling_seconds:avg_rate1h", "{{channel}}"))),
    Panel("CSAT", "Share of CSAT responses scoring 4-5 (last hour, trailing 7 days); the line is the alert threshold.",
          "percentunit",
          (Query(":lifecycle_csat_satisfied:ratio_rate1h", "1h"), Query(":lifecycle_csat_satisfied:ratio_rate7d", "7d")),
          threshold=CSAT_ALERT_THRESHOLD),
    Panel("CSAT by channel", "Share of CSAT responses scoring 4-5 over the last hour, per ticket channel.", "percentunit",
          (Query("channel:lifecycle_csat_satisfied:ratio_rate1h", "{{channel}}"),), threshold=CSAT_ALERT_THRESHOLD),
    Panel("Average CSAT score", "Mean CSAT score (1-5) over the last hour.", "none",
          (Query(":lifecycle_csat_score:avg_rate1h", "mean"),)),
    Panel("CSAT responses", "CSAT responses per second, by score, net of ratings replaced by a newer one (a ticket counts its latest).", "cps",
          (Query(net_rate("lifecycle_csat_responses_total", "lifecycle_csat_responses_retracted_total", "score"), "{{score}}"),)),
]  # fmt: skip

LIFECYCLE = [
    Panel("Customers by stage", "Customers in each lifecycle stage now (funnel, from the read model).", "short",
          (Query("max by (stage) (lifecycle_customers)", "{{stage}}"),), kind="bargauge"),
    Panel("Stage transitions", "Stage changes per second, from -> to.", "cps",
          (Query(rate("lifecycle_stage_transitions_total", "from_stage, to_stage"), "{{from_stage}} -> {{to_stage}}"),)),
    Panel("Time in stage (median)", "Median time customers spent in a stage before leaving it, per stage left (occurred_at to occurred_at).", "s",
          (Query("histogram_quantile(0.5, sum by (stage, le) (rate(lifecycle_stage_duration_seconds_bucket[$__rate_interval])))",
                 "{{stage}}"),)),
    Panel("Events by outcome", "Messages consumed per second: processed, duplicate, dead_lettered.", "cps",
          (Query(rate("lifecycle_events_total", "outcome"), "{{outcome}}"),)),
    Panel("Dead letters", "Messages sent to the dead-letter topic per second, by source topic.", "cps",
          (Query(rate("lifecycle_events_total", "topic", '{outcome="dead_lettered"}'), "{{topic}}"),
           )),
    Panel("Dead-letter share", "Dead-lettered / consumed messages over 5 minutes.", "percentunit",
          (Query(":lifecycle_events_dead_lettered:ratio_rate5m", "share"),)),
    Panel("Event delay (p99)", "99th percentile of processed time minus occurred_at.", "s",
          (Query("histogram_quantile(0.99, sum by (le) (rate(lifecycle_event_delay_seconds_bucket[$__rate_interval])))",
                 "p99"),)),
    Panel("Consumer lag", "Messages on the source topics not yet committed by the workers.", "short",
          (Query(":lifecycle_consumer_lag:sum", "lag"),)),
]  # fmt: skip

DASHBOARDS = {
    "lifecycle-sales": ("Customer lifecycle: Sales", SALES),
    "lifecycle-service": ("Customer lifecycle: Service", SERVICE),
    "lifecycle-pipeline": ("Customer lifecycle: Lifecycle & pipeline", LIFECYCLE),
}


def _panel_json(panel: Panel, panel_id: int) -> dict[str, Any]:
    defaults: dict[str, Any] = {"unit": panel.unit}
    if panel.threshold is not None:
        defaults["thresholds"] = {
            "mode": "absolute",
            "steps": [{"color": "red", "value": None}, {"color": "green", "value": panel.threshold}],
        }
        defaults["custom"] = {"thresholdsStyle": {"mode": "line"}}
    return {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {"h": 8, "w": panel.width, "x": (panel_id - 1) % 2 * 12, "y": (panel_id - 1) // 2 * 8},
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "targets": [
            {"refId": chr(ord("A") + index), "datasource": DATASOURCE, "expr": query.expr, "legendFormat": query.legend}
            for index, query in enumerate(panel.queries)
        ],
        **panel.extra,
    }


def dashboard_json(uid: str) -> dict[str, Any]:
    title, panels = DASHBOARDS[uid]
    return {
        "uid": uid,
        "title": title,
        "tags": ["customer-lifecycle"],
        "timezone": "utc",
        "schemaVersion": 39,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "panels": [_panel_json(panel, index) for index, panel in enumerate(panels, start=1)],
    }


def render() -> dict[str, str]:
    """File name -> JSON text, exactly as committed."""
    return {f"{uid}.json": json.dumps(dashboard_json(uid), indent=2) + "\n" for uid in DASHBOARDS}


def main() -> None:
    OUT.mkdir(exist_ok=True)
    for name, text in render().items():
        (OUT / name).write_text(text)


if __name__ == "__main__":
    main()

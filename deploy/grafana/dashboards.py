# ruff: noqa: E501  (panel tables read best one panel per line)
"""Grafana dashboards as code: `python deploy/grafana/dashboards.py` writes deploy/grafana/dashboards/*.json.

Sales, Service and Lifecycle & pipeline are grids of panels, two a line; Sales vs Service is the
comparison table, row by row, Sales on the left and Service on the right.

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
    height: int = 8
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Row:
    """One line of the Sales vs Service comparison: a row header, Sales' panels in the left half of the
    grid, Service's in the right half (each half 12 wide; a panel 6 wide puts two side by side)."""

    title: str
    sales: tuple[Panel, ...]
    service: tuple[Panel, ...]


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
    Panel("Gateway requests by source and outcome",
          "Webhook gateway requests per second, by source (stripe, zendesk, pipedrive, native) and outcome: published, ignored, dead_lettered, or refused (unauthorized 401, disabled 404, too_large 413, unsupported_media_type 415, unavailable 503).",
          "reqps", (Query(rate("lifecycle_gateway_requests_total", "source, outcome"), "{{source}} {{outcome}}"),)),
    Panel("Gateway request time (p99)", "99th percentile of request received to answer, Kafka's acknowledgement included, by source.", "s",
          (Query("histogram_quantile(0.99, sum by (source, le) (rate(lifecycle_gateway_request_seconds_bucket[$__rate_interval])))",
                 "{{source}}"),)),
]  # fmt: skip

# Read-model gauges (customers, referred customers, NPS customers, period ratios) are aggregated with
# max: every worker reports the same database state. Counters come net of their *_retracted twins
# through the recording rules.
RETAINED = 'kind=~"renewal|expansion"'
SALES_VS_SERVICE = [
    Row("Main goal: new revenue (Sales) vs retained revenue (Service)",
        (Panel("Sales: new revenue won (7d)",
               "Revenue of new-business deals won over the last 7 days, per currency (a customer's first won deal, unless the deal declares its kind).",
               "short", (Query('currency_kind:lifecycle_revenue_won:increase7d{kind="new_business"}', "{{currency}}"),),
               kind="stat"),),
        (Panel("Service: retained revenue won (7d)",
               "Renewal and expansion revenue won from existing customers over the last 7 days, per currency.",
               "short", (Query(f"sum by (currency) (currency_kind:lifecycle_revenue_won:increase7d{{{RETAINED}}})", "{{currency}}"),),
               kind="stat"),)),
    Row("Focus: new customers (Sales) vs existing customers (Service)",
        (Panel("Sales: new customers (7d)", "Conversions over the last 7 days: customers whose first deal was won.", "short",
               (Query(":lifecycle_conversions:increase7d", "conversions"),), kind="stat", width=6),
         Panel("Sales: customers in acquisition", "Customers in the acquisition stages being worked now: lead, qualified, opportunity (read model).",
               "short", (Query('max by (stage) (lifecycle_customers{stage=~"lead|qualified|opportunity"})', "{{stage}}"),),
               kind="bargauge", width=6)),
        (Panel("Service: existing customers by stage", "Customers in the service stages now: customer, at_risk, churned (read model).", "short",
               (Query('max by (stage) (lifecycle_customers{stage=~"customer|at_risk|churned"})', "{{stage}}"),),
               kind="bargauge", width=6),
         Panel("Service: customers by tenure", "Customers (customer or at_risk) by time since their first won deal (read model).", "short",
               (Query("max by (tenure) (lifecycle_customers_by_tenure)", "{{tenure}}"),), kind="bargauge", width=6))),
    Row("Metrics: sales volume, conversion, revenue, quota (Sales) vs CSAT, speed, resolution, NPS (Service)",
        (Panel("Sales: deals won (7d)", "Deals won over the last 7 days, by kind (a deal whose kind changed counts under its latest).", "short",
               (Query("kind:lifecycle_deals_won:increase7d", "{{kind}}"),), width=6, height=12),
         Panel("Sales: conversion", "Leads that became customers / leads, and won / (won + lost) deals, over 7 days.", "percentunit",
               (Query(":lifecycle_lead_conversion:ratio_rate7d", "lead to customer (7d)"),
                Query(":lifecycle_deal_win:ratio_rate7d", "deal win rate (7d)")), width=6, height=12),
         Panel("Sales: revenue won (last hour)", "Sum of won deal amounts over the last hour, per currency, all kinds.", "short",
               (Query("currency:lifecycle_revenue_won:increase1h", "{{currency}}"),), width=6, height=12),
         Panel("Sales: quota attainment", "Won revenue in the current quota period / the rep's quota.", "percentunit",
               (Query("owner:lifecycle_quota_attainment:ratio", "{{owner}}"),), kind="bargauge", width=6, height=12)),
        (Panel("Service: CSAT", "Share of CSAT responses scoring 4-5 (last hour, trailing 7 days); the line is the alert threshold.",
               "percentunit",
               (Query(":lifecycle_csat_satisfied:ratio_rate1h", "1h"), Query(":lifecycle_csat_satisfied:ratio_rate7d", "7d")),
               threshold=CSAT_ALERT_THRESHOLD, width=6),
         Panel("Service: resolution speed (p90)", "90th percentile of opened to first response and of opened to resolved, last hour.", "s",
               (Query(":lifecycle_ticket_first_response_seconds:p90_rate1h", "first response"),
                Query(":lifecycle_ticket_resolution_seconds:p90_rate1h", "resolution")), width=6),
         Panel("Service: first-contact resolution", "Resolutions with one contact / all resolutions, last hour.", "percentunit",
               (Query(":lifecycle_first_contact_resolution:ratio_rate1h", "all"),), width=6),
         Panel("Service: handling time", "Agent handling seconds per resolution, last hour.", "s",
               (Query(":lifecycle_ticket_handling_seconds:avg_rate1h", "all"),), width=6),
         Panel("Service: NPS", "100 x (promoters - detractors) / answers (promoter 9-10, detractor 0-6): the answers of the last day and 7 days, and customers by their latest answer.",
               "none",
               (Query(":lifecycle_nps:score_rate1d", "answers (1d)"), Query(":lifecycle_nps:score_rate7d", "answers (7d)"),
                Query(":lifecycle_nps_customers:score", "customers (latest answer)"))))),
    Row("Impact on the business: direct revenue (Sales) vs renewal, expansion and referral revenue (Service)",
        (Panel("Sales: new-business revenue (last hour)", "Revenue of new-business deals won over the last hour, per currency.", "short",
               (Query('currency_kind:lifecycle_revenue_won:increase1h{kind="new_business"}', "{{currency}}"),)),),
        (Panel("Service: renewal and expansion revenue (last hour)", "Revenue of renewal and expansion deals won over the last hour, per kind and currency.",
               "short", (Query(f"currency_kind:lifecycle_revenue_won:increase1h{{{RETAINED}}}", "{{kind}} {{currency}}"),), width=6),
         Panel("Service: referral revenue (7d)", "Won revenue of customers that a referral brought, over the last 7 days, per currency.", "short",
               (Query("currency:lifecycle_referral_revenue:increase7d", "{{currency}}"),), width=6))),
    Row("Service's effect on revenue: referrals and win-backs (Sales) vs churn and retention (Service)",
        (Panel("Sales: referred customers by referrer's CSAT", "Customers that a referral brought, by the referring customer's current CSAT band, converted or not (read model).",
               "short", (Query("max by (referrer_csat_band, converted) (lifecycle_referred_customers)", "{{referrer_csat_band}}, converted {{converted}}"),),
               kind="bargauge", width=6),
         Panel("Sales: referrals and win-backs (7d)", "Leads naming a referring customer, referred customers' first won deals, and deals won from churned customers, over 7 days.",
               "short",
               (Query(":lifecycle_referral_leads:increase7d", "referred leads"), Query(":lifecycle_referral_conversions:increase7d", "referred customers won"),
                Query(":lifecycle_win_backs:increase7d", "win-backs")), width=6)),
        (Panel("Service: churns by CSAT band", "Churns over the last day and 7 days, by the churned customer's recent CSAT band (low: below the at-risk threshold, mid: below 4, high, none: no rating).",
               "short",
               (Query("csat_band:lifecycle_churns:increase1d", "{{csat_band}} (1d)"), Query("csat_band:lifecycle_churns:increase7d", "{{csat_band}} (7d)")),
               width=6),
         Panel("Service: period retention", "Current retention period: churns / customers active at its start (logo churn), and renewal + expansion revenue / the previous period's revenue, per currency.",
               "percentunit",
               (Query(":lifecycle_period_logo_churn:ratio", "logo churn"),
                Query("currency:lifecycle_period_revenue_retention:ratio", "revenue retention {{currency}}")), width=6))),
]  # fmt: skip

DASHBOARDS: dict[str, tuple[str, list[Panel] | list[Row]]] = {
    "lifecycle-sales": ("Customer lifecycle: Sales", SALES),
    "lifecycle-service": ("Customer lifecycle: Service", SERVICE),
    "lifecycle-pipeline": ("Customer lifecycle: Lifecycle & pipeline", LIFECYCLE),
    "lifecycle-sales-vs-service": ("Customer lifecycle: Sales vs Service", SALES_VS_SERVICE),
}


def _grid(panel_id: int) -> dict[str, int]:
    """Two panels a line, in order."""
    return {"h": 8, "w": 12, "x": (panel_id - 1) % 2 * 12, "y": (panel_id - 1) // 2 * 8}


def _panel_json(panel: Panel, panel_id: int, grid: dict[str, int] | None = None) -> dict[str, Any]:
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
        "gridPos": grid or {**_grid(panel_id), "w": panel.width},
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "targets": [
            {"refId": chr(ord("A") + index), "datasource": DATASOURCE, "expr": query.expr, "legendFormat": query.legend}
            for index, query in enumerate(panel.queries)
        ],
        **panel.extra,
    }


def _column(panels: tuple[Panel, ...], x: int, y: int, first_id: int) -> tuple[list[dict[str, Any]], int]:
    """``panels`` laid out left to right in the 12-wide half starting at ``x``, wrapping; returns them
    and the height they take."""
    out, left, top, line = [], 0, 0, 0
    for index, panel in enumerate(panels):
        if left + panel.width > 12:
            left, top, line = 0, top + line, 0
        grid = {"h": panel.height, "w": panel.width, "x": x + left, "y": y + top}
        out.append(_panel_json(panel, first_id + index, grid))
        left, line = left + panel.width, max(line, panel.height)
    return out, top + line


def _rows_json(rows: list[Row]) -> list[dict[str, Any]]:
    """Each row: a Grafana row header across the grid, then Sales on the left, Service on the right."""
    out: list[dict[str, Any]] = []
    y = 0
    for row in rows:
        # "targets": [] so that code reading every panel's queries can treat a row like any panel
        out.append({"id": len(out) + 1, "type": "row", "title": row.title, "collapsed": False,
                    "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": [], "targets": []})  # fmt: skip
        y += 1
        sales, sales_height = _column(row.sales, 0, y, len(out) + 1)
        out += sales
        service, service_height = _column(row.service, 12, y, len(out) + 1)
        out += service
        y += max(sales_height, service_height)
    return out


def dashboard_json(uid: str) -> dict[str, Any]:
    title, items = DASHBOARDS[uid]
    rows = [item for item in items if isinstance(item, Row)]
    panels = (
        _rows_json(rows) if rows else [_panel_json(p, i) for i, p in enumerate(items, start=1) if isinstance(p, Panel)]
    )
    return {
        "uid": uid,
        "title": title,
        "tags": ["customer-lifecycle"],
        "timezone": "utc",
        "schemaVersion": 39,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "panels": panels,
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

"""A terminal view of the funnel and of sales against service, read from the read model: plain text,
100 columns; amounts are shown per currency, never added together."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from streams.db.engine import make_engine
from streams.db.queries import ServiceSummary, quota_won_by_owner, service_summary, stage_counts
from streams.domain.errors import ConfigurationError
from streams.domain.journey import DealKind
from streams.domain.stages import Stage
from streams.metrics.quotas import Quotas
from streams.settings import Settings

WIDTH = 100
LEFT = 48  # the Sales column; then " | " and the Service column
LABEL = 22  # a row's label, indent included
Row = tuple[str, list[str]]  # a label and its value's lines


def _percent(value: float | None) -> str:
    return "   n/a" if value is None else f"{100 * value:5.1f}%"


def _share(value: float | None) -> str:
    """A ratio as a column's value: left-aligned with the other values."""
    return _percent(value).strip()


def _amounts(by_currency: dict[str, float]) -> str:
    """Each currency's sum on its own: adding EUR to USD means nothing."""
    return " · ".join(f"{currency} {amount:,.2f}" for currency, amount in sorted(by_currency.items())) or "none"


def _amount_lines(by_currency: dict[str, float]) -> list[str]:
    """One line per currency, for a column."""
    return [f"{currency} {amount:,.2f}" for currency, amount in sorted(by_currency.items())] or ["none"]


def _added(*by_currency: dict[str, float]) -> dict[str, float]:
    """Sums per currency of several kinds' revenue (a currency with another, never)."""
    total: dict[str, float] = {}
    for amounts in by_currency:
        for currency, amount in amounts.items():
            total[currency] = total.get(currency, 0.0) + amount
    return total


def _quota_row(settings: Settings, now: datetime) -> Row | None:
    """The team's quota attainment in the current quota period, None without a quota file."""
    if settings.quota_file is None:
        return None
    try:
        quotas = Quotas.load(settings.quota_file, settings.quota_timezone)
    except (OSError, ValueError, KeyError, TypeError, AttributeError, ConfigurationError) as exc:
        return "quota attainment", [f"quota file unreadable ({type(exc).__name__})"]
    targets = {owner: target for owner, target in quotas.by_owner.items() if target > 0}
    if not targets:
        return "quota attainment", ["no quota above 0"]
    start, end = quotas.period_bounds(now)
    engine = make_engine(settings.sqlalchemy_url)
    try:
        won = quota_won_by_owner(engine, quotas.currency, start, end)
    finally:
        engine.dispose()
    team = sum(targets.values())
    attained = sum(won.get(owner, 0.0) for owner in targets) / team
    return "quota attainment", [f"{_share(attained)} of {quotas.currency} {team:,.2f}", f"this {quotas.period}"]


def _column(rows: list[Row], width: int) -> list[str]:
    lines = []
    for label, values in rows:
        for index, value in enumerate(values):
            lines.append(f"  {label if index == 0 else '':<{LABEL - 2}}{value}".ljust(width))
    return lines


def sales_vs_service(summary: ServiceSummary, quota: Row | None, zone: ZoneInfo) -> list[str]:
    """The Sales vs Service comparison: two columns, then the won revenue of every kind."""
    won, lost = summary["won_deals"], summary["lost_deals"]
    by_kind = summary["revenue_by_kind"]
    sales: list[Row] = [
        ("deals won", [f"{won:,}"]),
        ("win rate", [f"{_share(won / (won + lost) if won + lost else None)} ({lost:,} lost)"]),
        (
            "conversion",
            [f"{_share(summary['conversion_rate'])} of {summary['leads']:,} leads"],
        ),
        ("new business won", _amount_lines(by_kind.get(DealKind.NEW_BUSINESS.value, {}))),
    ]
    if quota is not None:
        sales.append(quota)
    unit = summary["retention_period"]
    nps = summary["nps"]
    service: list[Row] = [
        ("CSAT (share of 4-5)", [f"{_share(summary['csat_share'])} of {summary['csat_responses']:,} ratings"]),
        ("first-contact (FCR)", [_share(summary["fcr_rate"])]),
        (
            "NPS",
            [
                f"{'n/a' if nps is None else f'{nps:+.1f}'} over {summary['nps_responses']:,} customers",
                f"promoters {summary['nps_promoters']:,}",
                f"detractors {summary['nps_detractors']:,}",
            ],
        ),
        ("churned customers", [f"{summary['churned_customers']:,} now"]),
        ("churns", [f"{summary['churns']:,} in all"]),
        (
            f"churn rate, {unit}",
            [
                _share(summary["period_logo_churn_rate"]),
                f"{summary['period_churns']:,} churns, {summary['period_customers_at_start']:,} at start",
            ],
        ),
        (
            "revenue retention",
            [f"{currency} {_share(rate)}" for currency, rate in sorted(summary["period_revenue_retention"].items())]
            or ["n/a"],
        ),
        (
            "renewal + expansion",
            _amount_lines(_added(by_kind.get(DealKind.RENEWAL.value, {}), by_kind.get(DealKind.EXPANSION.value, {}))),
        ),
        ("referral revenue", _amount_lines(summary["referral_revenue"])),
        ("open tickets", [f"{summary['open_tickets']:,}"]),
    ]
    right = WIDTH - LEFT - 3
    left_lines, right_lines = _column(sales, LEFT), _column(service, right)
    height = max(len(left_lines), len(right_lines))
    left_lines += [""] * (height - len(left_lines))
    right_lines += [""] * (height - len(right_lines))
    start = summary["period_start"].replace(tzinfo=UTC).astimezone(zone).date()
    return [
        f"Sales vs Service (retention period: the {unit} from {start.isoformat()}, {zone.key})",
        f"{'Sales':<{LEFT}} | Service",
        f"{'-' * LEFT}-+-{'-' * right}",
        *(f"{left:<{LEFT}} | {right_line}".rstrip() for left, right_line in zip(left_lines, right_lines, strict=True)),
        f"{'-' * LEFT}-+-{'-' * right}",
        f"revenue won, every kind: {_amounts(summary['won_revenue'])}",
    ]


def _figures(settings: Settings, now: datetime | None) -> tuple[dict[str, int], ServiceSummary, Row | None, ZoneInfo]:
    now = now or datetime.now(UTC)
    zone = ZoneInfo(settings.quota_timezone)
    engine = make_engine(settings.sqlalchemy_url)
    try:
        stages = stage_counts(engine)
        summary = service_summary(engine, retention_period=settings.retention_period, zone=zone, now=now)
    finally:
        engine.dispose()
    return stages, summary, _quota_row(settings, now), zone


def render(settings: Settings, *, now: datetime | None = None) -> str:
    """The live view's screen; ``now`` (aware, default the current time) picks the quota and retention periods."""
    stages, summary, quota, zone = _figures(settings, now)
    total = sum(stages.values()) or 1
    lines = ["customer-lifecycle: live view (Ctrl-C to stop)", "", "Funnel"]
    for stage in Stage:
        count = stages.get(stage.value, 0)
        lines.append(f"  {stage.value:<13}{count:>9}  {'#' * int(40 * count / total)}")
    lines += ["", *sales_vs_service(summary, quota, zone)]
    return "\n".join(lines)


def render_sales_vs_service(settings: Settings, *, now: datetime | None = None) -> str:
    """The Sales vs Service comparison alone: what the demo ends on."""
    _, summary, quota, zone = _figures(settings, now)
    return "\n".join(sales_vs_service(summary, quota, zone))


def _screen(draw: Callable[[], str]) -> str:
    try:
        return draw()
    except Exception as exc:
        return f"waiting for the read model ({type(exc).__name__})"


def live_view(
    settings: Settings, *, interval: float = 2.0, once: bool = False, until: Callable[[], bool] | None = None
) -> None:
    clear = "\x1b[2J\x1b[H" if sys.stdout.isatty() else ""
    while True:
        print(clear + _screen(lambda: render(settings)), flush=True)
        if once or (until is not None and until()):
            return
        time.sleep(interval)  # refresh period of a screen, not a wait for an event


def final_view(settings: Settings) -> None:
    """The last screen of the demo: the Sales vs Service comparison once the traffic has stopped."""
    print("\ncustomer-lifecycle demo: final figures\n", flush=True)
    print(_screen(lambda: render_sales_vs_service(settings)), flush=True)

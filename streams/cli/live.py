"""A terminal view of the funnel and the service figures, read from the read model."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from streams.db.engine import make_engine
from streams.db.queries import service_summary, stage_counts
from streams.domain.stages import Stage
from streams.settings import Settings


def _percent(value: float | None) -> str:
    return "   n/a" if value is None else f"{100 * value:5.1f}%"


def _amounts(by_currency: dict[str, float]) -> str:
    """Each currency's sum on its own: adding EUR to USD means nothing."""
    return " · ".join(f"{currency} {amount:,.2f}" for currency, amount in sorted(by_currency.items())) or "none"


def render(settings: Settings) -> str:
    engine = make_engine(settings.sqlalchemy_url)
    try:
        stages = stage_counts(engine)
        summary = service_summary(engine)
    finally:
        engine.dispose()
    total = sum(stages.values()) or 1
    lines = ["customer-lifecycle: live view (Ctrl-C to stop)", "", "Funnel"]
    for stage in Stage:
        count = stages.get(stage.value, 0)
        lines.append(f"  {stage.value:<13}{count:>9}  {'#' * int(40 * count / total)}")
    won, lost = summary["won_deals"], summary["lost_deals"]
    lines += [
        "",
        "Sales",
        f"  deals won {won}, lost {lost}, win rate {_percent(won / (won + lost) if won + lost else None)}",
        f"  revenue won  {_amounts(summary['won_revenue'])}",
        "",
        "Service",
        f"  CSAT (share of 4-5) {_percent(summary['csat_share'])} over {summary['csat_responses']} responses",
        f"  first-contact resolution {_percent(summary['fcr_rate'])}",
        f"  open tickets {summary['open_tickets']}",
    ]
    return "\n".join(lines)


def live_view(
    settings: Settings, *, interval: float = 2.0, once: bool = False, until: Callable[[], bool] | None = None
) -> None:
    clear = "\x1b[2J\x1b[H" if sys.stdout.isatty() else ""
    while True:
        try:
            text = render(settings)
        except Exception as exc:
            text = f"waiting for the read model ({type(exc).__name__})"
        print(clear + text, flush=True)
        if once or (until is not None and until()):
            return
        time.sleep(interval)  # refresh period of a screen, not a wait for an event

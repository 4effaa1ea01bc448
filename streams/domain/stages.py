"""Lifecycle stages and the rule that decides a customer's stage from its facts alone.

The rule reads only order-free facts (is any deal won, open, lost; whether the latest commercial
fact is a churn; the latest qualification decision; the latest CSAT scores), so the stage is the same
whatever order the three topics interleave in.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum


class Stage(StrEnum):
    LEAD = "lead"
    QUALIFIED = "qualified"
    OPPORTUNITY = "opportunity"
    DISQUALIFIED = "disqualified"
    LOST = "lost"
    CUSTOMER = "customer"
    AT_RISK = "at_risk"
    CHURNED = "churned"

    @property
    def is_service(self) -> bool:
        return self in SERVICE_STAGES


ACQUISITION_STAGES = frozenset({Stage.LEAD, Stage.QUALIFIED, Stage.OPPORTUNITY, Stage.DISQUALIFIED, Stage.LOST})
SERVICE_STAGES = frozenset({Stage.CUSTOMER, Stage.AT_RISK, Stage.CHURNED})
RECENT_CSAT_WINDOW = 3


def decide_stage(
    *,
    has_won_deal: bool,
    churned: bool = False,
    has_open_deal: bool,
    has_lost_deal: bool,
    latest_qualification: str | None,
    recent_csat_scores: Sequence[int],
    at_risk_threshold: float = 3.0,
) -> Stage:
    """The stage rule of the product, first match wins (docs/stages.md, "The rule"). ``churned``: the
    customer's latest commercial fact (a deal's win or a ``customer.churned``) is a churn."""
    if churned:
        return Stage.CHURNED
    if has_won_deal:
        if recent_csat_scores and mean(recent_csat_scores) < at_risk_threshold:
            return Stage.AT_RISK
        return Stage.CUSTOMER
    if has_open_deal:
        return Stage.OPPORTUNITY
    if has_lost_deal:
        return Stage.LOST
    if latest_qualification == "qualified":
        return Stage.QUALIFIED
    if latest_qualification == "disqualified":
        return Stage.DISQUALIFIED
    return Stage.LEAD


def mean(values: Sequence[int]) -> float:
    return sum(values) / len(values)


class CsatBand(StrEnum):
    """Where a customer's recent CSAT mean lies: the label that ties churns and referrals to service."""

    LOW = "low"  # below the at-risk threshold
    MID = "mid"  # below 4
    HIGH = "high"  # 4 and up
    NONE = "none"  # no rating


def csat_band(scores: Sequence[int], at_risk_threshold: float = 3.0) -> CsatBand:
    if not scores:
        return CsatBand.NONE
    average = mean(scores)
    if average < at_risk_threshold:
        return CsatBand.LOW
    return CsatBand.MID if average < 4 else CsatBand.HIGH

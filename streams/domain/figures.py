"""Headline ratios, defined once (docs/metrics.md, "Metric definitions", and the recording rules agree).

- CSAT: the *share* of responses scoring 4 or 5 (not the mean); the mean is reported separately.
- First-contact resolution: resolutions with ``contacts == 1`` / all resolutions (reopened tickets
  that are resolved again count again).
- Average handling time: total ``handling_seconds`` / resolutions.
- Win rate: won / (won + lost) deals: open deals are not in the denominator.
- Lead-to-customer conversion: conversions (customers' first won deal) / leads created.
- NPS: % promoters (9-10) - % detractors (0-6) of the answers, from -100 to 100.
- Logo churn rate: a period's churns / the customers at its start.
- Revenue retention: renewal + expansion revenue won in a period / all revenue won in the period before.
"""

from __future__ import annotations

from collections.abc import Mapping

SATISFIED_SCORES = frozenset({4, 5})


def ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


def csat_share(responses_by_score: Mapping[int, int]) -> float | None:
    satisfied = sum(count for score, count in responses_by_score.items() if score in SATISFIED_SCORES)
    return ratio(satisfied, sum(responses_by_score.values()))


def csat_average(responses_by_score: Mapping[int, int]) -> float | None:
    return ratio(sum(score * count for score, count in responses_by_score.items()), sum(responses_by_score.values()))


def first_contact_resolution_rate(first_contact_resolutions: int, resolutions: int) -> float | None:
    return ratio(first_contact_resolutions, resolutions)


def average_handling_seconds(total_handling_seconds: float, resolutions: int) -> float | None:
    return ratio(total_handling_seconds, resolutions)


def win_rate(won: int, lost: int) -> float | None:
    return ratio(won, won + lost)


def conversion_rate(conversions: int, leads: int) -> float | None:
    return ratio(conversions, leads)


NPS_CATEGORIES = ("promoter", "passive", "detractor")
PROMOTER_SCORE, PASSIVE_SCORE = 9, 7  # the lowest answer of each group; below passive: detractor


def nps_category(score: int) -> str:
    """0-10 answer to 'how likely are you to recommend us': the three groups NPS counts."""
    if score >= PROMOTER_SCORE:
        return "promoter"
    return "passive" if score >= PASSIVE_SCORE else "detractor"


def net_promoter_score(promoters: int, detractors: int, responses: int) -> float | None:
    """% promoters - % detractors, from -100 to 100; passives count in the responses only."""
    share = ratio(promoters - detractors, responses)
    return None if share is None else 100 * share


def logo_churn_rate(churns: int, customers_at_start: int) -> float | None:
    """A period's churns / the customers at its start (a customer who churns twice counts twice)."""
    return ratio(churns, customers_at_start)


def revenue_retention(retained: float, previous: float) -> float | None:
    """Renewal and expansion revenue won in a period / all revenue won in the period before."""
    return ratio(retained, previous)

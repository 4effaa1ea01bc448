"""Headline ratios, defined once (docs/metrics.md, "Metric definitions", and the recording rules agree).

- CSAT: the *share* of responses scoring 4 or 5 (not the mean); the mean is reported separately.
- First-contact resolution: resolutions with ``contacts == 1`` / all resolutions (reopened tickets
  that are resolved again count again).
- Average handling time: total ``handling_seconds`` / resolutions.
- Win rate: won / (won + lost) deals: open deals are not in the denominator.
- Lead-to-customer conversion: conversions (customers' first won deal) / leads created.
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

from __future__ import annotations

import pytest

from streams.domain.stages import CsatBand, Stage, csat_band, decide_stage


def stage(**facts: object) -> Stage:
    defaults: dict[str, object] = {
        "has_won_deal": False,
        "has_open_deal": False,
        "has_lost_deal": False,
        "latest_qualification": None,
        "recent_csat_scores": (),
    }
    return decide_stage(**{**defaults, **facts})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("facts", "expected"),
    [
        ({}, Stage.LEAD),
        ({"latest_qualification": "qualified"}, Stage.QUALIFIED),
        ({"latest_qualification": "disqualified"}, Stage.DISQUALIFIED),
        ({"has_lost_deal": True, "latest_qualification": "qualified"}, Stage.LOST),
        ({"has_open_deal": True, "has_lost_deal": True}, Stage.OPPORTUNITY),
        ({"has_won_deal": True, "has_open_deal": True, "has_lost_deal": True}, Stage.CUSTOMER),
        ({"has_won_deal": True, "recent_csat_scores": (1, 2, 5)}, Stage.AT_RISK),
        ({"has_won_deal": True, "recent_csat_scores": (3, 3, 3)}, Stage.CUSTOMER),
        ({"has_won_deal": False, "recent_csat_scores": (1, 1, 1)}, Stage.LEAD),
        ({"has_won_deal": True, "churned": True, "recent_csat_scores": (5,)}, Stage.CHURNED),
        ({"churned": True, "has_open_deal": True}, Stage.CHURNED),
    ],
)
def test_first_matching_rule_decides(facts: dict[str, object], expected: Stage) -> None:
    assert stage(**facts) is expected


def test_threshold_is_configurable() -> None:
    assert stage(has_won_deal=True, recent_csat_scores=(4,), at_risk_threshold=4.5) is Stage.AT_RISK
    assert stage(has_won_deal=True, recent_csat_scores=(4,), at_risk_threshold=4.0) is Stage.CUSTOMER


def test_service_stages() -> None:
    assert {s for s in Stage if s.is_service} == {Stage.CUSTOMER, Stage.AT_RISK, Stage.CHURNED}


@pytest.mark.parametrize(
    ("scores", "threshold", "band"),
    [
        ((), 3.0, CsatBand.NONE),
        ((2, 3, 3), 3.0, CsatBand.LOW),
        ((3,), 3.0, CsatBand.MID),
        ((3, 4, 4), 3.0, CsatBand.MID),
        ((4, 4, 4), 3.0, CsatBand.HIGH),
        ((3,), 3.5, CsatBand.LOW),
        ((4,), 4.5, CsatBand.LOW),  # below the at-risk threshold is low, whatever else
    ],
)
def test_csat_band(scores: tuple[int, ...], threshold: float, band: CsatBand) -> None:
    assert csat_band(scores, threshold) is band

from __future__ import annotations

import pytest

from streams.domain.stages import Stage, decide_stage


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
    ],
)
def test_first_matching_rule_decides(facts: dict[str, object], expected: Stage) -> None:
    assert stage(**facts) is expected


def test_threshold_is_configurable() -> None:
    assert stage(has_won_deal=True, recent_csat_scores=(4,), at_risk_threshold=4.5) is Stage.AT_RISK
    assert stage(has_won_deal=True, recent_csat_scores=(4,), at_risk_threshold=4.0) is Stage.CUSTOMER


def test_service_stages() -> None:
    assert {s for s in Stage if s.is_service} == {Stage.CUSTOMER, Stage.AT_RISK}

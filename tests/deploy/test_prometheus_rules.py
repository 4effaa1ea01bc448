"""Prometheus and Alertmanager configuration, checked with Debian's promtool and amtool."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml

from tests.conftest import IN_CI
from tests.deploy.test_grafana import TWINS
from tests.support import ROOT

PROMETHEUS = ROOT / "deploy" / "prometheus"
ALERTMANAGER = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"
pytestmark = pytest.mark.prometheus


def tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        if IN_CI:
            pytest.fail(f"{name} is not installed (CI=true: required)")
        pytest.skip(f"{name} is not installed (Debian packages prometheus, prometheus-alertmanager)")
    return found


def run(*command: str) -> str:
    completed = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return completed.stdout + completed.stderr


def test_promtool_check_config() -> None:
    assert "SUCCESS" in run(tool("promtool"), "check", "config", str(PROMETHEUS / "prometheus.yml"))


def test_promtool_check_rules() -> None:
    output = run(tool("promtool"), "check", "rules", *map(str, sorted(PROMETHEUS.glob("*_rules.yml"))))
    assert "SUCCESS" in output


def test_promtool_unit_tests() -> None:
    tests = sorted(PROMETHEUS.glob("tests/*.yml"))
    assert len(tests) >= 2
    output = run(tool("promtool"), "test", "rules", *map(str, tests))
    assert output.count("SUCCESS") == len(tests)


def test_recording_rules_follow_the_naming_convention() -> None:
    groups = yaml.safe_load((PROMETHEUS / "recording_rules.yml").read_text())["groups"]
    for rule in (r for g in groups for r in g["rules"]):
        level, metric, operations = rule["record"].split(":")
        assert metric.startswith("lifecycle_") and operations, rule["record"]
        assert level == "" or all(label.strip().isidentifier() for label in level.split("_"))


def test_rules_read_figures_net_of_their_retracted_twins() -> None:
    """A rule reading a figure that later events change subtracts its *_retracted twin (the same list as
    the dashboards' test)."""
    for name in ("recording_rules.yml", "alerting_rules.yml"):
        groups = yaml.safe_load((PROMETHEUS / name).read_text())["groups"]
        for rule in (r for g in groups for r in g["rules"]):
            for metric, twin in TWINS.items():
                if re.search(rf"\b{metric}\b", rule["expr"]):
                    assert twin in rule["expr"], f"{rule.get('record', rule.get('alert'))}: {metric} without {twin}"


def test_every_alert_has_for_severity_summary_description_and_runbook() -> None:
    runbook = (ROOT / "deploy" / "RUNBOOK.md").read_text()
    groups = yaml.safe_load((PROMETHEUS / "alerting_rules.yml").read_text())["groups"]
    alerts = [r for g in groups for r in g["rules"]]
    assert {a["alert"] for a in alerts} >= {
        "LifecycleCSATLow",
        "LifecycleCSATDrop",
        "LifecycleCSATLowOnChannel",
        "LifecycleChurnSpike",
        "LifecycleNPSDrop",
        "LifecycleGatewaySourceFailing",
    }
    for alert in alerts:
        assert alert["for"], alert["alert"]
        assert alert["labels"]["severity"] in ("page", "warning")
        assert alert["annotations"]["summary"] and alert["annotations"]["description"]
        anchor = alert["annotations"]["runbook_url"].split("#", 1)[1]
        assert f"## {anchor}\n" in runbook, f"{alert['alert']}: no runbook section {anchor}"


def test_amtool_check_config() -> None:
    assert "SUCCESS" in run(tool("amtool"), "check-config", str(ALERTMANAGER))


@pytest.mark.parametrize(
    ("labels", "receivers"),
    [
        (["alertname=LifecycleCSATLow", "team=service", "severity=page"], "service-team-pager,service-team"),
        (["alertname=LifecycleCSATDrop", "team=service", "severity=warning"], "service-team"),
        (["alertname=LifecycleCSATLowOnChannel", "team=service", "severity=warning", "channel=chat"], "service-team"),
        (["alertname=LifecycleChurnSpike", "team=service", "severity=warning"], "service-team"),
        (["alertname=LifecycleNPSDrop", "team=service", "severity=warning"], "service-team"),
        (["alertname=LifecyclePipelineStalled", "team=platform", "severity=page"], "platform-team"),
        (["alertname=LifecycleGatewaySourceFailing", "team=platform", "severity=warning"], "platform-team"),
    ],
)
def test_alerts_reach_their_team(labels: list[str], receivers: str) -> None:
    output = run(tool("amtool"), "config", "routes", "test", f"--config.file={ALERTMANAGER}", *labels)
    assert output.splitlines()[0].strip() == receivers


def test_no_inhibit_rule_can_silence_a_csat_alert() -> None:
    config = yaml.safe_load(ALERTMANAGER.read_text())
    for rule in config.get("inhibit_rules", []):
        targets = " ".join(rule.get("target_matchers", []))
        assert "CSAT" not in targets and "team=" not in targets and "severity" not in targets, rule

from __future__ import annotations

from streams.settings import Settings, reference
from tests.support import ROOT

DOCS = ROOT / "docs" / "configuration.md"


def test_the_configuration_reference_is_generated_from_the_settings() -> None:
    assert DOCS.read_text() == reference(), "docs/configuration.md is stale: lifecycle settings --markdown > it"


def test_every_setting_says_what_it_is_for() -> None:
    undocumented = [name for name, field in Settings.model_fields.items() if not field.description]
    assert not undocumented
